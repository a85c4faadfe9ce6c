"""All-CNN-C with batch norm ("allcnn", Thesis §4.6) and its small version ("small-allcnn", Thesis §6.3)."""

from __future__ import annotations

import torch
from torch import nn

from ._layers import check_positive_int, check_probability
from .spec import NetSpec


def _conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
    )


class AllCNN(nn.Module):
    """Thesis §4.6: ``input_{3×32×32} → drop_0.2 → block_{c1,3} → block_{c2,3} → (conv_{c2,3})×2 → conv_10
    → mean-pool → softmax``, with ``block_{d,3} = conv_{d,3,1} → conv_{d,3,1} → conv*_{d,3,1} → drop_0.5``.

    ``conv*`` has stride 2 (32→16→8); every convolution is followed by batch norm and ReLU (the batch
    norm is the Thesis's only change to All-CNN-C); conv_10 is 1×1 and the mean-pool averages the final
    10×8×8 map. Parameters for widths (c1, c2):
    ``Σ_conv c_out(c_in·k² + 1) + Σ_BN 2c``. allcnn (96, 192) has 1,667,166 (the Thesis: "n = 1.67
    million"); small-allcnn (12, 24) has exactly the Thesis §6.3.1 count of 26,982.
    """

    def __init__(
        self,
        channels: tuple[int, int] = (96, 192),
        *,
        classes: int = 10,
        in_channels: int = 3,
        input_dropout: float = 0.2,
        block_dropout: float = 0.5,
    ):
        super().__init__()
        c1, c2 = (check_positive_int("channels", c) for c in channels)
        check_probability("input_dropout", input_dropout)
        check_probability("block_dropout", block_dropout)

        def block(c_in: int, d: int) -> list[nn.Module]:
            layers: list[nn.Module] = [_conv_bn(c_in, d, 3), _conv_bn(d, d, 3), _conv_bn(d, d, 3, stride=2)]
            if block_dropout > 0:
                layers.append(nn.Dropout(block_dropout))
            return layers

        layers: list[nn.Module] = [nn.Dropout(input_dropout)] if input_dropout > 0 else []
        layers += block(in_channels, c1) + block(c1, c2)
        layers += [_conv_bn(c2, c2, 3), _conv_bn(c2, c2, 3), _conv_bn(c2, classes, 1)]
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


#: The networks of this module in the zoo (:mod:`deeplandscape.nets.registry`).
NETS = (
    NetSpec("allcnn", AllCNN, "Thesis §4.6, §3.3.3", (3, 32, 32), 1_670_000, 0.005),
    NetSpec("small-allcnn", AllCNN, "Thesis §6.3.1", (3, 32, 32), 26_982, defaults={"channels": (12, 24)}),
)
