"""Width of a minimum: Local Entropy f_γ(x) (Thesis Def. 3.3, eq. (3.9) and (4.11)) estimated by Langevin
sampling, and the robust width γ* for a tolerance ε (Thesis Def. 4.20, eq. (4.38)).

Local Entropy at inverse temperature β (Thesis eq. (4.11)) is the log of the Gaussian-smoothed Gibbs factor,

    f_γ(x) = −(1/β) log ( G_{γ/β} ∗ e^{−β f} )(x) = −(1/β) log E_{y ~ N(x, (γ/β) I)} [ e^{−β f(y)} ],

with G_t the heat kernel of variance t. It tends to f(x) as γ → 0. Def. 3.3 (eq. (3.9), β = 1) writes the
same quantity without the kernel's normalization,

    f_γ^{(3.9)}(x) = −(1/β) log ∫ exp(−β f(y) − β |x − y|² / (2γ)) dy = f_γ(x) − (d / 2β) log(2πγ/β),

which differs from (4.11) by a constant of x; both are reported. The robust width (Def. 4.20) uses the
normalized form: γ* is the largest γ such that f_γ(x) − f(x) ≤ ε for all 0 ≤ γ ≤ γ*.

Estimator (thermodynamic integration). Let ρ_s(y) ∝ exp(−s β f(y) − β|x − y|²/(2γ)) for s ∈ [0, 1] and
Z_s its normalizer. Then d log Z_s / ds = −β E_{ρ_s}[f], and Z_0 is the Gaussian normalizer, so

    f_γ(x) = −(1/β) (log Z_1 − log Z_0) = ∫_0^1 E_{ρ_s}[f(y)] ds.

The integral is taken by Gauss–Legendre quadrature on ``n_nodes`` values of s; each expectation is a
Langevin-chain average, the chain started from the Gaussian factor N(x, (γ/β) I). The chain is the
Metropolis-adjusted Langevin algorithm (MALA: proposal y' = y − h ∇U_s(y) + √(2h) ξ, accepted with the
Metropolis–Hastings ratio), so its stationary law is exactly ρ_s; with ``metropolis=False`` it is the
unadjusted Langevin algorithm that Entropy-SGD uses (Thesis Alg. 2), whose bias is O(h). The step h is
adapted during burn-in towards a 57.4% acceptance rate and then frozen. ``n_chains`` independent
replicates of the whole estimate give the standard error (it does not include the bias of chains too short
to reach equilibrium: compare two values of ``n_steps``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import grad_and_value, vmap

from ._functional import parameter_vector, pure_dataset_loss
from ._model import Batch, LossFn, Output, as_batches, check_output, preserved

Energy = Callable[[Tensor], Tensor]
_DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


@dataclass(frozen=True)
class LocalEntropy:
    """Local Entropy f_γ(x) (Thesis eq. (4.11)) with its Monte-Carlo standard error.

    ``value``: f_γ(x), normalized heat-kernel form (→ f(x) as γ → 0); ``standard_error``: standard error over
    ``n_chains`` independent replicates; ``value_def33``: the Def. 3.3 form f_γ − (d/2β) log(2πγ/β);
    ``loss``: f(x); ``excess``: f_γ(x) − f(x); ``node_means``: E_{ρ_s}[f] at the quadrature nodes
    ``nodes``; ``acceptance``: mean Metropolis acceptance rate (1.0 when ``metropolis=False``);
    ``n_gradients``: gradient evaluations used.
    """

    value: float
    standard_error: float
    value_def33: float
    loss: float
    excess: float
    gamma: float
    beta: float
    dimension: int
    nodes: np.ndarray
    node_means: np.ndarray
    acceptance: float
    n_chains: int
    n_gradients: int


@dataclass(frozen=True)
class RobustWidth:
    """Robust width γ* (Thesis Def. 4.20, eq. (4.38)) for tolerance ε, found on a grid of γ.

    ``gamma_star``: the largest grid γ with f_γ − f ≤ ε at it and at every smaller grid γ (0 if the
    smallest grid value already exceeds ε); ``upper``: the next grid value, the first to exceed ε
    (``inf`` if none does), so the true γ* lies in [gamma_star, upper] up to Monte-Carlo error; ``gammas``,
    ``excess`` and ``standard_errors`` are the estimates on the grid (evaluated up to the first exceedance).
    """

    gamma_star: float
    upper: float
    epsilon: float
    gammas: np.ndarray
    excess: np.ndarray
    standard_errors: np.ndarray
    n_gradients: int


def _check_positive(value: float, name: str) -> float:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"Invalid {name}: {value!r}; must be a finite number > 0")
    return float(value)


def _check_count(value: int, name: str, minimum: int) -> int:
    if not (isinstance(value, int) and value >= minimum):
        raise ValueError(f"Invalid {name}: {value!r}; must be an integer >= {minimum}")
    return value


def _energy_and_grad(energy: Energy, y: Tensor) -> tuple[Tensor, Tensor]:
    y = y.detach().requires_grad_(True)
    with torch.enable_grad():
        value = energy(y)
        if not isinstance(value, Tensor) or value.dim() != 0:
            shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(f"Invalid energy: returned shape {shape}; expected a scalar")
        (grad,) = torch.autograd.grad(value, y)
    return value.detach(), grad.detach()


def _batched_energy_and_grad(energy: Energy, ys: Tensor, vectorize: bool) -> tuple[Tensor, Tensor, bool]:
    """(f(y_b), ∇f(y_b)) for every row y_b of ``ys``: one ``vmap`` call, or a loop if that fails."""
    if vectorize:
        try:
            grads, values = vmap(grad_and_value(energy))(ys)
        except (RuntimeError, NotImplementedError, ValueError, TypeError):
            vectorize = False  # not vmap-able (data-dependent control flow, in-place state): loop instead
    if not vectorize:
        pairs = [_energy_and_grad(energy, y) for y in ys]
        values = torch.stack([v for v, _ in pairs])
        grads = torch.stack([g for _, g in pairs])
    values, grads = values.detach(), grads.detach()
    if not torch.isfinite(values).all():
        raise ValueError(
            f"Non-finite energy ({float(values[~torch.isfinite(values)][0])}) during Langevin sampling"
        )
    return values, grads, vectorize


def local_entropy_energy(
    energy: Energy,
    x: Tensor,
    gamma: float,
    *,
    beta: float = 1.0,
    n_chains: int = 4,
    n_steps: int = 200,
    burnin: int = 100,
    n_nodes: int = 8,
    step_size: float | None = None,
    metropolis: bool = True,
    vectorize: bool = True,
    seed: int = 0,
) -> LocalEntropy:
    """Local Entropy f_γ(x) = ∫_0^1 E_{ρ_s}[f] ds (Thesis eq. (4.11), Def. 3.3) of a function of a vector.

    ``energy(y)`` returns the scalar f(y) and must be differentiable by autograd; ``x`` is a flat vector.
    Each of ``n_chains`` replicates runs, at each of ``n_nodes`` Gauss–Legendre nodes s, a Langevin chain
    of ``burnin`` + ``n_steps`` steps started from N(x, (γ/β) I), targeting
    ρ_s(y) ∝ exp(−sβ f(y) − β|x − y|²/(2γ)). The initial step ``step_size`` defaults to
    0.5 (γ/β) d^{−1/3} (the scale of the Gaussian factor, shrunk with the dimension as MALA's optimal
    scaling). Randomness comes from ``seed`` only (a CPU generator).

    All n_chains × n_nodes chains advance together: with ``vectorize=True`` each step is one
    ``torch.func.vmap(torch.func.grad_and_value(energy))`` call over the chains (an energy that vmap cannot
    handle is evaluated chain by chain instead, with the same random numbers and the same result).
    """
    gamma = _check_positive(gamma, "gamma")
    beta = _check_positive(beta, "beta")
    _check_count(n_chains, "n_chains", 2)
    _check_count(n_steps, "n_steps", 1)
    _check_count(burnin, "burnin", 0)
    _check_count(n_nodes, "n_nodes", 1)
    if x.dim() != 1 or x.numel() == 0:
        raise ValueError(f"Invalid x: shape {tuple(x.shape)}; expected a non-empty flat vector")
    if step_size is not None:
        step_size = _check_positive(step_size, "step_size")
    x = x.detach()
    d = x.numel()
    generator = torch.Generator().manual_seed(int(seed))
    nodes, weights = np.polynomial.legendre.leggauss(n_nodes)
    nodes, weights = (nodes + 1) / 2, weights / 2  # from [−1, 1] to [0, 1]
    h0 = step_size if step_size is not None else 0.5 * (gamma / beta) * d ** (-1 / 3)
    f_x = float(_batched_energy_and_grad(energy, x[None], False)[0][0])

    # All n_chains × n_nodes chains advance together; chain b = c·n_nodes + j runs at node s_j.
    n_total = n_chains * n_nodes
    s_vec = torch.as_tensor(np.tile(nodes, n_chains), dtype=x.dtype, device=x.device)

    def potential(ys: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        nonlocal vectorize
        f, g, vectorize = _batched_energy_and_grad(energy, ys, vectorize)
        diff = ys - x
        u = s_vec * beta * f + beta * diff.pow(2).sum(dim=1) / (2 * gamma)
        return u, (s_vec * beta)[:, None] * g + beta * diff / gamma, f

    # Start from the Gaussian factor N(x, (γ/β) I), exactly ρ_0 and close to ρ_s for small γ: far less
    # burn-in than starting at x, whose neighbourhood is atypical for ρ_s in high dimension.
    start = torch.randn(n_total, d, generator=generator, dtype=torch.float64).to(x.device, x.dtype)
    ys = x + math.sqrt(gamma / beta) * start
    u, grad_u, f = potential(ys)
    h = torch.full((n_total,), h0, dtype=x.dtype, device=x.device)
    totals = torch.zeros(n_total, dtype=torch.float64, device=x.device)
    accepted = 0
    for t in range(burnin + n_steps):
        mean_fwd = ys - h[:, None] * grad_u
        noise = torch.randn(n_total, d, generator=generator, dtype=torch.float64).to(x.device, x.dtype)
        ys_new = mean_fwd + torch.sqrt(2 * h)[:, None] * noise
        u_new, grad_new, f_new = potential(ys_new)
        uniform = torch.rand(n_total, generator=generator, dtype=torch.float64).to(x.device)
        if metropolis:
            mean_bwd = ys_new - h[:, None] * grad_new
            log_q_fwd = -(ys_new - mean_fwd).pow(2).sum(dim=1) / (4 * h)
            log_q_bwd = -(ys - mean_bwd).pow(2).sum(dim=1) / (4 * h)
            log_ratio = (u - u_new + log_q_bwd - log_q_fwd).to(torch.float64)
            accept = torch.log(uniform) < log_ratio
        else:
            accept = torch.ones(n_total, dtype=torch.bool, device=x.device)
        if t < burnin and metropolis:
            h = h * torch.exp(0.05 * (accept.to(h.dtype) - 0.574))
        elif t >= burnin:
            accepted += int(accept.sum())
        ys = torch.where(accept[:, None], ys_new, ys)
        u, f = torch.where(accept, u_new, u), torch.where(accept, f_new, f)
        grad_u = torch.where(accept[:, None], grad_new, grad_u)
        if t >= burnin:
            totals += f.to(torch.float64)
    node_means = (totals / n_steps).cpu().numpy().reshape(n_chains, n_nodes)
    estimates = node_means @ weights
    proposed = n_total * n_steps
    value = float(estimates.mean())
    se = float(estimates.std(ddof=1) / math.sqrt(n_chains))
    return LocalEntropy(
        value=value,
        standard_error=se,
        value_def33=value - d / (2 * beta) * math.log(2 * math.pi * gamma / beta),
        loss=f_x,
        excess=value - f_x,
        gamma=gamma,
        beta=beta,
        dimension=d,
        nodes=nodes,
        node_means=node_means.mean(axis=0),
        acceptance=accepted / proposed,
        n_chains=n_chains,
        n_gradients=n_chains * n_nodes * (burnin + n_steps + 1) + 1,
    )


def _vectorize_default(model: nn.Module, train: bool, kwargs: dict) -> dict:
    """Vectorize over chains in eval mode for models without convolutions (as the slices do)."""
    if train:
        return {**kwargs, "vectorize": False}
    has_conv = any(isinstance(m, nn.modules.conv._ConvNd) for m in model.modules())
    return {"vectorize": not has_conv, **kwargs}


def _model_energy(model: nn.Module, loss_fn: LossFn, batches: list[Batch], output: Output) -> Energy:
    check_output(output)

    def energy(y: Tensor) -> Tensor:
        return pure_dataset_loss(model, loss_fn, batches, y, output)

    return energy


def _check_deterministic(model: nn.Module, train: bool) -> None:
    """Langevin sampling needs f to be a function of the weights: train-mode Dropout draws a new mask at
    every evaluation, and the Metropolis test would then compare two different functions."""
    if train:
        active = [name for name, m in model.named_modules() if isinstance(m, _DROPOUT) and m.p > 0]
        if active:
            raise ValueError(
                f"Invalid train: True with Dropout (module {active[0]}): the loss is then random, not a "
                "function of the weights; use train=False"
            )


def local_entropy(
    model: nn.Module,
    loss_fn: LossFn,
    data: Iterable[Batch] | Batch,
    gamma: float,
    *,
    train: bool = False,
    output: Output = None,
    **kwargs,
) -> LocalEntropy:
    """Local Entropy f_γ(x) (Thesis Def. 3.3, eq. (4.11)) of a model's data-set loss at its current weights.

    f is the size-weighted mean loss over ``data`` as a function of the trainable parameters; keyword
    arguments go to :func:`local_entropy_energy` (``beta``, ``n_chains``, ``n_steps``, ``burnin``,
    ``n_nodes``, ``step_size``, ``metropolis``, ``vectorize``, ``seed``); ``vectorize`` defaults to True
    for models without convolutions in eval mode. Evaluated in eval mode unless ``train=True`` (then chain
    by chain; refused with active Dropout, whose random masks make the loss no function of the weights);
    ``output`` selects the logits of a model with dict or tuple outputs; the model is left bitwise
    unchanged. Cost: ``n_gradients`` full-data gradients.
    """
    batches = as_batches(data)
    _check_deterministic(model, train)
    with preserved(model, train=train):
        return local_entropy_energy(
            _model_energy(model, loss_fn, batches, output),
            parameter_vector(model),
            gamma,
            **_vectorize_default(model, train, kwargs),
        )


def robust_width_energy(
    energy: Energy,
    x: Tensor,
    epsilon: float,
    gammas: Sequence[float] | np.ndarray | None = None,
    **kwargs,
) -> RobustWidth:
    """Robust width γ* = sup{γ : f_γ'(x) − f(x) ≤ ε for all 0 ≤ γ' ≤ γ} (Thesis Def. 4.20, eq. (4.38)).

    Scans the increasing grid ``gammas`` (default: 13 values, log-spaced on [1e-4, 1]) and stops at the
    first γ where the estimated excess f_γ(x) − f(x) exceeds ε. Keyword arguments go to
    :func:`local_entropy_energy`.
    """
    epsilon = _check_positive(epsilon, "epsilon")
    grid = np.logspace(-4, 0, 13) if gammas is None else np.asarray(gammas, dtype=np.float64).reshape(-1)
    if grid.size == 0 or not np.all(np.isfinite(grid)) or np.any(grid <= 0) or np.any(np.diff(grid) <= 0):
        raise ValueError(
            f"Invalid gammas: {grid.tolist()}; must be a non-empty increasing grid of values > 0"
        )
    estimates = []
    for gamma in grid:
        estimates.append(local_entropy_energy(energy, x, float(gamma), **kwargs))
        if estimates[-1].excess > epsilon:
            break
    return robust_width_from_estimates(estimates, epsilon)


def robust_width_from_estimates(estimates: Sequence[LocalEntropy], epsilon: float) -> RobustWidth:
    """γ* (Thesis Def. 4.20, eq. (4.38)) from Local Entropy estimates at increasing γ (e.g. computed for a
    report): the largest γ before the first estimate whose excess f_γ(x) − f(x) exceeds ε."""
    epsilon = _check_positive(epsilon, "epsilon")
    gammas = np.asarray([e.gamma for e in estimates])
    if gammas.size == 0 or np.any(np.diff(gammas) <= 0):
        raise ValueError(f"Invalid estimates: gammas {gammas.tolist()}; must be non-empty and increasing")
    gamma_star, upper, used = 0.0, math.inf, len(estimates)
    for i, estimate in enumerate(estimates):
        if estimate.excess > epsilon:
            upper, used = estimate.gamma, i + 1
            break
        gamma_star = estimate.gamma
    kept = estimates[:used]
    return RobustWidth(
        gamma_star=gamma_star,
        upper=upper,
        epsilon=epsilon,
        gammas=gammas[:used],
        excess=np.asarray([e.excess for e in kept]),
        standard_errors=np.asarray([e.standard_error for e in kept]),
        n_gradients=sum(e.n_gradients for e in kept),
    )


def robust_width(
    model: nn.Module,
    loss_fn: LossFn,
    data: Iterable[Batch] | Batch,
    epsilon: float,
    gammas: Sequence[float] | np.ndarray | None = None,
    *,
    train: bool = False,
    output: Output = None,
    **kwargs,
) -> RobustWidth:
    """Robust width γ* (Thesis Def. 4.20) of a model's data-set loss at its current weights.

    See :func:`robust_width_energy`; ``train`` and ``output`` as for :func:`local_entropy`; the model is
    left bitwise unchanged.
    """
    batches = as_batches(data)
    _check_deterministic(model, train)
    with preserved(model, train=train):
        energy = _model_energy(model, loss_fn, batches, output)
        kwargs = _vectorize_default(model, train, kwargs)
        return robust_width_energy(energy, parameter_vector(model), epsilon, gammas, **kwargs)


__all__ = [
    "LocalEntropy",
    "RobustWidth",
    "local_entropy",
    "local_entropy_energy",
    "robust_width",
    "robust_width_energy",
    "robust_width_from_estimates",
]
