"""``relaxation-1d``: a 1-D non-convex loss smoothed by PDEs, and where the densities of the dynamics end.

Thesis Fig. 4.1 and §4.1–4.3. A rugged 1-D loss f with a wide global minimum at x = 0 and many narrow
local minima on its flanks is replaced by

- the viscous Hamilton–Jacobi solution (Thesis (4.1), Lemma 4.1, Cole–Hopf)
  u(x, γ) = −β⁻¹ log (G_{β⁻¹γ} ∗ e^{−βf})(x),
- the non-viscous Hamilton–Jacobi solution (Thesis (4.15), Hopf–Lax formula (4.16))
  u(x, γ) = min_y f(y) + |x − y|² / (2γ),
- the heat-equation solution (Thesis (4.28)) v(x, γ) = (G_{β⁻¹γ} ∗ f)(x),

where G_s is the centred Gaussian of variance s. A density started in the rugged flank is evolved for a
time T by the Fokker–Planck equation of dX = −∇u(X) dt + β^{-1/2} dB (Thesis (4.2) with f replaced by the
smoothed loss): ρ_t = ∇·(∇u ρ) + (β⁻¹/2) Δρ. (The density equation of (4.33) prints Δρ without the
factor β⁻¹/2; the factor here is the one of the generator of (4.2).) Plain SGD (u = f) stays trapped in
the local minima next to its start; the smoothed losses carry the density to the global minimum.

The Fokker–Planck equation is discretised by a monotone finite-volume scheme (Thesis Fig. 4.1 uses
monotone finite differences): the grid becomes a continuous-time Markov chain with rates
r_{i→i±1} = (D/h²) exp(−(u_{i±1} − u_i)/(2D)), D = β⁻¹/2, which conserves mass, keeps ρ ≥ 0 and has the
exact discrete Gibbs density ∝ e^{−u/D} = e^{−2βu} as its stationary state; ρ(t + Δt) = ρ(t) exp(QΔt).

The claims are those of the caption of Fig. 4.1 (the Thesis gives neither its f nor β, γ, T; ours are
stated in :data:`PARAMS`). Every number is computed twice, on the grid of step h and on the grid of step
2h; the difference is the discretisation error the verdicts allow for (a first-order scheme's error is
about that difference).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg
from scipy.special import logsumexp

from deeplandscape.experiments._plot import plt, save
from deeplandscape.experiments.claims import (
    Claim,
    RunData,
    Statistic,
    Undecidable,
    Verdict,
    all_of,
    decide,
    fmt,
)
from deeplandscape.experiments.spec import (
    Diagnostic,
    Experiment,
    Figure,
    Param,
    Table,
    Unit,
    UnitResult,
)
from deeplandscape.rundir import save_npz

METHODS = ("sgd", "heat", "viscous-hj", "non-viscous-hj")


def rugged_loss(x: np.ndarray) -> np.ndarray:
    """The 1-D loss of the experiment: f(x) = 0.15 x² + 0.4 (1 − cos(3πx/2)) (1 − e^{−x²}).

    A wide, smooth global minimum at x = 0 (f(0) = 0) inside a quadratic envelope whose flanks carry
    narrow local minima of depth ≈ 0.8 spaced 4/3 apart, the shape of Thesis Fig. 4.1.
    """
    x = np.asarray(x, dtype=float)
    return 0.15 * x**2 + 0.4 * (1.0 - np.cos(1.5 * np.pi * x)) * (1.0 - np.exp(-(x**2)))


def _check_positive(name: str, value: float) -> None:
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def _log_gaussian_weights(x: np.ndarray, y: np.ndarray, variance: float) -> np.ndarray:
    """log of the normalised quadrature weights of G_variance(x − y) over the grid y, one row per x."""
    k = -((x[:, None] - y[None, :]) ** 2) / (2.0 * variance)
    return k - logsumexp(k, axis=1, keepdims=True)


def heat_smoothing(f_y: np.ndarray, x: np.ndarray, y: np.ndarray, gamma: float, beta: float) -> np.ndarray:
    """Thesis (4.28): v(x, γ) = (G_{β⁻¹γ} ∗ f)(x), the heat equation v_t = (β⁻¹/2) Δv at t = γ.

    ``f_y`` are the values of f on the (wide, uniform) quadrature grid ``y``; the Gaussian weights are
    normalised on the grid.
    """
    _check_positive("gamma", gamma)
    _check_positive("beta", beta)
    return np.exp(_log_gaussian_weights(x, y, gamma / beta)) @ np.asarray(f_y, dtype=float)


def viscous_hj(f_y: np.ndarray, x: np.ndarray, y: np.ndarray, gamma: float, beta: float) -> np.ndarray:
    """Thesis (4.1) via Lemma 4.1 (Cole–Hopf): u(x, γ) = −β⁻¹ log (G_{β⁻¹γ} ∗ e^{−βf})(x).

    e^{−βu} solves the heat equation w_t = (β⁻¹/2) Δw, hence u solves u_t = −½|∇u|² + (β⁻¹/2) Δu.
    Evaluated with a log-sum-exp so that large β does not underflow.
    """
    _check_positive("gamma", gamma)
    _check_positive("beta", beta)
    logw = _log_gaussian_weights(x, y, gamma / beta)
    return -logsumexp(logw - beta * np.asarray(f_y, dtype=float)[None, :], axis=1) / beta


def hopf_lax(f_y: np.ndarray, x: np.ndarray, y: np.ndarray, gamma: float) -> np.ndarray:
    """Thesis (4.16), Lemma 4.2: u(x, γ) = min_y { f(y) + |x − y|² / (2γ) }, the solution of u_t = −½|∇u|²."""
    _check_positive("gamma", gamma)
    f_y = np.asarray(f_y, dtype=float)
    return np.min(f_y[None, :] + (x[:, None] - y[None, :]) ** 2 / (2 * gamma), axis=1)


def fokker_planck_generator(u: np.ndarray, h: float, beta: float) -> np.ndarray:
    """Rate matrix Q of the monotone scheme for ρ_t = ∇·(∇u ρ) + (β⁻¹/2) Δρ on a uniform grid of step h.

    Q[i, i±1] = (D/h²) exp(−(u_{i±1} − u_i)/(2D)), D = β⁻¹/2, rows summing to zero (reflecting ends).
    Detailed balance holds exactly for π_i ∝ e^{−u_i/D} = e^{−2βu_i}, the Gibbs density of dX = −∇u dt +
    β^{-1/2} dB (Thesis (4.2)).
    """
    _check_positive("h", h)
    _check_positive("beta", beta)
    u = np.asarray(u, dtype=float)
    d = 0.5 / beta
    du = np.diff(u)
    q = np.zeros((u.size, u.size))
    idx = np.arange(u.size - 1)
    q[idx, idx + 1] = d / h**2 * np.exp(-du / (2 * d))
    q[idx + 1, idx] = d / h**2 * np.exp(du / (2 * d))
    q[np.arange(u.size), np.arange(u.size)] = -q.sum(axis=1)
    return q


def evolve_density(p0: np.ndarray, u: np.ndarray, h: float, beta: float, t: float) -> np.ndarray:
    """Cell masses p(T) = p(0) exp(Q T) of the Fokker–Planck scheme of :func:`fokker_planck_generator`."""
    _check_positive("t", t)
    p = np.asarray(p0, dtype=float) @ scipy.linalg.expm(fokker_planck_generator(u, h, beta) * t)
    if not np.all(np.isfinite(p)):
        raise FloatingPointError("non-finite density after the Fokker–Planck evolution (evolve_density)")
    return np.clip(p, 0.0, None) / p.sum()


def evolve_in_steps(p0: np.ndarray, u: np.ndarray, h: float, beta: float, t: float, steps: int) -> np.ndarray:
    """Cell masses at the times ``t·j/steps``, j = 1…steps: ``(steps, n)``, row j by ``exp(Q t/steps)``."""
    _check_positive("t", t)
    step = scipy.linalg.expm(fokker_planck_generator(u, h, beta) * (t / steps))
    out = np.empty((steps, np.size(p0)))
    p = np.asarray(p0, dtype=float)
    for j in range(steps):
        p = p @ step
        out[j] = p
    if not np.all(np.isfinite(out)):
        raise FloatingPointError("non-finite density after the Fokker–Planck evolution (evolve_in_steps)")
    return np.clip(out, 0.0, None) / out.sum(axis=1, keepdims=True)


def start_basin(f: np.ndarray, start: int) -> tuple[int, int]:
    """The grid cells ``[lo, hi]`` of the basin of the local minimum of ``f`` reached by descent from cell
    ``start``: between the local maxima (or the ends of the grid) on either side of that minimum."""
    i = start
    while True:  # steepest descent on the grid
        left = f[i - 1] if i > 0 else np.inf
        right = f[i + 1] if i < f.size - 1 else np.inf
        if min(left, right) >= f[i]:
            break
        i = i - 1 if left < right else i + 1
    lo = i
    while lo > 0 and f[lo - 1] >= f[lo]:
        lo -= 1
    hi = i
    while hi < f.size - 1 and f[hi + 1] >= f[hi]:
        hi += 1
    return lo, hi


@dataclass(frozen=True)
class Relaxation:
    """A smoothed loss u on the grid x, the initial and terminal cell masses and the measures of Fig. 4.1:
    the terminal mass near the global minimum (``|x| ≤ radius``) and in the basin of f where the start
    lies, the mass near the global minimum over time and the first time it reaches one half (``None`` if
    not by T), the smallest second difference of u (≥ 0 for a convex u) and where u is least."""

    method: str
    x: np.ndarray
    u: np.ndarray
    p0: np.ndarray
    p_terminal: np.ndarray
    times: np.ndarray
    mass_near_global_min_over_time: np.ndarray
    mass_near_global_min: float
    mass_in_start_basin: float
    half_time: float | None
    min_curvature: float
    argmin_u: float
    expected_loss: float


def relax(method: str, config: dict[str, Any], *, grid: int | None = None) -> Relaxation:
    """Smooth :func:`rugged_loss` by ``method`` (one of METHODS) and evolve the initial density to time T
    (``config["grid"]`` points unless ``grid`` is given)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    half = config["half_width"]
    n = grid or config["grid"]
    x = np.linspace(-half, half, n)
    h = float(x[1] - x[0])
    y = np.linspace(-3 * half, 3 * half, 6 * (n - 1) + 1)  # quadrature grid wider than the Gaussians
    beta, gamma = config["beta"], config["gamma"]
    f_x, f_y = rugged_loss(x), rugged_loss(y)
    if method == "sgd":
        u = f_x
    elif method == "heat":
        u = heat_smoothing(f_y, x, y, gamma, beta)
    elif method == "viscous-hj":
        u = viscous_hj(f_y, x, y, gamma, beta)
    else:
        u = hopf_lax(f_y, x, y, gamma)
    p0 = np.exp(-((x - config["x0"]) ** 2) / (2 * config["sigma0"] ** 2))
    p0 /= p0.sum()
    steps = config["time_steps"]
    p = evolve_in_steps(p0, u, h, beta, config["time"], steps)
    times = config["time"] * np.arange(1, steps + 1) / steps
    near = np.abs(x) <= config["radius"]
    over_time = p[:, near].sum(axis=1)
    reached = np.flatnonzero(over_time >= 0.5)
    lo, hi = start_basin(f_x, int(np.argmin(np.abs(x - config["x0"]))))
    return Relaxation(
        method=method,
        x=x,
        u=u,
        p0=p0,
        p_terminal=p[-1],
        times=times,
        mass_near_global_min_over_time=over_time,
        mass_near_global_min=float(over_time[-1]),
        mass_in_start_basin=float(p[-1, lo : hi + 1].sum()),
        half_time=float(times[reached[0]]) if reached.size else None,
        min_curvature=float((np.diff(u, 2) / h**2).min()),
        argmin_u=float(x[np.argmin(u)]),
        expected_loss=float(p[-1] @ f_x),
    )


PARAMS = {
    "beta": Param("float", 6.0, "inverse temperature β of the SDE (4.2) and of the smoothing", low=1e-6),
    "gamma": Param("float", 3.0, "smoothing time γ of the PDEs", low=1e-6),
    "time": Param("float", 20.0, "Fokker–Planck horizon T", low=1e-6),
    "time_steps": Param("int", 100, "steps of the density's evolution to T (the resolution of t½)", low=1),
    "grid": Param(
        "int",
        801,
        "grid points on [−half_width, half_width] (odd; also run on (grid + 1)/2)",
        quick=201,
        paper=1601,
        low=11,
    ),
    "half_width": Param("float", 4.0, "the grid covers [−half_width, half_width]", low=1.0),
    "x0": Param("float", -2.8, "centre of the initial Gaussian density"),
    "sigma0": Param("float", 0.2, "standard deviation of the initial density", low=1e-3),
    "radius": Param("float", 0.5, "'near the global minimum' means |x| ≤ radius", low=1e-3),
}

MEASURES = (
    "mass_near_global_min",
    "mass_in_start_basin",
    "half_time",
    "min_curvature",
    "argmin_u",
    "expected_loss",
)


def units(config: dict[str, Any]) -> list[Unit]:
    if not -config["half_width"] < config["x0"] < config["half_width"]:
        raise ValueError(f"x0 must lie in (−half_width, half_width), got {config['x0']!r}")
    if config["grid"] % 2 == 0:
        raise ValueError(
            f"grid must be odd (the coarse grid of step 2h shares its points), got {config['grid']}"
        )
    return [Unit(m, {"method": m}) for m in METHODS]


def run_unit(config: dict[str, Any], unit: Unit, seed: int) -> UnitResult:
    del seed  # deterministic: a PDE solve, no sampling
    fine = relax(unit.params["method"], config)
    coarse = relax(unit.params["method"], config, grid=(config["grid"] + 1) // 2)
    return UnitResult(
        values={
            "method": fine.method,
            **{k: getattr(fine, k) for k in MEASURES},
            "coarse": {k: getattr(coarse, k) for k in MEASURES},
        },
        arrays={
            "x": fine.x,
            "u": fine.u,
            "p0": fine.p0,
            "p_terminal": fine.p_terminal,
            "times": fine.times,
            "mass_over_time": fine.mass_near_global_min_over_time,
        },
    )


def finalize(config: dict[str, Any], results: list[UnitResult], out: Path) -> dict[str, Any]:
    by = {r.values["method"]: r for r in results}
    x = by["sgd"].arrays["x"]
    save_npz(
        out / "relaxation_1d.npz",
        x=x,
        p0=by["sgd"].arrays["p0"],
        times=by["sgd"].arrays["times"],
        **{f"u_{m}": by[m].arrays["u"] for m in METHODS},
        **{f"p_{m}": by[m].arrays["p_terminal"] for m in METHODS},
        **{f"mass_over_time_{m}": by[m].arrays["mass_over_time"] for m in METHODS},
    )
    save(plot(config, by), out / "relaxation_1d.png")
    return {
        "methods": {m: {k: v for k, v in by[m].values.items() if k != "method"} for m in METHODS},
        "initial_mass_near_global_min": float(by["sgd"].arrays["p0"][np.abs(x) <= config["radius"]].sum()),
        "grid_step": float(x[1] - x[0]),
        "time_step": config["time"] / config["time_steps"],
    }


# ---------------------------------------------------------------------------------------------- claims

# Thesis Fig. 4.1 gives no numbers: each claim quotes its caption; "concentrated" (a majority of the mass)
# is our reading, stated in the criteria.
CONCENTRATED = 0.5
LABELS = {"sgd": "SGD", "heat": "heat", "viscous-hj": "viscous HJ", "non-viscous-hj": "non-viscous HJ"}


def measured(run: RunData, method: str, key: str, label: str) -> Statistic:
    """``key`` of ``method`` on the grid of step h, with the interval ± |value(h) − value(2h)| (the
    discretisation error)."""
    m = run.results["methods"][method]
    fine, coarse = m[key], m["coarse"][key]
    if fine is None or coarse is None:
        raise Undecidable(f"{LABELS[method]}: the mass near the global minimum never reached one half by T")
    err = abs(fine - coarse)
    return Statistic(label, fine, fine - err, fine + err, method="grid refinement: ± |value(h) − value(2h)|")


def _decide_mass(method: str, key: str, what: str):
    def decision(run: RunData) -> Verdict:
        return decide(measured(run, method, key, f"{what} ({LABELS[method]})"), above=CONCENTRATED)

    return decision


def _decide_viscous_convex(run: RunData) -> Verdict:
    curvature = measured(run, "viscous-hj", "min_curvature", "min of u″ over the grid (viscous HJ)")
    where = measured(run, "viscous-hj", "argmin_u", "argmin u (viscous HJ)")
    err = where.ci_high - where.estimate + run.results["grid_step"]  # an argmin is known to a grid step
    shift = Statistic(
        "|argmin u − argmin f|",
        abs(where.estimate),
        max(0.0, abs(where.estimate) - err),
        abs(where.estimate) + err,
        method=f"{where.method}, ± h",
    )
    return all_of(
        [("convex", decide(curvature, above=0.0)), ("minimum", decide(shift, below=run.config["radius"]))]
    )


def _decide_nonviscous_nonconvex(run: RunData) -> Verdict:
    return decide(measured(run, "non-viscous-hj", "min_curvature", "min of u″ (non-viscous HJ)"), below=0.0)


def _decide_slower(run: RunData) -> Verdict:
    slow = measured(run, "non-viscous-hj", "half_time", "t½ non-viscous HJ")
    fast = measured(run, "viscous-hj", "half_time", "t½ viscous HJ")
    # both times lie on the same time grid: their difference is known to within one step
    err = (slow.ci_high - slow.estimate) + (fast.ci_high - fast.estimate) + run.results["time_step"]
    diff = slow.estimate - fast.estimate
    stat = Statistic(
        "t½(non-viscous HJ) − t½(viscous HJ)",
        diff,
        diff - err,
        diff + err,
        method="grid refinement and one time step",
    )
    return decide(stat, above=0.0, evidence=f"{slow.describe()}; {fast.describe()}")


CLAIMS = (
    Claim(
        "relaxation-1d.sgd-trapped",
        "“The terminal density obtained using SGD (dark gray) remains concentrated in a local minimum.”",
        "Thesis Fig. 4.1",
        f"SGD's terminal mass in the basin of f of the local minimum next to its start exceeds "
        f"{CONCENTRATED:g} (a majority: our reading of “concentrated”), interval ± the discretisation error",
        _decide_mass("sgd", "mass_in_start_basin", "terminal mass in the start's basin"),
        shown_in="relaxation_1d.png",
    ),
    Claim(
        "relaxation-1d.viscous-convex",
        "“The function u_viscous HJ(x,T) (red) is convex, with the global minimum close to that of f(x)”",
        "Thesis Fig. 4.1",
        "the smallest second difference of u over the grid is > 0 and |argmin u − argmin f| < radius "
        "(argmin f = 0), intervals ± the discretisation error",
        _decide_viscous_convex,
        shown_in="relaxation_1d.png",
    ),
    Claim(
        "relaxation-1d.viscous-concentrates",
        "“consequently the terminal density (red) is concentrated near the minimum of f(x)”",
        "Thesis Fig. 4.1",
        f"the viscous-HJ terminal mass in |x| ≤ radius exceeds {CONCENTRATED:g}",
        _decide_mass("viscous-hj", "mass_near_global_min", "terminal mass near the global minimum"),
        shown_in="relaxation_1d.png",
    ),
    Claim(
        "relaxation-1d.non-viscous-nonconvex",
        "“The function u_non-viscous HJ(x,T) (blue) is non-convex”",
        "Thesis Fig. 4.1",
        "the smallest second difference of u over the grid is < 0",
        _decide_nonviscous_nonconvex,
        shown_in="relaxation_1d.png",
    ),
    Claim(
        "relaxation-1d.non-viscous-slower",
        "“so the presence of gradients pointing away from the global minimum slows down the evolution”",
        "Thesis Fig. 4.1",
        "the time t½ at which half the mass has reached |x| ≤ radius is later for non-viscous than for "
        "viscous HJ (difference > 0; interval: the discretisation error and the time step)",
        _decide_slower,
        shown_in="relaxation-1d",
    ),
    Claim(
        "relaxation-1d.non-viscous-concentrates",
        "“Nevertheless, the corresponding terminal density (blue) is concentrated in a nearly optimal local "
        "minimum.”",
        "Thesis Fig. 4.1",
        f"the non-viscous-HJ terminal mass in |x| ≤ radius (the neighbourhood of the global minimum, the "
        f"optimal one) exceeds {CONCENTRATED:g}",
        _decide_mass("non-viscous-hj", "mass_near_global_min", "terminal mass near the global minimum"),
        shown_in="relaxation_1d.png",
    ),
    Claim(
        "relaxation-1d.heat-concentrates",
        "the density of the dynamics on the heat-smoothed loss (Thesis (4.28); not drawn in Fig. 4.1) also "
        "ends near the global minimum",
        "Thesis §4.3 (a question beyond Fig. 4.1)",
        f"the heat terminal mass in |x| ≤ radius exceeds {CONCENTRATED:g}",
        _decide_mass("heat", "mass_near_global_min", "terminal mass near the global minimum"),
        beyond_papers=True,
        shown_in="relaxation_1d.png",
    ),
)

DIAGNOSTICS = (
    Diagnostic(
        "relaxation-1d.longer",
        "relaxation-1d",
        ("time=80",),
        (
            "relaxation-1d.viscous-concentrates",
            "relaxation-1d.non-viscous-concentrates",
            "relaxation-1d.non-viscous-slower",
            "relaxation-1d.heat-concentrates",
        ),
        "do the smoothed densities reach the global minimum (and in which order) with four times the time?",
    ),
    Diagnostic(
        "relaxation-1d.more-smoothing",
        "relaxation-1d",
        ("gamma=6",),
        ("relaxation-1d.viscous-convex",),
        "is the viscous-HJ solution convex with twice the smoothing time γ?",
    ),
    Diagnostic(
        "relaxation-1d.colder",
        "relaxation-1d",
        ("beta=12",),
        ("relaxation-1d.sgd-trapped",),
        "does SGD stay in the local minimum next to its start at half the temperature?",
    ),
)


def tables(results: dict[str, Any], config: dict[str, Any]) -> list[Table]:
    m = results["methods"]
    paper = {
        "sgd": "stays in a local minimum",
        "heat": "–",
        "viscous-hj": "convex u; concentrated near the minimum of f",
        "non-viscous-hj": "non-convex u; slower; a nearly optimal local minimum",
    }

    def pair(method: str, key: str) -> str:  # the value on the grid h, and on the grid 2h in brackets
        fine, coarse = ("> T" if v is None else fmt(v) for v in (m[method][key], m[method]["coarse"][key]))
        return f"{fine} ({coarse})"

    rows = tuple(
        (
            LABELS[k],
            pair(k, "mass_near_global_min"),
            pair(k, "mass_in_start_basin"),
            pair(k, "half_time"),
            pair(k, "min_curvature"),
            pair(k, "argmin_u"),
            pair(k, "expected_loss"),
            paper[k],
        )
        for k in METHODS
    )
    return [
        Table(
            "relaxation-1d",
            f"terminal densities at T = {config['time']:g} (β = {config['beta']:g}, γ = {config['gamma']:g})",
            (
                "method",
                f"mass in |x| ≤ {config['radius']:g}",
                "mass in the start's basin",
                "t½",
                "min u″",
                "argmin u",
                "E[f] at T",
                "Thesis Fig. 4.1",
            ),
            rows,
            f"Each value on the grid of step h = {results['grid_step']:.4g}, in brackets on the grid of "
            f"step 2h (the discretisation error); t½: the first time (steps of {results['time_step']:.3g}) "
            "at which half the mass lies near the global minimum. The Thesis's figure gives no numbers. "
            "Deterministic: the same at every scale except for the grid.",
        )
    ]


FIGURES = (
    Figure(
        "relaxation_1d.png",
        "top: f and its smoothings; bottom: the initial density (gray) and the terminal densities at T",
        "Thesis Fig. 4.1: a one-dimensional loss f (black) smoothed by the viscous (red) and non-viscous "
        "(blue) Hamilton–Jacobi equations; the initial density (light gray) evolved by the Fokker–Planck "
        "equation (4.33); SGD's terminal density stays in a local minimum, the viscous one concentrates near "
        "the minimum of f, the non-viscous one, slower, in a nearly optimal local minimum.",
    ),
)


def plot(config: dict[str, Any], by: dict[str, UnitResult]):
    colors = {"sgd": "black", "heat": "tab:green", "viscous-hj": "tab:red", "non-viscous-hj": "tab:blue"}
    x = by["sgd"].arrays["x"]
    h = x[1] - x[0]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    for m in METHODS:
        top.plot(x, by[m].arrays["u"], color=colors[m], label="f (SGD)" if m == "sgd" else LABELS[m])
        bottom.plot(x, by[m].arrays["p_terminal"] / h, color=colors[m], label=LABELS[m])
    bottom.fill_between(x, by["sgd"].arrays["p0"] / h, color="lightgray", label="initial")
    top.set_ylabel("loss")
    top.legend(fontsize=8)
    top.set_title(f"Smoothing of a 1-D loss, γ = {config['gamma']}, β = {config['beta']}")
    bottom.set_ylabel(f"density at T = {config['time']}")
    bottom.set_xlabel("x")
    bottom.legend(fontsize=8)
    fig.tight_layout()
    return fig


EXPERIMENT = Experiment(
    name="relaxation-1d",
    description="1-D loss smoothed by viscous/non-viscous HJ and heat equations; Fokker–Planck densities",
    reproduces="Thesis Fig. 4.1",
    params=PARAMS,
    units=units,
    run_unit=run_unit,
    finalize=finalize,
    tables=tables,
    figures=FIGURES,
    claims=CLAIMS,
    diagnostics=DIAGNOSTICS,
    order=330,
)
