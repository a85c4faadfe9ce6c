"""Summary statistics of a Hessian spectrum: index, normalized index, near-zero fraction, means.

For eigenvalues ``λ_1, …, λ_n`` and a threshold ``ε`` below which an eigenvalue counts as zero
(Choromanska et al. §5.1: "All eigenvalues less than 0.001 in magnitude were set to 0"):

    index            = #{i : λ_i < −ε}                 (number of descent directions)
    normalized index = index / n                       (Choromanska et al. §5.1, Fig. 4)
    near-zero        = #{i : |λ_i| ≤ ε} / n            (the flat directions of Thesis Fig. 3.1)
    arithmetic mean  = (1/n) Σ_i λ_i = tr H / n
    harmonic mean    = ((1/n) Σ_i 1/λ_i)^{-1}          (Thesis Lemma 4.18)

The harmonic mean is defined for a positive spectrum only; it is reported as NaN when some ``λ_i ≤ 0``
(never silently clamped), and ``harmonic_mean_positive`` gives it over ``λ_i > ε``. Thesis Lemma 4.18:
for a symmetric positive-definite matrix, ``HM(eigenvalues) ≤ HM(diagonal)``, so the harmonic mean of the
diagonal bounds the spectrum's from above.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from deeplandscape.analysis.slq import SpectralDensity


@dataclass(frozen=True)
class SpectrumStatistics:
    """Index, normalized index and means of a spectrum (module docstring for the formulas).

    ``num_eigenvalues`` is ``n`` (for an SLQ estimate: ``d``). Counts from SLQ are estimates
    ``d · (fraction)``; ``std_error`` then holds the standard errors across probes of ``normalized_index``,
    ``fraction_near_zero`` and ``arithmetic_mean`` (the probe noise only, empty for an exact spectrum), and
    ``intervals`` bounds on ``normalized_index`` and ``fraction_near_zero`` that include the quadrature's
    bias (:meth:`~deeplandscape.analysis.slq.SpectralDensity.count`; for an exact spectrum the value
    itself). An estimate the quadrature cannot resolve (an interval narrower than its node spacing) is NaN,
    with ``resolved`` False and the reason in ``reasons``.
    """

    index: float
    normalized_index: float
    num_near_zero: float
    fraction_near_zero: float
    arithmetic_mean: float
    harmonic_mean: float
    harmonic_mean_positive: float
    num_eigenvalues: int
    threshold: float
    std_error: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    resolved: dict[str, bool]
    reasons: dict[str, str]


def _check_threshold(threshold: float) -> float:
    if not (threshold >= 0 and threshold < float("inf")):
        raise ValueError(f"Invalid threshold: {threshold}, expected a finite value >= 0")
    return float(threshold)


def spectrum_statistics(eigenvalues: Tensor, *, threshold: float = 1e-3) -> SpectrumStatistics:
    """Index, normalized index, near-zero fraction, arithmetic and harmonic means of a full spectrum.

    Args:
        eigenvalues: all ``n`` eigenvalues (e.g. ``exact_hessian(...).eigenvalues``).
        threshold: ``ε``; eigenvalues with ``|λ| ≤ ε`` count as zero (Choromanska et al. §5.1: 1e-3).
    """
    threshold = _check_threshold(threshold)
    lam = torch.as_tensor(eigenvalues).detach().to(torch.float64).reshape(-1).cpu()
    n = lam.numel()
    if n == 0:
        raise ValueError("Invalid eigenvalues: empty, expected at least one eigenvalue")
    if not bool(torch.isfinite(lam).all()):
        raise ValueError("Invalid eigenvalues: contain NaN or Inf")
    index = int((lam < -threshold).sum())
    near = int((lam.abs() <= threshold).sum())
    positive = lam[lam > threshold]
    hm = float(n / (1.0 / lam).sum()) if bool((lam > 0).all()) else float("nan")
    hm_pos = float(positive.numel() / (1.0 / positive).sum()) if positive.numel() else float("nan")
    return SpectrumStatistics(
        index=float(index),
        normalized_index=index / n,
        num_near_zero=float(near),
        fraction_near_zero=near / n,
        arithmetic_mean=float(lam.mean()),
        harmonic_mean=hm,
        harmonic_mean_positive=hm_pos,
        num_eigenvalues=n,
        threshold=threshold,
        std_error={},
        intervals={
            "normalized_index": (index / n, index / n),
            "fraction_near_zero": (near / n, near / n),
        },
        resolved={"normalized_index": True, "fraction_near_zero": True},
        reasons={},
    )


def density_statistics(density: SpectralDensity, *, threshold: float = 1e-3) -> SpectrumStatistics:
    """The same statistics estimated from stochastic Lanczos quadrature nodes and weights.

    Each probe gives ``Σ_i τ_i f(θ_i) ≈ (1/d) Σ_j f(λ_j)``; with ``f = 1[λ < −ε]`` this is the normalized
    index, with ``f = 1[|λ| ≤ ε]`` the near-zero fraction, with ``f(λ) = λ`` the arithmetic mean and with
    ``f(λ) = 1/λ`` over ``λ > ε`` the reciprocal harmonic mean. Values are means over probes with standard
    errors in ``std_error``. The quadrature resolves outliers sharply but the bulk only to the spacing of
    its nodes: the two counts carry a bias the standard errors do not see, bounded in ``intervals`` by the
    Chebyshev–Markov–Stieltjes inequalities (:meth:`~deeplandscape.analysis.slq.SpectralDensity.count`).
    A near-zero fraction for a threshold below the node spacing at ``±ε`` is NaN (``resolved`` False):
    e.g. ``ε = 1e-3`` in a spectrum spread over ``[−1, 1000]`` needs thousands of Lanczos steps. The means
    (first moment, exact for the quadrature up to the probe noise) need no such bound.
    """
    threshold = _check_threshold(threshold)
    w, nodes = density.weights, density.nodes
    filled = torch.where(w > 0, nodes, torch.zeros_like(nodes))
    num_probes = w.shape[0]

    def mean_and_error(values: Tensor) -> tuple[float, float]:
        per_probe = (w * values).sum(dim=1)
        err = float(per_probe.std() / num_probes**0.5) if num_probes > 1 else float("nan")
        return float(per_probe.mean()), err

    index = density.count(-math.inf, -threshold, closed="neither")
    near = density.count(-threshold, threshold) if threshold > 0 else None
    if near is None:  # ε = 0: the near-zero eigenvalues are the exact zeros, below any node spacing
        near = density.count(-math.inf, math.inf)
        near = dataclasses.replace(
            near,
            fraction=math.nan,
            lower=0.0,
            upper=1.0,
            resolved=False,
            reason="threshold 0: |λ| ≤ 0 is a single point, below the quadrature's resolution",
        )
    mean, mean_err = mean_and_error(filled)
    pos_mask = filled > threshold
    pos_mass, _ = mean_and_error(pos_mask.to(w.dtype))
    inv, _ = mean_and_error(torch.where(pos_mask, 1.0 / filled.where(pos_mask, torch.ones_like(filled)), 0.0))
    hm_pos = pos_mass / inv if inv > 0 else float("nan")
    all_positive = bool((filled[w > 0] > 0).all())
    inv_all, _ = mean_and_error(torch.where(w > 0, 1.0 / filled.where(w > 0, torch.ones_like(filled)), 0.0))
    hm = 1.0 / inv_all if all_positive else float("nan")
    return SpectrumStatistics(
        index=index.fraction * density.dim,
        normalized_index=index.fraction,
        num_near_zero=near.fraction * density.dim,
        fraction_near_zero=near.fraction,
        arithmetic_mean=mean,
        harmonic_mean=hm,
        harmonic_mean_positive=hm_pos,
        num_eigenvalues=density.dim,
        threshold=threshold,
        std_error={
            "normalized_index": index.std_error,
            "fraction_near_zero": near.std_error,
            "arithmetic_mean": mean_err,
        },
        intervals={
            "normalized_index": (index.lower, index.upper),
            "fraction_near_zero": (near.lower, near.upper),
        },
        resolved={"normalized_index": index.resolved, "fraction_near_zero": near.resolved},
        reasons={
            k: c.reason for k, c in (("normalized_index", index), ("fraction_near_zero", near)) if c.reason
        },
    )
