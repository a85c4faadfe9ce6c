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
exact discrete Gibbs density ∝ e^{−u/D} = e^{−2βu} as its stationary state; ρ(T) = ρ(0) exp(QT).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg
from scipy.special import logsumexp

from deeplandscape.experiments._common import table
from deeplandscape.experiments._plot import plt, save
from deeplandscape.experiments.spec import Experiment, Param, Unit, UnitResult
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


@dataclass(frozen=True)
class Relaxation:
    """A smoothed loss u on the grid x, the initial and terminal cell masses, and the mass near x = 0."""

    method: str
    x: np.ndarray
    u: np.ndarray
    p0: np.ndarray
    p_terminal: np.ndarray
    terminal_mass_near_global_min: float


def relax(method: str, config: dict[str, Any]) -> Relaxation:
    """Smooth :func:`rugged_loss` by ``method`` (one of METHODS) and evolve the initial density to time T."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    half = config["half_width"]
    n = config["grid"]
    x = np.linspace(-half, half, n)
    h = float(x[1] - x[0])
    y = np.linspace(-3 * half, 3 * half, 6 * (n - 1) + 1)  # quadrature grid wider than the Gaussians
    beta, gamma = config["beta"], config["gamma"]
    f_y = rugged_loss(y)
    if method == "sgd":
        u = rugged_loss(x)
    elif method == "heat":
        u = heat_smoothing(f_y, x, y, gamma, beta)
    elif method == "viscous-hj":
        u = viscous_hj(f_y, x, y, gamma, beta)
    else:
        u = hopf_lax(f_y, x, y, gamma)
    p0 = np.exp(-((x - config["x0"]) ** 2) / (2 * config["sigma0"] ** 2))
    p0 /= p0.sum()
    p = evolve_density(p0, u, h, beta, config["time"])
    mass = float(p[np.abs(x) <= config["radius"]].sum())
    return Relaxation(method, x, u, p0, p, mass)


PARAMS = {
    "beta": Param("float", 8.0, "inverse temperature β of the SDE (4.2) and of the smoothing", low=1e-6),
    "gamma": Param("float", 1.0, "smoothing time γ of the PDEs", low=1e-6),
    "time": Param("float", 20.0, "Fokker–Planck horizon T", low=1e-6),
    "grid": Param("int", 801, "grid points on [−half_width, half_width]", quick=201, paper=1601, low=11),
    "half_width": Param("float", 4.0, "the grid covers [−half_width, half_width]", low=1.0),
    "x0": Param("float", -2.8, "centre of the initial Gaussian density"),
    "sigma0": Param("float", 0.2, "standard deviation of the initial density", low=1e-3),
    "radius": Param("float", 0.5, "'near the global minimum' means |x| ≤ radius", low=1e-3),
}


def units(config: dict[str, Any]) -> list[Unit]:
    if not -config["half_width"] < config["x0"] < config["half_width"]:
        raise ValueError(f"x0 must lie in (−half_width, half_width), got {config['x0']!r}")
    return [Unit(m, {"method": m}) for m in METHODS]


def run_unit(config: dict[str, Any], unit: Unit, seed: int) -> UnitResult:
    del seed  # deterministic: a PDE solve, no sampling
    r = relax(unit.params["method"], config)
    return UnitResult(
        values={
            "method": r.method,
            "terminal_mass_near_global_min": r.terminal_mass_near_global_min,
            "argmin_u": float(r.x[np.argmin(r.u)]),
            "terminal_mean": float(r.p_terminal @ r.x),
        },
        arrays={"x": r.x, "u": r.u, "p0": r.p0, "p_terminal": r.p_terminal},
    )


def finalize(config: dict[str, Any], results: list[UnitResult], out: Path) -> tuple[dict, str]:
    by = {r.values["method"]: r for r in results}
    x = by["sgd"].arrays["x"]
    save_npz(
        out / "relaxation_1d.npz",
        x=x,
        p0=by["sgd"].arrays["p0"],
        **{f"u_{m}": by[m].arrays["u"] for m in METHODS},
        **{f"p_{m}": by[m].arrays["p_terminal"] for m in METHODS},
    )
    save(plot(config, by), out / "relaxation_1d.png")
    masses = {m: by[m].values["terminal_mass_near_global_min"] for m in METHODS}
    results_json = {
        "terminal_mass_near_global_min": masses,
        "argmin_u": {m: by[m].values["argmin_u"] for m in METHODS},
        "terminal_mean": {m: by[m].values["terminal_mean"] for m in METHODS},
        "initial_mass_near_global_min": float(by["sgd"].arrays["p0"][np.abs(x) <= config["radius"]].sum()),
    }
    body = "\n\n".join(
        [
            "Thesis Fig. 4.1 (qualitative, no numbers given): the SGD density stays in a local minimum next "
            "to its start; the viscous-HJ density concentrates near the global minimum; the non-viscous-HJ "
            "density reaches a nearly optimal region more slowly. "
            f"Loss f(x) = 0.15x² + 0.4(1 − cos(3πx/2))(1 − e^(−x²)); β = {config['beta']}, "
            f"γ = {config['gamma']}, T = {config['time']}, start N({config['x0']}, {config['sigma0']}²).",
            table(
                ["method", f"mass in |x| ≤ {config['radius']}", "argmin u", "terminal mean"],
                [[m, masses[m], by[m].values["argmin_u"], by[m].values["terminal_mean"]] for m in METHODS],
            ),
            "![relaxation](relaxation_1d.png)",
        ]
    )
    return results_json, body


def plot(config: dict[str, Any], by: dict[str, UnitResult]):
    colors = {"sgd": "black", "heat": "tab:green", "viscous-hj": "tab:red", "non-viscous-hj": "tab:blue"}
    x = by["sgd"].arrays["x"]
    h = x[1] - x[0]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    for m in METHODS:
        top.plot(x, by[m].arrays["u"], color=colors[m], label="f (SGD)" if m == "sgd" else m)
        bottom.plot(x, by[m].arrays["p_terminal"] / h, color=colors[m], label=m)
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
    order=330,
)
