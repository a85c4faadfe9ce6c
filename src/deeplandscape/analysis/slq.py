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

What these numbers are, and are not. The smoothing ``σ`` is a display device: a peak of the plotted density
is as wide as ``σ`` whatever the spectrum. The quadrature itself resolves the extreme eigenvalues sharply
(they are nodes) but the bulk only to the spacing of its nodes, about ``spread / num_steps``: the fraction
of eigenvalues in an interval, counted from the nodes (:meth:`SpectralDensity.mass`), is biased whenever
eigenvalues lie between the nodes next to the interval's ends, and the probe-to-probe standard error does
not see that bias. :meth:`SpectralDensity.count` bounds it. For each probe ``v`` the spectral measure
``μ_v = Σ_j (vᵀu_j)² δ_{λ_j}`` and its ``m``-node Gauss rule satisfy the Chebyshev–Markov–Stieltjes
inequalities (Szegő, *Orthogonal Polynomials*, Thm. 3.41.1; Golub & Meurant 2010, §6.4): at every node
``x_k`` (ascending, weights ``τ_k``)

    Σ_{j<k} τ_j ≤ μ_v((−∞, x_k)) ≤ μ_v((−∞, x_k]) ≤ Σ_{j≤k} τ_j,

so the distribution function at any ``t`` is known to within the weights of the two nodes around ``t``,
and the mass of ``[a, b]`` within the weights of the nodes around ``a`` and ``b``. These per-probe bounds
hold exactly (they include the quadrature bias); their means over probes, widened by a 95% Student-t
allowance for the probe-to-probe variance (``E_v μ_v`` is the spectral distribution), give ``lower`` and
``upper``. An interval narrower than the node spacing at its ends cannot be resolved: its point estimate
is NaN and only the bounds are given (e.g. ``|λ| ≤ 1e-3`` in a spectrum spread over ``[−1, 1000]``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from scipy.stats import t as student_t
from torch import Tensor

from deeplandscape.analysis.lanczos import lanczos_tridiagonal
from deeplandscape.analysis.linear_operator import SymmetricOperator, as_operator

CLOSED = ("both", "left", "right", "neither")


@dataclass(frozen=True)
class EigenvalueCount:
    """The fraction of eigenvalues in an interval, from the quadrature, with bounds that include its bias.

    Attributes:
        low, high: the interval's ends; ``closed`` says which ends belong to it.
        fraction: the quadrature estimate (mean over probes of the weights of the nodes inside); NaN when
            the interval is narrower than the node spacing at its ends (``resolved`` is False).
        std_error: the standard error of ``fraction`` across probes (probe noise only, not the bias).
        lower, upper: bounds on the true fraction: the Chebyshev–Markov–Stieltjes bounds of each probe
            (exact, the quadrature bias included), averaged over probes and widened by a 95% Student-t
            allowance for the probe-to-probe variance (none with one probe); clipped to ``[0, 1]``.
        resolved: whether the interval is at least as wide as the median node spacing at its finite ends.
        spacing: that median node spacing (``inf`` for an interval with no finite end).
        reason: why the estimate is NaN, or ``""``.
        dim: ``d``; multiply a fraction by it for a count.
    """

    low: float
    high: float
    closed: str
    fraction: float
    std_error: float
    lower: float
    upper: float
    resolved: bool
    spacing: float
    reason: str
    dim: int


def _mean_and_error(values: Tensor) -> tuple[float, float]:
    n = values.shape[0]
    err = float(values.std() / math.sqrt(n)) if n > 1 else float("nan")
    return float(values.mean()), err


def _below(nodes: Tensor, weights: Tensor, t: float, inclusive: bool) -> tuple[Tensor, Tensor, Tensor]:
    """Per probe: the quadrature's mass of ``(−∞, t]`` (``inclusive``) or ``(−∞, t)``, and the
    Chebyshev–Markov–Stieltjes bounds ``[G − τ_last, G + τ_next]`` on the true mass, with ``τ_last`` the
    weight of the last node counted and ``τ_next`` that of the first node not counted."""
    valid = weights > 0
    if math.isinf(t):  # nothing lies below −∞, everything below +∞
        mass = weights.sum(dim=1) if t > 0 else torch.zeros(weights.shape[0], dtype=weights.dtype)
        return mass, mass, mass
    inside = valid & ((nodes <= t) if inclusive else (nodes < t))
    gauss = (weights * inside).sum(dim=1)
    filled = torch.where(valid, nodes, torch.full_like(nodes, float("nan")))
    last = torch.where(inside, filled, torch.full_like(nodes, -math.inf)).argmax(dim=1)
    first = torch.where(valid & ~inside, filled, torch.full_like(nodes, math.inf)).argmin(dim=1)
    rows = torch.arange(nodes.shape[0])
    tau_last = torch.where(inside.any(dim=1), weights[rows, last], torch.zeros_like(gauss))
    tau_next = torch.where((valid & ~inside).any(dim=1), weights[rows, first], torch.zeros_like(gauss))
    return gauss, gauss - tau_last, gauss + tau_next


def _spacing(nodes: Tensor, weights: Tensor, t: float) -> float:
    """Median over probes of the gap between the two nodes around ``t`` (the two nearest when ``t`` lies
    beyond the nodes): the quadrature's resolution at ``t``."""
    gaps = []
    for row, w in zip(nodes, weights, strict=True):
        x = row[w > 0].sort().values
        if x.numel() < 2:
            gaps.append(math.inf)
            continue
        k = int(torch.searchsorted(x, torch.tensor([t], dtype=x.dtype), right=True))
        k = min(max(k, 1), x.numel() - 1)
        gaps.append(float(x[k] - x[k - 1]))
    return float(torch.tensor(gaps).median())


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
        exhausted: ``(num_probes,)`` bool, the probe's Krylov space was exhausted (an invariant space, or
            ``d`` steps): its quadrature is exact, its nodes and weights are its spectral measure.
    """

    grid: Tensor
    density: Tensor
    nodes: Tensor
    weights: Tensor
    sigma: float
    dim: int
    num_matvecs: int
    exhausted: Tensor

    def mass(self, low: float, high: float) -> tuple[float, float]:
        """Fraction of eigenvalues in ``[low, high]`` estimated from the quadrature (mean over probes), with
        its standard error across probes. Nodes are counted unsmoothed (``σ`` plays no role). The standard
        error leaves out the quadrature's bias: :meth:`count` bounds it."""
        inside = ((self.nodes >= low) & (self.nodes <= high)).to(self.weights.dtype)
        return _mean_and_error((self.weights * inside).sum(dim=1))

    def count(self, low: float, high: float, *, closed: str = "both") -> EigenvalueCount:
        """The fraction of eigenvalues in the interval from ``low`` to ``high`` (``±inf`` allowed;
        ``closed``: ``"both"``, ``"left"``, ``"right"`` or ``"neither"`` end included), with
        Chebyshev–Markov–Stieltjes bounds that include the quadrature's bias (module docstring)."""
        if closed not in CLOSED:
            raise ValueError(f"Invalid closed: {closed!r}, expected one of {CLOSED}")
        if math.isnan(low) or math.isnan(high) or not low < high:
            raise ValueError(f"Invalid interval: low={low}, high={high}, expected low < high")
        right = _below(self.nodes, self.weights, high, closed in ("both", "right"))
        left = _below(self.nodes, self.weights, low, closed in ("right", "neither"))
        gauss = right[0] - left[0]
        fraction, err = _mean_and_error(gauss)
        low_bound, up_bound = (right[1] - left[2]).clamp(0, 1), (right[2] - left[1]).clamp(0, 1)
        low_bound = torch.where(self.exhausted, gauss, low_bound)  # an exact quadrature: no bias
        up_bound = torch.where(self.exhausted, gauss, up_bound)
        n = gauss.shape[0]
        allowance = float(student_t.ppf(0.975, n - 1)) / math.sqrt(n) if n > 1 else 0.0
        lower = max(0.0, float(low_bound.mean()) - allowance * float(low_bound.std() if n > 1 else 0.0))
        upper = min(1.0, float(up_bound.mean()) + allowance * float(up_bound.std() if n > 1 else 0.0))
        ends = [t for t in (low, high) if math.isfinite(t)]
        inexact = ~self.exhausted
        spacing = math.inf
        if ends and bool(inexact.any()):
            nodes, weights = self.nodes[inexact], self.weights[inexact]
            spacing = max(_spacing(nodes, weights, t) for t in ends)
        resolved = high - low >= spacing or bool(self.exhausted.all())
        reason = ""
        if not resolved:
            reason = (
                f"the interval [{low:g}, {high:g}] is narrower than the quadrature's node spacing "
                f"{spacing:.3g} at its ends ({self.nodes.shape[1]} Lanczos steps); only the bounds are known"
            )
            fraction = float("nan")
        return EigenvalueCount(
            low=float(low),
            high=float(high),
            closed=closed,
            fraction=fraction,
            std_error=err,
            lower=lower,
            upper=upper,
            resolved=resolved,
            spacing=spacing,
            reason=reason,
            dim=self.dim,
        )

    def moment(self, power: int) -> tuple[float, float]:
        """``(1/d) tr A^power`` estimated by the quadrature, with its standard error across probes."""
        values = torch.where(self.weights > 0, self.nodes, torch.zeros_like(self.nodes))
        return _mean_and_error((self.weights * values**power).sum(dim=1))


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
    exhausted = torch.zeros(num_probes, dtype=torch.bool)
    num_matvecs = 0
    for probe in range(num_probes):
        v = torch.randint(0, 2, (dim,), generator=generator).to(dtype=op.dtype, device=op.device) * 2 - 1
        tri = lanczos_tridiagonal(op, v, steps)
        num_matvecs += tri.num_matvecs
        exhausted[probe] = tri.invariant or tri.num_matvecs == dim
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
        exhausted=exhausted,
    )
