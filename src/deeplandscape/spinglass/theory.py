"""Closed-form theory of the spherical p-spin glass: complexity, energy thresholds, topology trivialization.

Complexity (Auffinger, Ben Arous & Černý 2013, Thm 2.5, 2.8; Choromanska et al. §4; AnnealSGD paper
eq. (5)–(6) and Fig. 1). With E_∞(p) = 2√((p−1)/p) and, for u ≤ −E_∞,

    I_1(u) = −(u/E_∞²) √(u² − E_∞²) − log(−u + √(u² − E_∞²)) + log E_∞,

the mean number of critical points of index k (resp. of any index) with H ≤ n·u grows as e^{n Θ}, where

    Θ_{k,p}(u) = ½ log(p−1) − (p−2)/(4(p−1)) u² − (k+1) I_1(u)   for u ≤ −E_∞,
               = ½ log(p−1) − (p−2)/p                          for u ≥ −E_∞,
    Θ_p(u)     = ½ log(p−1) − (p−2)/(4(p−1)) u² − I_1(u)        for u ≤ −E_∞,
               = ½ log(p−1) − (p−2)/(4(p−1)) u²                for −E_∞ ≤ u ≤ 0,
               = ½ log(p−1)                                    for u ≥ 0.

(The text extraction of Choromanska et al. prints the u ≥ −E_∞ branch of Θ_{k,p} as the quadratic; the
functions are stated there to be non-decreasing and continuous, which holds only for the constant
branch of Auffinger et al., whose value ½ log(p−1) − (p−2)/p is the quadratic's value at u = −E_∞.)
E_k(p) is the zero of Θ_{k,p} below −E_∞: no critical point of index ≥ k lies below −n E_k, and −n E_0 is
the ground-state bound. For p = 3, E_0 ≈ 1.657 and E_∞ ≈ 1.633 (Sagun et al. §2.1.1). These are n → ∞
limits.

Topology trivialization by an external field (Fyodorov 2013; AnnealSGD paper §4.2–4.4, eq. (8)–(14)):
the parameter B = (J² p(p−2) − ν²)/(J² p² + ν²) ∈ (−1, 1 − 2/p] separates an exponential regime (B > 0),
a polynomial band |B| = O(1/n) and total trivialization (B = −Ω(1/n), a single minimum); B = 0 at the
critical field ν_c = J√(p(p−2)). The counts of eq. (9)–(11) are large-n asymptotics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq


def _check_p(p: int) -> int:
    if not isinstance(p, (int, np.integer)) or isinstance(p, bool) or p < 2:
        raise ValueError(f"Invalid p: {p!r} (must be an integer ≥ 2)")
    return int(p)


def _check_k(k: int) -> int:
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 0:
        raise ValueError(f"Invalid k: {k!r} (must be an integer ≥ 0)")
    return int(k)


def e_inf(p: int) -> float:
    """E_∞(p) = 2√((p−1)/p): −n E_∞ is the energy above which critical points have diverging index."""
    p = _check_p(p)
    return 2.0 * math.sqrt((p - 1) / p)


def rate_i1(u, p: int):
    """I_1(u) = −(u/E_∞²)√(u² − E_∞²) − log(−u + √(u² − E_∞²)) + log E_∞, for u ≤ −E_∞ (0 at −E_∞).

    Vectorized over ``u``; ``ValueError`` if any u > −E_∞.
    """
    einf = e_inf(p)
    u = np.asarray(u, dtype=float)
    if np.any(u > -einf * (1 - 1e-12)):
        raise ValueError(f"Invalid u: I_1 is defined for u ≤ −E_∞ = {-einf:.6f}")
    root = np.sqrt(np.maximum(u * u - einf * einf, 0.0))
    return -(u / einf**2) * root - np.log(-u + root) + math.log(einf)


def complexity(u, p: int, k: int | None = None):
    """Θ_{k,p}(u) for an index k, or Θ_p(u) (all indices) for ``k=None``; vectorized over ``u``.

    Returns a float for scalar ``u`` and an ndarray otherwise. See the module docstring for the formula.
    """
    p = _check_p(p)
    if k is not None:
        k = _check_k(k)
    u_arr = np.asarray(u, dtype=float)
    einf = e_inf(p)
    base = 0.5 * math.log(p - 1) - (p - 2) / (4 * (p - 1)) * u_arr**2
    below = u_arr <= -einf
    i1 = np.zeros_like(u_arr)
    if np.any(below):
        i1[below] = rate_i1(u_arr[below], p)
    if k is not None:
        plateau = 0.5 * math.log(p - 1) - (p - 2) / p
        out = np.where(below, base - (k + 1) * i1, plateau)
    else:
        out = np.where(below, base - i1, np.where(u_arr <= 0, base, 0.5 * math.log(p - 1)))
    return float(out) if out.ndim == 0 else out


def e_k(p: int, k: int) -> float:
    """E_k(p): −E_k is the zero of Θ_{k,p} below −E_∞ (E_0 bounds the ground state, Auffinger et al.
    Thm 2.12; Choromanska §4). Decreases strictly in k towards E_∞. For p = 2, E_k = E_∞ = 1 (no band)."""
    p, k = _check_p(p), _check_k(k)
    einf = e_inf(p)
    if p == 2:
        return einf

    def theta(u: float) -> float:
        return complexity(u, p, k)

    hi = -einf
    lo = -einf - 1.0
    while theta(lo) > 0:
        lo -= 1.0
    return -brentq(theta, lo, hi, xtol=1e-14, rtol=1e-14)


def e0(p: int) -> float:
    """E_0(p) = E_k(p, 0), the ground-state energy bound: lim inf min H/n ≥ −E_0."""
    return e_k(p, 0)


def critical_field(p: int, coupling: float = 1.0) -> float:
    """ν_c = J√(p(p−2)), the field at which B = 0 (AnnealSGD paper §4.2)."""
    p = _check_p(p)
    return abs(coupling) * math.sqrt(p * (p - 2))


def field_parameter(p: int, nu: float, coupling: float = 1.0) -> float:
    """B = (J² p(p−2) − ν²)/(J² p² + ν²) ∈ (−1, 1 − 2/p], AnnealSGD paper eq. (8)."""
    p = _check_p(p)
    if not (math.isfinite(nu) and nu >= 0):
        raise ValueError(f"Invalid nu: {nu!r} (must be a finite number ≥ 0)")
    if not math.isfinite(coupling) or coupling == 0:
        raise ValueError(f"Invalid coupling: {coupling!r} (must be finite and non-zero)")
    j2 = coupling * coupling
    return (j2 * p * (p - 2) - nu * nu) / (j2 * p * p + nu * nu)


B = field_parameter  # the paper's name for it, eq. (8)


def field_for_parameter(p: int, b: float, coupling: float = 1.0) -> float:
    """The field ν that gives a parameter B (the inverse of eq. (8)): ν² = J² p (p−2 − pB)/(1 + B)."""
    p = _check_p(p)
    if not -1 < b <= 1 - 2 / p:
        raise ValueError(f"Invalid b: {b!r} (must be in (−1, {1 - 2 / p:.6g}])")
    return abs(coupling) * math.sqrt(max(p * (p - 2 - p * b) / (1 + b), 0.0))


@dataclass(frozen=True)
class Regime:
    """Where (n, B) lies in Fyodorov's phase diagram, with the asymptotic counts of eq. (9)–(11).

    Attributes:
        name: "exponential" (nB > band), "polynomial" (|nB| ≤ band) or "trivial" (nB < −band).
        b: the parameter B.
        tau: τ = −nB, the order parameter of Thm 3.
        kappa: κ = −2B n^{1/3}, the order parameter of Thm 4.
        critical_points: E crt(H̃) by eq. (9) (asymptotic).
        minima: E crt_0(H̃) by eq. (11) up to its unknown constant C (set to 1), or 1 when κ ≥ 0; NaN where
            the theorem gives no formula (|κ| small).
    """

    name: str
    b: float
    tau: float
    kappa: float
    critical_points: float
    minima: float


def expected_critical_points(n: int, b: float) -> float:
    """E crt(H̃) for large n, AnnealSGD paper eq. (9) (Fyodorov 2013, Thm 2):

        2                                             if B = −Ω(1/n)   (here: τ = −nB > 1),
        (2n/√π) τ^{−3/2}                              if B = −τ/n, τ of order 1 (here: 0 < τ ≤ 1),
        4√n √((1+B)/(πB)) exp((n/2) log((1+B)/(1−B)))  if B > 0.

    Asymptotic: the boundaries between the cases are a matter of scale, not sharp thresholds. At B = 0
    exactly the formulas diverge and ``inf`` is returned.
    """
    if n < 2:
        raise ValueError(f"Invalid n: {n!r} (must be ≥ 2)")
    if b > 0:
        return (
            4
            * math.sqrt(n)
            * math.sqrt((1 + b) / (math.pi * b))
            * math.exp(0.5 * n * math.log((1 + b) / (1 - b)))
        )
    tau = -n * b
    if tau == 0:
        return math.inf
    if tau > 1:
        return 2.0
    return 2 * n / math.sqrt(math.pi) * tau**-1.5


def expected_critical_points_scaling(tau: float) -> float:
    """lim n^{−1} E crt(H̃) for B = −τ/n, AnnealSGD paper eq. (10) (Fyodorov 2013, Thm 3), |τ| ≫ 1:

    (2/√π) τ^{−3/2}          for τ ≫ 1,
    (2/√(π|τ|)) · 2 e^{|τ|}   for τ ≪ −1.
    """
    if tau == 0:
        raise ValueError("Invalid tau: 0 (eq. (10) holds for |τ| ≫ 1)")
    if tau > 0:
        return 2 / math.sqrt(math.pi) * tau**-1.5
    return 2 / math.sqrt(math.pi * abs(tau)) * 2 * math.exp(abs(tau))


def expected_minima(kappa: float, constant: float = 1.0) -> float:
    """lim E crt_0(H̃) for B = −(κ/2) n^{−1/3}, AnnealSGD paper eq. (11) (Fyodorov 2013, Thm 4):

        1                                       for κ ≫ 1,
        C exp(κ²/24 + 4√2 |κ|^{3/2} / 3)         for κ ≪ −1   (C unknown; ``constant``).

    Written as printed in the paper (whose remark that κ = log n gives exp((log n)²) minima matches
    the κ² term). NaN for |κ| < 1, where the theorem gives no formula.
    """
    if kappa >= 1:
        return 1.0
    if kappa <= -1:
        a = abs(kappa)
        return constant * math.exp(a * a / 24 + 4 * math.sqrt(2) * a**1.5 / 3)
    return math.nan


def regime(n: int, p: int, nu: float, coupling: float = 1.0, band: float = 1.0) -> Regime:
    """Classify the perturbed p-spin glass with n spins and field ν (AnnealSGD paper §4.2–4.3).

    ``band`` sets the width of the polynomial band in units of 1/n: |nB| ≤ band is "polynomial". The
    paper's three settings of §5.1 (n = 100, p = 3) fall as intended for any band in (0.25, 33):
    ν = 1/n gives nB ≈ 33, ν = √3(1 − 1/n)^{1/2} gives nB ≈ 0.25, ν = 3 gives nB ≈ −33.
    """
    if not (isinstance(n, int) and n >= 2):
        raise ValueError(f"Invalid n: {n!r} (must be an integer ≥ 2)")
    if not band > 0:
        raise ValueError(f"Invalid band: {band!r} (must be > 0)")
    b = field_parameter(p, nu, coupling)
    tau = -n * b
    name = "exponential" if tau < -band else "trivial" if tau > band else "polynomial"
    kappa = -2 * b * n ** (1 / 3)
    return Regime(
        name=name,
        b=b,
        tau=tau,
        kappa=kappa,
        critical_points=expected_critical_points(n, b),
        minima=expected_minima(kappa),
    )


def anneal_tau(step, n: float, tau0: float):
    """τ(i) = n (e^{−i/τ_0} − ½), the AnnealSGD schedule, eq. (13); vectorized over ``step``."""
    if not tau0 > 0:
        raise ValueError(f"Invalid tau0: {tau0!r} (must be > 0)")
    step = np.asarray(step, dtype=float)
    out = n * (np.exp(-step / tau0) - 0.5)
    return float(out) if out.ndim == 0 else out


def anneal_field_scale(step, n: float, tau0: float):
    """(1 + 2τ(i)/n)^{1/2} = (2 e^{−i/τ_0})^{1/2}: the factor on the field, eq. (12) with (13).

    It starts at √2 (ν = √2 ν_c, past the polynomial band, trivialized) and decays to 0 (no field,
    the original exponential landscape), crossing 1 (ν = ν_c) at i = τ_0 log 2.
    """
    tau = np.asarray(anneal_tau(step, n, tau0))
    out = np.sqrt(1 + 2 * tau / n)
    return float(out) if out.ndim == 0 else out


def minima_field_scale(n: float, kappa: float) -> float:
    """(1 + κ log n / n^{1/3})^{1/2}, the factor on ν_c of the local-minima scaling, eq. (14)."""
    value = 1 + kappa * math.log(n) / n ** (1 / 3)
    if value < 0:
        raise ValueError(f"Invalid kappa: {kappa!r} gives a negative squared field for n = {n}")
    return math.sqrt(value)
