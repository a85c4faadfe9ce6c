"""Small float64 models, data and a torch.func.hessian oracle for the curvature and noise tests."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn
from torch.func import functional_call, hessian


@pytest.fixture(autouse=True)
def single_thread():
    """These tests run many small products: one thread avoids contention on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def mlp() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3)).double()


def cnn() -> nn.Module:
    torch.manual_seed(2)
    return nn.Sequential(
        nn.Conv2d(2, 3, 3), nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(3 * 2 * 2, 3)
    ).double()


def mlp_data(n: int = 13, seed: int = 5) -> list[tuple[Tensor, Tensor]]:
    """Two batches of unequal size (7 and 6), so that the size weighting matters."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (n,), generator=g)
    return [(x[:7], y[:7]), (x[7:], y[7:])]


def cnn_data(n: int = 11, seed: int = 6) -> list[tuple[Tensor, Tensor]]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, 6, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (n,), generator=g)
    return [(x[:4], y[:4]), (x[4:], y[4:])]


def oracle_hessian(model: nn.Module, loss_fn, batches) -> Tensor:
    """``torch.func.hessian`` of the size-weighted data-set loss over the flat trainable parameters."""
    named = [(k, p) for k, p in model.named_parameters() if p.requires_grad]
    shapes = [p.shape for _, p in named]
    sizes = [p.numel() for _, p in named]
    x0 = torch.cat([p.detach().reshape(-1) for _, p in named])
    n = sum(x.shape[0] for x, _ in batches)

    def f(flat: Tensor) -> Tensor:
        params = {k: c.view(s) for (k, _), c, s in zip(named, flat.split(sizes), shapes, strict=True)}
        return sum(x.shape[0] / n * loss_fn(functional_call(model, params, (x,)), y) for x, y in batches)

    was = model.training
    model.eval()
    try:
        return hessian(f)(x0)
    finally:
        model.train(was)


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
        for k, v in before[kind].items():
            assert torch.equal(after[kind][k], v), (kind, k)
    for k, g in before["grads"].items():
        assert (after["grads"][k] is None) if g is None else torch.equal(after["grads"][k], g), k


def busy_model() -> nn.Module:
    """A CNN with BatchNorm and Dropout, in train mode, with a frozen layer and stale gradients."""
    torch.manual_seed(3)
    model = nn.Sequential(
        nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.Tanh(), nn.Flatten(), nn.Dropout(0.3), nn.Linear(48, 3)
    ).double()
    model.train()
    model(torch.randn(6, 2, 6, 6, dtype=torch.float64)).sum().backward()
    model[1].weight.requires_grad_(False)
    model[1].weight.grad = None
    return model
