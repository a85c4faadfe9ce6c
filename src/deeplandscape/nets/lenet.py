"""LeNet-style convolutional networks on 28×28 MNIST, as each paper specifies them.

Notation (Thesis §4.6): ``conv_{c,k,m}`` is a k×k convolution with c output channels followed by batch
normalization, ReLU and m×m max-pooling; ``drop_p`` is dropout with probability p; ``fc_d`` a dense layer.
"""

from __future__ import annotations

import torch
from torch import nn

from ._layers import check_positive_int, check_probability, conv_block
from .spec import NetSpec


class LeNet(nn.Module):
    """A two-convolution, one-hidden-dense-layer LeNet: ``conv_{c1,k,m1} → conv_{c2,k,m2} → fc_h → fc_10``.

    Spatial size after the convolutions (no padding): ``s1 = ⌊(28 − k + 1)/m1⌋``,
    ``s2 = ⌊(s1 − k + 1)/m2⌋``; parameters
    ``c1(k²+1) + c2(c1k²+1) + (c2·s2²+1)·h + (h+1)·10`` plus ``2c`` per batch-norm layer of width c.
    """

    def __init__(
        self,
        channels: tuple[int, int] = (20, 50),
        hidden: int = 500,
        *,
        kernel: int = 5,
        pools: tuple[int, int] = (3, 2),
        batch_norm: bool = True,
        fc_batch_norm: bool = False,
        conv_dropout: float = 0.25,
        fc_dropout: float = 0.25,
        classes: int = 10,
        image_size: int = 28,
    ):
        super().__init__()
        c1, c2 = (check_positive_int("channels", c) for c in channels)
        check_positive_int("hidden", hidden)
        check_probability("conv_dropout", conv_dropout)
        check_probability("fc_dropout", fc_dropout)
        s1 = (image_size - kernel + 1) // pools[0]
        s2 = (s1 - kernel + 1) // pools[1]
        if s2 < 1:
            raise ValueError(
                f"image_size={image_size} is too small for kernel={kernel} and pools={pools}: "
                f"the feature map would be {s2}×{s2}"
            )
        dense: list[nn.Module] = [nn.Flatten(), nn.Linear(c2 * s2 * s2, hidden), nn.ReLU()]
        if fc_batch_norm:
            dense.append(nn.BatchNorm1d(hidden))
        if fc_dropout > 0:
            dense.append(nn.Dropout(fc_dropout))
        self.net = nn.Sequential(
            conv_block(1, c1, kernel, pool=pools[0], batch_norm=batch_norm, dropout=conv_dropout),
            conv_block(c1, c2, kernel, pool=pools[1], batch_norm=batch_norm, dropout=conv_dropout),
            *dense,
            nn.Linear(hidden, classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def lenet(**kw) -> LeNet:
    """Thesis §4.6 "lenet" (131,220 parameters).

    ``input_{28×28} → conv_{20,5,3} → drop_0.25 → conv_{50,5,2} → drop_0.25 → fc_500 → drop_0.25 → fc_10``.

    Parameters: ``520 + 40 + 25,050 + 100 + 100,500 + 5,010 = 131,220``, the Thesis's n = 131,220. The
    count is matched with batch norm after the two convolutions only; batch norm after fc_500 too (as the
    general ``fc_d`` notation suggests) would give 132,220.
    """
    return LeNet(**kw)


def lenet_parle(**kw) -> LeNet:
    """Thesis §5.4.2 "lenet": the standard LeNet, convolutions of 20 and 50 channels, fc_500, 10-way softmax.

    ReLU, batch norm and dropout 0.25 after the convolutional and dense layers; the standard LeNet pools
    2×2 after each convolution. Parameters: ``520 + 40 + 25,050 + 100 + 400,500 + 5,010 = 431,220``
    (the Thesis gives no count for this version).
    """
    kw.setdefault("pools", (2, 2))
    return LeNet(**kw)


def lenet_anneal(**kw) -> LeNet:
    """AnnealSGD paper §5.4 (Thesis §2.4.3) LeNet: ``block_32 → block_64 → linear_512 → drop_0.1 → softmax``.

    ``block_c`` is a 5×5 convolution with c features, 3×3 max-pooling and batch norm, no dropout.
    Non-overlapping 3×3 pooling gives feature maps 24→8→4→1, so the count is
    ``832 + 64 + 51,264 + 128 + 33,280 + 5,130 = 90,698`` (the paper gives no count).
    """
    kw.setdefault("channels", (32, 64))
    kw.setdefault("hidden", 512)
    kw.setdefault("pools", (3, 3))
    kw.setdefault("conv_dropout", 0.0)
    kw.setdefault("fc_dropout", 0.1)
    return LeNet(**kw)


def small_lenet(**kw) -> LeNet:
    """Thesis §3.3.1 "small-LeNet" (47,658 parameters): lenet with 10 and 20 channels and 128 hidden units.

    The stated count is matched exactly by the standard LeNet layout (2×2 pooling, 20·4·4 = 320 features)
    without batch norm or dropout: ``260 + 5,020 + 41,088 + 1,290 = 47,658``. (With lenet's 3×3/2×2 pooling
    the count would be 16,938.)
    """
    kw.setdefault("channels", (10, 20))
    kw.setdefault("hidden", 128)
    kw.setdefault("pools", (2, 2))
    kw.setdefault("batch_norm", False)
    kw.setdefault("conv_dropout", 0.0)
    kw.setdefault("fc_dropout", 0.0)
    return LeNet(**kw)


def small_lenet_bn(**kw) -> LeNet:
    """Thesis §6.3.1 "small-lenet" (13,338 weights): 8 and 16 channels, batch norm and dropout 0.1, fc_128.

    With lenet's pooling (3×3 then 2×2, feature maps 24→8→4→2) the count is
    ``208 + 16 + 3,216 + 32 + 8,320 + 1,290 = 13,082`` with batch norm after the convolutions only; the
    stated 13,338 is matched exactly when the 128-unit dense layer also has batch norm (+256), which is
    therefore the default.
    """
    kw.setdefault("channels", (8, 16))
    kw.setdefault("hidden", 128)
    kw.setdefault("pools", (3, 2))
    kw.setdefault("fc_batch_norm", True)
    kw.setdefault("conv_dropout", 0.1)
    kw.setdefault("fc_dropout", 0.0)
    return LeNet(**kw)


#: The networks of this module in the zoo (:mod:`deeplandscape.nets.registry`).
NETS = (
    NetSpec("lenet", lenet, "Thesis §4.6", (1, 28, 28), 131_220),
    NetSpec("lenet-parle", lenet_parle, "Thesis §5.4.2", (1, 28, 28)),
    NetSpec("lenet-anneal", lenet_anneal, "AnnealSGD paper §5.4", (1, 28, 28)),
    NetSpec("small-lenet", small_lenet, "Thesis §3.3.1", (1, 28, 28), 47_658),
    NetSpec("small-lenet-bn", small_lenet_bn, "Thesis §6.3.1", (1, 28, 28), 13_338),
)
