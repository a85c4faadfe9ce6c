"""Sagun et al. §3.1.3, Table 1: the teacher 784-500-300-10 and its students."""

from __future__ import annotations

import torch
from torch import nn

from ._layers import check_positive_int
from .spec import NetSpec

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


#: The networks of this module in the zoo (:mod:`deeplandscape.nets.registry`).
NETS = (
    NetSpec("sagun-teacher", SagunMLP, "Sagun et al. §3.1.3", (1, 28, 28), defaults={"h1": 500, "h2": 300}),
    *(
        NetSpec(f"sagun-student-{h1}-{h2}", SagunMLP, "Sagun et al. Table 1", (1, 28, 28),
                defaults={"h1": h1, "h2": h2})
        for h1, h2 in SAGUN_STUDENT_SIZES
    ),
)  # fmt: skip
