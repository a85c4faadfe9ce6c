"""A bitwise snapshot of everything an instrument could change on a model."""

from __future__ import annotations

import torch
from torch import nn


def snapshot(model: nn.Module) -> dict:
    return {
        "params": {k: p.detach().clone() for k, p in model.named_parameters()},
        "grads": {k: None if p.grad is None else p.grad.clone() for k, p in model.named_parameters()},
        "requires_grad": {k: p.requires_grad for k, p in model.named_parameters()},
        "buffers": {k: b.detach().clone() for k, b in model.named_buffers()},
        "modes": {k: m.training for k, m in model.named_modules()},
    }


def assert_unchanged(model: nn.Module, before: dict) -> None:
    after = snapshot(model)
    assert after["modes"] == before["modes"]
    assert after["requires_grad"] == before["requires_grad"]
    for kind in ("params", "buffers"):
        assert after[kind].keys() == before[kind].keys()
        for k, v in before[kind].items():
            assert after[kind][k].dtype == v.dtype and torch.equal(after[kind][k], v), (kind, k)
    for k, g in before["grads"].items():
        if g is None:
            assert after["grads"][k] is None, k
        else:
            assert torch.equal(after["grads"][k], g), k


def busy_model(activation: type[nn.Module] = nn.ReLU, classes: int = 4) -> nn.Module:
    """A small CNN with BatchNorm and Dropout, in train mode, with a frozen layer and stale gradients."""
    torch.manual_seed(3)
    model = nn.Sequential(
        nn.Conv2d(2, 3, 3),
        nn.BatchNorm2d(3),
        activation(),
        nn.Flatten(),
        nn.Dropout(0.3),
        nn.Linear(3 * 4 * 4, classes),
    ).double()
    model.train()
    model(torch.randn(6, 2, 6, 6, dtype=torch.float64)).sum().backward()
    model[1].weight.requires_grad_(False)
    model[1].weight.grad = None
    return model


def busy_data(n: int = 12, seed: int = 4) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, 6, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (n,), generator=g)
    return [(x[: n // 2], y[: n // 2]), (x[n // 2 :], y[n // 2 :])]
