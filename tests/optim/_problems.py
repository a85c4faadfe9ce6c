"""Shared test problems: classic 2-D functions, a 2-4-1 MLP on two Gaussian blobs, and a training loop;
float64 regression replicas and random quadratics for the Elastic-SGD and Parle tests."""

from __future__ import annotations

import io
from collections.abc import Callable

import torch
from torch import Tensor, nn

import deeplandscape.optim as dlo
from deeplandscape.optim._parle_replicas import ReplicatedOptimizer


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


def _one_name_per_class() -> dict[str, type[torch.optim.Optimizer]]:
    """The optimizers that deeplandscape.optim declares, under their first name (aliases dropped)."""
    first: dict[type, str] = {}
    for name, cls in dlo.registry.declared().items():
        first.setdefault(cls, name)
    return {name: cls for cls, name in first.items()}


# Every optimizer of the package, from its registry: a new one is tested without being listed here.
OURS = _one_name_per_class()
# Replica-coupled optimizers train n copies of a model (tests of their own); SAM needs a closure.
REPLICATED = [name for name, cls in OURS.items() if issubclass(cls, ReplicatedOptimizer)]
NAMES = [name for name, cls in OURS.items() if name not in REPLICATED and cls is not dlo.SAM]


# Elastic-SGD and Parle: float64 replicas of a small tanh MLP on a regression task, random quadratics.
DT = torch.float64


def make_mlp(seed: int, sizes: tuple[int, ...] = (3, 5, 1)) -> nn.Module:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers += [nn.Linear(sizes[i], sizes[i + 1]), nn.Tanh()]
    return nn.Sequential(*layers[:-1]).to(DT)


def regression_data(seed: int = 0, n: int = 64, noise: float = 0.0) -> tuple[Tensor, Tensor]:
    """X ∼ N(0, I_3), Y = sin(ΣX) (+ ``noise``·N(0, 1) when ``noise`` ≠ 0)."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 3, generator=g, dtype=DT)
    Y = torch.sin(X.sum(1, keepdim=True))
    if noise:
        Y = Y + noise * torch.randn(n, 1, generator=g, dtype=DT)
    return X, Y


def index_batches(seed: int, steps: int, n: int = 64, size: int = 8) -> list[Tensor]:
    """``steps`` mini-batches of ``size`` sample indices in [0, n), drawn with a fixed generator."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, n, (size,), generator=g) for _ in range(steps)]


def backward(model: nn.Module, X: Tensor, Y: Tensor, idx: Tensor) -> Tensor:
    loss = nn.functional.mse_loss(model(X[idx]), Y[idx])
    loss.backward()
    return loss


def run_replicas(models, opt, X, Y, streams, t0, t1) -> None:
    """Steps t0..t1−1: replica a takes its gradient on batch ``streams[a][t]``, then one ``opt.step()``."""
    for t in range(t0, t1):
        opt.zero_grad()
        for a, m in enumerate(models):
            backward(m, X, Y, streams[a][t])
        opt.step()


def max_diff(a: list[Tensor], b: list[Tensor]) -> float:
    return max((x - y).abs().max().item() for x, y in zip(a, b, strict=True))


def params_of(model: nn.Module) -> list[Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def random_quadratics(d: int, n: int, seed: int) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
    """n quadratics f_a(y) = ½yᵀA_a y − b_aᵀy (A_a = MMᵀ/d + I) and n starting points, as (A, b, x0)."""
    g = torch.Generator().manual_seed(seed)
    A = [
        (lambda M: M @ M.T / d + torch.eye(d, dtype=DT))(torch.randn(d, d, generator=g, dtype=DT))
        for _ in range(n)
    ]
    b = [torch.randn(d, generator=g, dtype=DT) for _ in range(n)]
    x0 = [torch.randn(d, generator=g, dtype=DT) for _ in range(n)]
    return A, b, x0


def descend_quadratics(opt: torch.optim.Optimizer, ps: list[Tensor], A, b, steps: int) -> None:
    """``steps`` optimizer steps, replica a taking the exact gradient A_a p − b_a of its quadratic."""
    for _ in range(steps):
        for a, p in enumerate(ps):
            p.grad = A[a] @ p.detach() - b[a]
        opt.step()


# Every optimizer of deeplandscape.optim, non-degenerate, with every random source on and short cycles.
def build_any(name: str, params, **kw) -> torch.optim.Optimizer:
    """The optimizer ``name`` of :data:`EVERY` over ``params`` (``kw`` overrides its settings)."""
    base, settings = EVERY[name]
    cls = dlo.get(name.split(":")[0])
    if base is not None:
        return cls(params, base, **{**settings, **kw})
    return cls(params, **{**settings, **kw})


EVERY: dict[str, tuple[type[torch.optim.Optimizer] | None, dict]] = {
    "anneal-sgd": (torch.optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True, J=0.01, tau0=20.0, p=3,
                                         seed=0)),
    "anneal-sgd:adam": (torch.optim.Adam, dict(lr=0.01, J=0.01, tau0=20.0, p=3, seed=0)),
    "gradient-noise": (torch.optim.SGD, dict(lr=0.05, momentum=0.9, eta=0.01, seed=0)),
    "gradient-noise:adam": (torch.optim.Adam, dict(lr=0.01, eta=0.01, seed=0)),
    "sgld": (None, dict(lr=0.05, temperature=1e-3, weight_decay=1e-3, seed=0)),
    "entropy-sgd": (None, dict(lr=0.5, inner_lr=0.05, L=3, gamma=1.0, scoping=0.1, noise=1e-3, seed=0,
                               outer_momentum=0.5, outer_nesterov=True, weight_decay=1e-3)),
    "entropy-adam": (None, dict(lr=0.01, inner_lr=0.05, L=3, gamma=1.0, scoping=0.1, noise=1e-3, seed=0)),
    "hj": (None, dict(lr=0.5, inner_lr=0.05, L=3, gamma=1.0, seed=0)),
    "heat": (None, dict(lr=0.05, L=3, gamma=1e-3, weight_decay=1e-3, seed=0)),
    "sam": (torch.optim.SGD, dict(lr=0.05, momentum=0.9, rho=0.05)),
    "sam:adam": (torch.optim.Adam, dict(lr=0.01, rho=0.05, adaptive=True)),
    "parle": (None, dict(lr=0.1, L=3, noise=1e-3, seed=0, weight_decay=1e-3)),
    "elastic-sgd": (None, dict(lr=0.1, weight_decay=1e-3)),
    "distributed-parle": (None, dict(lr=0.1, L=3, noise=1e-3, seed=0)),
    "distributed-elastic-sgd": (None, dict(lr=0.1)),
}  # fmt: skip
# The optimizers that wrap a base optimizer (built with one in EVERY).
WRAPPERS = [name for name, (base, _) in EVERY.items() if base is not None and ":" not in name]


def embedding_model(dtype: torch.dtype = torch.float64, sparse: bool = False, seed: int = 0) -> nn.Module:
    """An embedding (sparse gradients with ``sparse=True``), a tanh layer and a linear read-out."""
    torch.manual_seed(seed)
    layers = {"emb": nn.Embedding(10, 4, sparse=sparse), "lin": nn.Linear(4, 3), "out": nn.Linear(3, 1)}
    return nn.ModuleDict(layers).to(dtype)


def embedding_loss(model: nn.Module, t: int) -> Tensor:
    """The mean squared error on mini-batch ``t`` (six tokens and targets drawn with seed ``t``)."""
    g = torch.Generator().manual_seed(t)
    idx = torch.randint(0, 10, (6,), generator=g)
    y = torch.randn(6, 1, generator=g).to(model["out"].weight.dtype)
    return ((model["out"](torch.tanh(model["lin"](model["emb"](idx)))) - y) ** 2).mean()


def take_steps(
    model: nn.Module, opt: torch.optim.Optimizer, t0: int, t1: int, loss_fn=embedding_loss
) -> None:
    """Mini-batches t0..t1−1, one ``step()`` each (SAM: with the closure at the perturbed weights)."""
    for t in range(t0, t1):
        opt.zero_grad()
        loss_fn(model, t).backward()
        if isinstance(opt, dlo.SAM):
            opt.step(lambda t=t: loss_fn(model, t).backward())
        else:
            opt.step()


def weights_and_reference(model: nn.Module, opt: torch.optim.Optimizer) -> list[Tensor]:
    """The parameters and, where the optimizer keeps them, the reference weights (or master)."""
    return [p.detach().clone() for p in model.parameters()] + (
        reference(opt, list(model.parameters())) if hasattr(opt, "reference_weights") else []
    )


def save_load(obj):
    """``obj`` through ``torch.save`` and ``torch.load(weights_only=True)``."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def assert_identical(a: list[Tensor], b: list[Tensor]) -> None:
    """The two lists of tensors are equal bit for bit."""
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)
