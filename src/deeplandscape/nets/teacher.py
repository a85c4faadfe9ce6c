"""Sagun et al. §3.1.3, Table 1: the teacher 784-500-300-10 and its students."""

from __future__ import annotations

import torch
from torch import nn

from ._layers import check_positive_int

SAGUN_STUDENT_SIZES = ((50, 50), (250, 150), (500, 300), (1200, 1200))


class SagunMLP(nn.Module):
    """Sagun et al. §3.1.3: ``784 → h1 → ReLU → h2 → ReLU → 10`` (soft-max in the loss).

    The teacher is 784-500-300-10; the students of Table 1 are 784-50-50-10, 784-250-150-10,
    784-500-300-10 and 784-1200-1200-10. Parameters: ``785·h1 + (h1+1)·h2 + (h2+1)·10`` (545,810 for the
    teacher; the paper gives no count).
    """

    def __init__(self, h1: int = 500, h2: int = 300, *, in_features: int = 784, classes: int = 10):
        super().__init__()
        check_positive_int("h1", h1)
        check_positive_int("h2", h2)
        self.sizes = (in_features, h1, h2, classes)
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_features, h1),
            nn.ReLU(),
            nn.Linear(h1, h2),
            nn.ReLU(),
            nn.Linear(h2, classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
