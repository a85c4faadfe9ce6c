"""The finite-size fit of the floor: y(n) = c + a·n^(−b), its asymptote c and a bootstrap interval for it.

Sagun et al. §3.1.1 observe that the endpoints of gradient descent lie "just above the asymptotic floor
level" and that nothing is known of "how fast the energy of critical points concentrate around the
limiting floor value"; Choromanska et al. §5.2 that "as Λ increases the values concentrate around −E∞".
The asymptote is estimated by least squares on the mean final H/n of each size n:

- with the exponent b free: for every b of a grid (:data:`EXPONENTS`, 0.05…3), the model is linear in
  (c, a) and is solved in closed form; the b with the least squared residual wins (a profile fit, which
  never fails to converge and is vectorized over bootstrap resamples);
- with b fixed (e.g. b = 2/3, the soft-edge scale of the Hessian's spectrum at a minimum just above −E∞:
  its smallest eigenvalue p(|H/n| − E∞) + O(n^(−2/3)) must be ≥ 0, so |H/n| − E∞ ≳ −n^(−2/3)).

The interval of c comes from resampling the disorders of every size independently (a stratified
bootstrap over disorders), so that it carries the disorder-to-disorder spread of the mean at each n.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from deeplandscape.experiments.claims import Statistic, bootstrap

EXPONENTS = np.geomspace(0.05, 3.0, 400)


@dataclass(frozen=True)
class PowerLawFit:
    """y(n) = asymptote + amplitude·n^(−exponent), fitted by least squares (``rms``: the residual's)."""

    asymptote: float
    amplitude: float
    exponent: float
    rms: float


def _profile(sizes: np.ndarray, y: np.ndarray, exponents: np.ndarray) -> tuple[np.ndarray, ...]:
    """(c, a, b, rms) of the least-squares fit of ``y`` (..., K) at ``sizes`` (K,) over the ``exponents``
    grid: for each b a linear least-squares problem in (c, a), then the b of the least residual."""
    x = sizes[None, :] ** -exponents[:, None]  # (G, K)
    xm = x.mean(1)  # (G,)
    dx = x - xm[:, None]
    sxx = (dx * dx).sum(1)  # (G,)
    ym = y.mean(-1, keepdims=True)  # (..., 1)
    dy = y - ym
    sxy = np.einsum("gk,...k->...g", dx, dy)  # (..., G)
    a = sxy / sxx
    c = ym - a * xm
    sse = np.maximum((dy * dy).sum(-1, keepdims=True) - sxy * a, 0.0)  # Syy − Sxy²/Sxx, (..., G)
    best = sse.argmin(-1)[..., None]
    pick = lambda v: np.take_along_axis(v, best, -1)[..., 0]  # noqa: E731
    b = np.broadcast_to(exponents, sse.shape)
    return pick(c), pick(a), pick(b), np.sqrt(pick(sse) / y.shape[-1])


def fit_power_law(
    sizes: Sequence[float], values: Sequence[float], exponent: float | None = None
) -> PowerLawFit:
    """The least-squares fit of ``values`` ≈ c + a·sizes^(−b); ``exponent`` fixes b, None fits it.

    Raises ``ValueError`` for fewer than 3 distinct sizes (2 with ``exponent``) or non-finite values.
    """
    n, y = np.asarray(sizes, dtype=float), np.asarray(values, dtype=float)
    _check(n, y, exponent)
    grid = EXPONENTS if exponent is None else np.array([float(exponent)])
    c, a, b, rms = _profile(n, y, grid)
    return PowerLawFit(float(c), float(a), float(b), float(rms))


def _check(n: np.ndarray, y: np.ndarray, exponent: float | None) -> None:
    need = 3 if exponent is None else 2
    if n.ndim != 1 or n.shape != y.shape[-1:] or np.unique(n).size < need:
        raise ValueError(
            f"Invalid sizes: {n.tolist()} (the fit needs {need} distinct sizes, one value for each)"
        )
    if not (np.all(n > 0) and np.all(np.isfinite(y))):
        raise ValueError("Invalid fit data: sizes must be > 0 and values finite")
    if exponent is not None and not (np.isfinite(exponent) and exponent > 0):
        raise ValueError(f"Invalid exponent: {exponent!r} (must be a finite number > 0, or None to fit it)")


def asymptote_interval(
    sizes: Sequence[float],
    per_disorder: Sequence[Sequence[float]],
    *,
    exponent: float | None = None,
    name: str = "asymptote",
    seed: int = 0,
    which: str = "asymptote",
) -> Statistic:
    """The fitted asymptote c (``which="exponent"``: the exponent b) of the means of ``per_disorder[k]``
    (one value per disorder at ``sizes[k]``), with a percentile bootstrap interval over disorders,
    resampled within each size.

    The percentile interval (not BCa): the fit is a non-smooth function of the means (the grid's argmin),
    for which the jackknife that BCa needs is unreliable.
    """
    n = np.asarray(sizes, dtype=float)
    samples = [np.asarray(s, dtype=float) for s in per_disorder]
    if len(samples) != n.size:
        raise ValueError(f"Invalid data: {len(samples)} groups of disorders for {n.size} sizes")
    if which not in ("asymptote", "exponent"):
        raise ValueError(f"Invalid which: {which!r} (must be 'asymptote' or 'exponent')")
    _check(n, np.array([s.mean() for s in samples]), exponent)
    grid = EXPONENTS if exponent is None else np.array([float(exponent)])
    pick = 0 if which == "asymptote" else 2

    def statistic(*groups: np.ndarray, axis: int = -1) -> np.ndarray:
        means = np.stack([np.mean(g, axis=axis) for g in groups], axis=-1)
        return _profile(n, means, grid)[pick]

    return bootstrap(samples, statistic, name, what="disorder", seed=seed, method="percentile")
