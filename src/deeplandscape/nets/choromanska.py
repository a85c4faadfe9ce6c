"""The one-hidden-layer ReLU networks of Choromanska et al. §5.1 on 10×10 down-sampled MNIST."""

from __future__ import annotations

import torch
from torch import nn

from ._layers import check_positive_int
from .spec import NetSpec

CHOROMANSKA_WIDTHS = (10, 25, 50, 100, 250, 500)


class ChoromanskaNet(nn.Module):
    """Choromanska et al. §5.1: ``input_{10×10} → fc_{n1} → ReLU → fc_{10}`` (logits for the 10 digits).

    The paper trains 1000 such networks per width n1 ∈ {25, 50, 100, 250, 500} (and n1 = 10 for the index
    study, Fig. 5), "each one starting from a random set of parameters sampled uniformly within the unit
    cube". ``init="unit-cube"`` (the default) therefore draws every weight and bias from U[0, 1];
    ``init="torch"`` keeps PyTorch's default initialisation.

    Parameters: ``100·n1 + n1 + 10·n1 + 10 = 111·n1 + 10`` (the paper gives no count).
    """

    def __init__(self, n1: int = 25, *, in_features: int = 100, classes: int = 10, init: str = "unit-cube"):
        super().__init__()
        check_positive_int("n1", n1)
        check_positive_int("in_features", in_features)
        check_positive_int("classes", classes)
        if init not in ("unit-cube", "torch"):
            raise ValueError(f"init must be 'unit-cube' or 'torch', got {init!r}")
        self.n1 = n1
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(in_features, n1), nn.ReLU(), nn.Linear(n1, classes))
        if init == "unit-cube":
            unit_cube_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@torch.no_grad()
def unit_cube_init_(model: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """Choromanska et al. §5.1: every parameter drawn uniformly from the unit cube, θ_i ~ U[0, 1]."""
    for p in model.parameters():
        p.copy_(torch.rand(p.shape, generator=generator, dtype=p.dtype, device="cpu").to(p.device))
    return model


#: The networks of this module in the zoo (:mod:`deeplandscape.nets.registry`).
NETS = tuple(
    NetSpec(f"choromanska-{n1}", ChoromanskaNet, "Choromanska et al. §5.1", (1, 10, 10), defaults={"n1": n1})
    for n1 in CHOROMANSKA_WIDTHS
)
