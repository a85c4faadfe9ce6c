"""Spectral density of a symmetric operator by stochastic Lanczos quadrature (SLQ).

The spectral density of ``A ∈ R^{d×d}`` with eigenvalues ``λ_1, …, λ_d`` is
``φ(t) = (1/d) Σ_i δ(t − λ_i)``; smoothed with a Gaussian ``g_σ(x) = exp(−x²/2σ²)/(σ√(2π))`` it is

    φ_σ(t) = (1/d) Σ_i g_σ(t − λ_i) = (1/d) tr g_σ(t·I − A) = E_v[vᵀ g_σ(t·I − A) v]

for a random unit ``v`` with ``E[v vᵀ] = I/d`` (here Rademacher, normalized). For each probe ``v_l``, ``m``
Lanczos steps started at ``v_l`` give ``T_m = Q Θ Qᵀ`` and the Gauss quadrature
``v_lᵀ f(A) v_l ≈ Σ_i τ_i^l f(θ_i^l)`` with nodes ``θ_i^l`` (Ritz values) and weights ``τ_i^l = Q_{1i}²``
(Golub & Meurant 2010; Lin, Saad & Yang 2016; Ghorbani, Krishnan & Xiao 2019). Hence

    φ_σ(t) ≈ (1/n_v) Σ_l Σ_i τ_i^l g_σ(t − θ_i^l).

The density integrates to 1 (the weights of each probe sum to 1); ``d · φ_σ`` counts eigenvalues.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from deeplandscape.analysis.lanczos import lanczos_tridiagonal
from deeplandscape.analysis.linear_operator import SymmetricOperator, as_operator


@dataclass(frozen=True)
class SpectralDensity:
    """A Gaussian-smoothed spectral density and the quadrature behind it.

    Attributes:
        grid: ``(num_points,)`` points ``t``.
        density: ``(num_points,)`` ``φ_σ(t)``, integrating to 1 over the real line.
        nodes: ``(num_probes, num_steps)`` Ritz values ``θ_i^l`` (padded with NaN for a probe whose Krylov
            space became invariant early).
        weights: ``(num_probes, num_steps)`` quadrature weights ``τ_i^l`` (0 where padded); each row sums
            to 1.
        sigma: the Gaussian width used.
        dim: ``d``, the operator's dimension (multiply ``density`` by it to count eigenvalues).
        num_matvecs: operator applications used (``≤ num_probes · num_steps``).
    """

    grid: Tensor
    density: Tensor
    nodes: Tensor
    weights: Tensor
    sigma: float
    dim: int
    num_matvecs: int

    def mass(self, low: float, high: float) -> tuple[float, float]:
        """Fraction of eigenvalues in ``[low, high]`` estimated from the quadrature (mean over probes), with
        its standard error across probes. Nodes are counted unsmoothed (``σ`` plays no role)."""
        inside = ((self.nodes >= low) & (self.nodes <= high)).to(self.weights.dtype)
        per_probe = (self.weights * inside).sum(dim=1)
        n = per_probe.shape[0]
        err = float(per_probe.std() / math.sqrt(n)) if n > 1 else float("nan")
        return float(per_probe.mean()), err

    def moment(self, power: int) -> tuple[float, float]:
        """``(1/d) tr A^power`` estimated by the quadrature, with its standard error across probes."""
        values = torch.where(self.weights > 0, self.nodes, torch.zeros_like(self.nodes))
        per_probe = (self.weights * values**power).sum(dim=1)
        n = per_probe.shape[0]
        err = float(per_probe.std() / math.sqrt(n)) if n > 1 else float("nan")
        return float(per_probe.mean()), err


def spectral_density(
    operator: SymmetricOperator | Tensor,
    *,
    num_probes: int = 8,
    num_steps: int = 80,
    num_points: int = 1000,
    sigma: float | None = None,
    grid: Tensor | None = None,
    seed: int | torch.Generator = 0,
) -> SpectralDensity:
    """Gaussian-smoothed spectral density ``φ_σ`` of a symmetric operator by SLQ (module docstring).

    Args:
        operator: a :class:`~deeplandscape.analysis.linear_operator.SymmetricOperator` (e.g. a
            :class:`~deeplandscape.analysis.hvp.HessianOperator`) or a dense symmetric tensor.
        num_probes: Rademacher probe vectors ``n_v`` (Ghorbani et al. 2019 use 10 or fewer).
        num_steps: Lanczos steps ``m`` per probe (capped at ``d``); ``m`` nodes per probe resolve the extreme
            eigenvalues exactly and the bulk to a resolution ~ spread/m.
        num_points: grid points when ``grid`` is not given.
        sigma: Gaussian width; default 1% of the spread ``θ_max − θ_min`` of the nodes (or 1e-3 · max|θ| if
            the nodes coincide).
        grid: the points ``t``; default ``num_points`` points from ``θ_min − 5σ`` to ``θ_max + 5σ``.
        seed: seed or ``torch.Generator`` for the probes (drawn on the CPU).
    """
    op = as_operator(operator)
    dim = int(op.dim)
    if not isinstance(num_probes, int) or num_probes < 1:
        raise ValueError(f"Invalid num_probes: {num_probes}, expected an integer >= 1")
    if not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"Invalid num_steps: {num_steps}, expected an integer >= 1")
    if not isinstance(num_points, int) or num_points < 2:
        raise ValueError(f"Invalid num_points: {num_points}, expected an integer >= 2")
    if sigma is not None and not sigma > 0:
        raise ValueError(f"Invalid sigma: {sigma}, expected > 0")
    steps = min(num_steps, dim)
    generator = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(int(seed))
    nodes = torch.full((num_probes, steps), float("nan"), dtype=torch.float64)
    weights = torch.zeros(num_probes, steps, dtype=torch.float64)
    num_matvecs = 0
    for probe in range(num_probes):
        v = torch.randint(0, 2, (dim,), generator=generator).to(dtype=op.dtype, device=op.device) * 2 - 1
        tri = lanczos_tridiagonal(op, v, steps)
        num_matvecs += tri.num_matvecs
        theta, q = torch.linalg.eigh(tri.matrix())
        m = theta.shape[0]
        nodes[probe, :m] = theta
        weights[probe, :m] = q[0] ** 2
    valid = weights > 0
    lo, hi = float(nodes[valid].min()), float(nodes[valid].max())
    if sigma is None:
        spread = hi - lo
        sigma = 0.01 * spread if spread > 0 else max(1e-3 * max(abs(lo), abs(hi)), 1e-12)
    if grid is None:
        grid = torch.linspace(lo - 5 * sigma, hi + 5 * sigma, num_points, dtype=torch.float64)
    else:
        grid = torch.as_tensor(grid, dtype=torch.float64).reshape(-1)
    filled = torch.where(valid, nodes, torch.zeros_like(nodes))
    kernel = torch.exp(-((grid[:, None, None] - filled[None]) ** 2) / (2 * sigma**2)) / (
        sigma * math.sqrt(2 * math.pi)
    )
    density = (kernel * weights[None]).sum(dim=(1, 2)) / num_probes
    return SpectralDensity(
        grid=grid,
        density=density,
        nodes=nodes,
        weights=weights,
        sigma=float(sigma),
        dim=dim,
        num_matvecs=num_matvecs,
    )
