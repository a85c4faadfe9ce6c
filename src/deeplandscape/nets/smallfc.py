"""Small fully-connected networks: smallfc (Thesis §3.3.1), small-fc and tiny-fc (Thesis §6.3)."""

from __future__ import annotations

import torch
from torch import nn

from ._layers import check_positive_int
from .spec import NetSpec


class SmallFC(nn.Module):
    """Thesis §3.3.1 "smallfc": ``input_784 → fc_h → ReLU → fc_10``, trained with cross-entropy.

    The text says "one layer of 32 hidden units" and "50,890 parameters". These two statements disagree:
    with h = 32 the count is 784·32 + 32 + 32·10 + 10 = 25,450, while h = 64 gives exactly
    784·64 + 64 + 64·10 + 10 = 50,890. The default is h = 64, which reproduces the stated count.
    """

    def __init__(self, hidden: int = 64, *, in_features: int = 784, classes: int = 10):
        super().__init__()
        check_positive_int("hidden", hidden)
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SmallFCBN(nn.Module):
    """Thesis §6.3.1 "small-fc" / "tiny-fc": a two-layer net with batch norm and ReLU on 7×7 MNIST.

    ``input_49 → fc_h → BN → ReLU → fc_c``. small-fc has h = 64 and c = 10 (parameters
    49·64 + 64 + 2·64 + 64·10 + 10 = 3,978); tiny-fc (§6.3.3) has h = 16 and c = 5 (parameters
    49·16 + 16 + 2·16 + 16·5 + 5 = 917). The Thesis gives no count for either.
    """

    def __init__(self, hidden: int = 64, *, classes: int = 10, in_features: int = 49):
        super().__init__()
        check_positive_int("hidden", hidden)
        check_positive_int("classes", classes)
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_features, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Linear(hidden, classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


#: The networks of this module in the zoo (:mod:`deeplandscape.nets.registry`).
NETS = (
    NetSpec("smallfc", SmallFC, "Thesis §3.3.1", (1, 28, 28), 50_890),
    NetSpec("small-fc", SmallFCBN, "Thesis §6.3.1", (1, 7, 7)),
    NetSpec("tiny-fc", SmallFCBN, "Thesis §6.3.3", (1, 7, 7), defaults={"hidden": 16, "classes": 5}),
)
