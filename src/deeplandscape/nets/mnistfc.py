"""The fully-connected MNIST networks called "mnistfc" in the Thesis and the AnnealSGD paper."""

from __future__ import annotations

import torch
from torch import nn

from ._layers import check_positive_int, check_probability, fc_block
from .spec import NetSpec


class MnistFC(nn.Module):
    """Thesis §4.6 (and §3.3.2): ``input_784 → drop_p → (fc_1024 → drop_p)×2 → fc_10 → softmax``.

    Each ``fc_d`` is a dense layer followed by ReLU and batch normalization. The dropout probability is
    0.2 in §4.6 (the default) and 0.5 in §3.3.2. The module returns logits.

    Parameters: ``(784·1024 + 1024) + 2·1024 + (1024·1024 + 1024) + 2·1024 + (1024·10 + 10) = 1,867,786``.
    The Thesis says "n = 1.86 million"; the count agrees to the 3 digits given (1,863,690 without the
    batch-norm affine parameters, which the text states are there).
    """

    def __init__(self, hidden: int = 1024, *, layers: int = 2, dropout: float = 0.2, batch_norm: bool = True):
        super().__init__()
        check_positive_int("hidden", hidden)
        check_positive_int("layers", layers)
        check_probability("dropout", dropout)
        blocks: list[nn.Module] = [nn.Flatten()]
        if dropout > 0:
            blocks.append(nn.Dropout(dropout))
        n_in = 784
        for _ in range(layers):
            blocks.append(fc_block(n_in, hidden, batch_norm=batch_norm, dropout=dropout))
            n_in = hidden
        blocks.append(nn.Linear(n_in, 10))
        self.net = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class DeepThinMnistFC(nn.Module):
    """AnnealSGD paper §5.3 (Thesis §2.4.3) "mnistfc": 16 hidden layers of 128 ReLU units, then fc_10.

    ``input_784 → (fc_128 → ReLU)×16 → fc_10``; the paper names no batch norm or dropout for it.
    Parameters: ``(784·128 + 128) + 15·(128·128 + 128) + (128·10 + 10) = 349,450`` (the paper gives no count).
    """

    def __init__(self, hidden: int = 128, *, layers: int = 16):
        super().__init__()
        check_positive_int("hidden", hidden)
        check_positive_int("layers", layers)
        blocks: list[nn.Module] = [nn.Flatten()]
        n_in = 784
        for _ in range(layers):
            blocks += [nn.Linear(n_in, hidden), nn.ReLU()]
            n_in = hidden
        blocks.append(nn.Linear(n_in, 10))
        self.net = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


#: The networks of this module in the zoo (:mod:`deeplandscape.nets.registry`).
NETS = (
    NetSpec("mnistfc", MnistFC, "Thesis §4.6, §3.3.2", (1, 28, 28), 1_860_000, 0.005),
    NetSpec("mnistfc-deep", DeepThinMnistFC, "AnnealSGD paper §5.3", (1, 28, 28)),
)
