"""Shared test problems: classic 2-D functions, a 2-4-1 MLP on two Gaussian blobs, and a training loop."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

import deeplandscape.optim as dlo


def quadratic(w: Tensor) -> Tensor:
    """f(w) = ½ wᵀ A w − bᵀw with A = diag(1, 4); minimum A⁻¹b = (1, 0.5)."""
    a = torch.tensor([1.0, 4.0], dtype=w.dtype)
    b = torch.tensor([1.0, 2.0], dtype=w.dtype)
    return 0.5 * (a * w * w).sum() - (b * w).sum()


QUADRATIC_MIN = (1.0, 0.5)


def rosenbrock(w: Tensor) -> Tensor:
    """Rosenbrock with a = 1, b = 1: f = (1 − x)² + (y − x²)²; minimum (1, 1)."""
    x, y = w[0], w[1]
    return (1 - x) ** 2 + (y - x**2) ** 2


ROSENBROCK_MIN = (1.0, 1.0)


def beale(w: Tensor) -> Tensor:
    """Beale: (1.5 − x + xy)² + (2.25 − x + xy²)² + (2.625 − x + xy³)²; minimum (3, 0.5)."""
    x, y = w[0], w[1]
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


BEALE_MIN = (3.0, 0.5)


def blobs(n: int = 200, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Two Gaussian blobs in 2-D centred at ±(1, 1) with unit variance; labels 0/1 as float targets."""
    g = torch.Generator().manual_seed(seed)
    y = (torch.arange(n) % 2).to(torch.float32)
    centers = (2 * y - 1)[:, None] * torch.tensor([1.0, 1.0])
    x = centers + torch.randn(n, 2, generator=g)
    return x, y[:, None]


def mlp_241(seed: int = 0, dtype: torch.dtype = torch.float32) -> nn.Module:
    """The 2-4-1 tanh MLP."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1)).to(dtype)


def small_mlp(seed: int = 0, dtype: torch.dtype = torch.float64) -> nn.Module:
    """A 3-layer MLP (p = 3 weight layers) used where several weight layers matter."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 6), nn.Tanh(), nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 1)).to(dtype)


def bce(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    return nn.functional.binary_cross_entropy_with_logits(model(x), y)


def batches(x: Tensor, y: Tensor, batch_size: int, steps: int, seed: int = 0) -> list[tuple[Tensor, Tensor]]:
    """``steps`` random mini-batches drawn with a fixed generator."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        idx = torch.randint(0, x.shape[0], (batch_size,), generator=g)
        out.append((x[idx], y[idx]))
    return out


def train(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    data: list[tuple[Tensor, Tensor]],
    loss_fn: Callable[[nn.Module, Tensor, Tensor], Tensor] = bce,
) -> list[float]:
    """Ordinary loop: one ``step()`` per mini-batch; returns the mini-batch losses."""
    losses = []
    for xb, yb in data:
        opt.zero_grad()
        loss = loss_fn(model, xb, yb)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def minimize(fn: Callable[[Tensor], Tensor], w: Tensor, opt: torch.optim.Optimizer, steps: int) -> Tensor:
    """Full-batch descent on a function of one parameter tensor ``w``."""
    for _ in range(steps):
        opt.zero_grad()
        fn(w).backward()
        opt.step()
    return w


def reference(opt: torch.optim.Optimizer, params: list[Tensor]) -> list[Tensor]:
    """The reference weights x of a relaxation optimizer (the parameters themselves otherwise)."""
    if hasattr(opt, "reference_weights"):
        with opt.reference_weights():
            return [p.detach().clone() for p in params]
    return [p.detach().clone() for p in params]


# Every single-model optimizer, built with mostly default knobs (``kw`` overrides).
def build(name: str, params, **kw) -> torch.optim.Optimizer:
    cls = dlo.get(name)
    return cls(params, **kw)


NAMES = ["anneal-sgd", "gradient-noise", "sgld", "entropy-sgd", "entropy-adam", "hj", "heat"]
