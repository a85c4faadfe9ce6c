"""Small float64 models, data and a torch.func.hessian oracle for the curvature and noise tests."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn
from torch.func import functional_call, hessian

from ._unchanged import assert_unchanged, snapshot  # noqa: F401 (re-exported)
from ._unchanged import busy_model as _busy_model

CE = nn.CrossEntropyLoss()


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


#: The (model, data) factories every oracle comparison runs on: an MLP and a CNN, float64.
MODELS_AND_DATA = [(mlp, mlp_data), (cnn, cnn_data)]


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


def busy_model() -> nn.Module:
    """The busy CNN of ``_unchanged`` with tanh units and 3 classes (for the curvature tests)."""
    return _busy_model(nn.Tanh, classes=3)


def busy_batch() -> tuple[Tensor, Tensor]:
    """One batch of 5 samples for :func:`busy_model`."""
    g = torch.Generator().manual_seed(4)
    return torch.randn(5, 2, 6, 6, generator=g, dtype=torch.float64), torch.randint(0, 3, (5,), generator=g)
