"""``floor``: where gradient descent from random starts ends on the 3-spin glass, for sizes n up to 500.

Sagun et al. §3.1.1 and Fig. 2; Choromanska et al. §5.1–5.2, Fig. 3 (left) and Fig. 8 (top). For each n
and each of several disorders J, projected gradient descent (Sagun §3.1.1 steps 1–3; AnnealSGD paper
§5.1: η = 0.1, stop at ‖grad‖ ≤ 1e-4) runs from R uniform starts; the final H/n are histogrammed against
the asymptotic levels −E₀ (ground state) and −E∞ (the floor). The papers say that the endpoints lie
"just above the asymptotic floor level" and concentrate around −E∞ as n grows; we measure

- the mean final H/n at each n with its interval over disorders, and its finite-size fit
  c + a·n^(−b) (:mod:`._finite_size`), whose asymptote c has a bootstrap interval over disorders;
- the spread of the endpoints within a disorder (what the papers' histograms show) against n;
- the index and the smallest eigenvalue λ_min of the Riemannian Hessian at every endpoint, and the
  gradient norm that says whether it is a critical point at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from deeplandscape.experiments import _memory
from deeplandscape.experiments._common import descent_params, endpoint_curvature
from deeplandscape.experiments._finite_size import asymptote_interval, fit_power_law
from deeplandscape.experiments._plot import plt, save
from deeplandscape.experiments.claims import (
    Claim,
    NotChecked,
    RunData,
    Statistic,
    Undecidable,
    Verdict,
    all_of,
    bootstrap,
    decide,
    mean,
    proportion,
)
from deeplandscape.experiments.complexity import PAPER_E0, PAPER_EINF
from deeplandscape.experiments.spec import (
    ConfigError,
    Diagnostic,
    Experiment,
    Figure,
    MemoryNeed,
    Param,
    Table,
    Unit,
    UnitResult,
    show,
)
from deeplandscape.rundir import save_npz
from deeplandscape.spinglass import PSpinGlass, descend, theory

# Choromanska et al. §5.1: "sampling 1000 initial points" for Λ = 25 … 500; Sagun et al. §3.1.1: "For
# each N the experiment is repeated 5000 times".
PAPER_RUNS = {"Choromanska et al. §5.1": 1000, "Sagun et al. §3.1.1": 5000}
SOFT_EDGE = 2 / 3  # the exponent of the soft-edge scale (see _finite_size)
MINIMA_SHARE = 0.95  # "the probability of recovering a saddle point … goes to 0": ours, at most 5% saddles
CRITICAL_FACTOR = 2.0  # an endpoint is a critical point when ‖grad‖ ≤ CRITICAL_FACTOR × tol
UNCHECKED_SHARE = 0.05  # the minima claim is not decidable when more endpoints than this are not critical

PARAMS = {
    "sizes": Param(
        "ints",
        [25, 50, 100, 200, 300],
        "numbers of spins n",
        quick=[20, 40, 80],
        reference=[25, 50, 100, 200, 300, 500],
        paper=[25, 50, 100, 200, 300, 400, 500],
        low=2,
    ),
    "runs": Param(
        "ints",
        [100, 100, 40, 12, 6],
        "random starts R per disorder: one per size, or one for every size",
        quick=[24],
        reference=[200, 200, 100, 24, 8, 4],
        paper=[1000],
        low=2,
        distinct=False,
    ),
    "disorders": Param("int", 5, "independent disorders J per size", quick=3, low=1),
    "p": Param("int", 3, "interaction order", low=3),
    **descent_params(max_steps=50_000),
    "fit_from": Param("int", 50, "smallest n in the finite-size fit", quick=20, low=2),
    "fit_exponent": Param(
        "float",
        SOFT_EDGE,
        "exponent b of the finite-size fit c + a·n^(−b) that decides the asymptote; 0 fits b with c and a",
        low=0.0,
        high=3.0,
    ),
    "index_chunk": Param("int", 100, "endpoints per batched Hessian when computing indices", low=1),
}


def runs_per_size(config: dict[str, Any]) -> dict[int, int]:
    """R for each n: ``runs`` gives one value per size, or one for all."""
    sizes, runs = config["sizes"], config["runs"]
    if len(runs) not in (1, len(sizes)):
        raise ConfigError(
            f"Invalid runs: {show(runs)} ({len(runs)} values for {len(sizes)} sizes {show(sizes)}: give "
            "one value per size, or one for all)"
        )
    return dict(zip(sizes, runs * len(sizes) if len(runs) == 1 else runs, strict=True))


def units(config: dict[str, Any]) -> list[Unit]:
    runs = runs_per_size(config)
    return [
        Unit(f"n{n}-d{d}", {"n": n, "disorder": d, "runs": runs[n]})
        for n in config["sizes"]
        for d in range(config["disorders"])
    ]


def run_unit(config: dict[str, Any], unit: Unit, seed: int) -> UnitResult:
    n = unit.params["n"]
    hamiltonian = PSpinGlass(n, config["p"], seed=seed)
    starts = hamiltonian.random_configurations(unit.params["runs"], seed=seed + 1)
    result = descend(hamiltonian, starts, lr=config["lr"], tol=config["tol"], max_steps=config["max_steps"])
    curvature = endpoint_curvature(hamiltonian, result.sigma, config["index_chunk"])
    return UnitResult(
        values={
            "n": n,
            "disorder": unit.params["disorder"],
            "converged_fraction": result.converged_fraction,
            "median_steps": float(result.steps.double().median()),
            "wall_seconds": result.wall_seconds,
        },
        arrays={"energy_per_spin": result.energy_per_spin.double().numpy(), **curvature},
    )


def finalize(config: dict[str, Any], results: list[UnitResult], out: Path) -> dict[str, Any]:
    p, tol = config["p"], config["tol"]
    e0, einf = theory.e0(p), theory.e_inf(p)
    rows, arrays = [], {}
    for n in config["sizes"]:
        mine = [r for r in results if r.values["n"] == n]
        a = {key: np.concatenate([r.arrays[key] for r in mine]) for key in mine[0].arrays}
        a["disorder"] = np.concatenate([np.full(r.arrays["index"].size, r.values["disorder"]) for r in mine])
        arrays.update({f"{key}_n{n}": value for key, value in a.items()})
        e, critical = a["energy_per_spin"], a["grad_norm"] <= CRITICAL_FACTOR * tol
        rows.append(
            {
                "n": n,
                "disorders": len(mine),
                "runs": int(e.size),
                "mean": float(e.mean()),
                "min": float(e.min()),
                "max": float(e.max()),
                "disorder_means": [float(r.arrays["energy_per_spin"].mean()) for r in mine],
                "disorder_stds": [float(r.arrays["energy_per_spin"].std(ddof=1)) for r in mine],
                "minima": int((a["index"] == 0).sum()),
                "max_grad_norm": float(a["grad_norm"].max()),
                "critical": int(critical.sum()),
                "critical_minima": int(((a["index"] == 0) & critical).sum()),
                "median_lambda_min": float(np.median(a["lambda_min"])),
                "converged_fraction": float(np.mean([r.values["converged_fraction"] for r in mine])),
                "median_steps": float(np.median([r.values["median_steps"] for r in mine])),
            }
        )
    save_npz(out / "floor.npz", **arrays)
    fits = _fits(config, rows)
    save(plot_floor({r["n"]: arrays[f"energy_per_spin_n{r['n']}"] for r in rows}, p), out / "floor.png")
    save(plot_fit(rows, fits, e0, einf), out / "floor_fit.png")
    return {"p": p, "e0": e0, "e_inf": einf, "tol": tol, "sizes": rows, "fits": fits}


def _fits(config: dict[str, Any], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The finite-size fits of the mean final H/n over the sizes n ≥ fit_from: the configured one first
    (b fixed by ``fit_exponent``, or fitted when it is 0), then the other of {b = 2/3, b fitted}. A fitted b
    comes with its own bootstrap interval, which says whether the data support b = 2/3."""
    used = [r for r in rows if r["n"] >= config["fit_from"] and r["disorders"] >= 2]
    configured = config["fit_exponent"] or None
    exponents = [configured, SOFT_EDGE if configured is None else None]
    sizes = [r["n"] for r in used]
    means, per_disorder = [np.mean(r["disorder_means"]) for r in used], [r["disorder_means"] for r in used]
    fits = []
    for b in dict.fromkeys(exponents):
        if len(used) < (3 if b is None else 2):
            continue
        fit = fit_power_law(sizes, means, b)
        stat = asymptote_interval(sizes, per_disorder, exponent=b, seed=config["seed"])
        entry = {
            "exponent_fitted": b is None,
            "sizes": sizes,
            "asymptote": fit.asymptote,
            "amplitude": fit.amplitude,
            "exponent": fit.exponent,
            "rms": fit.rms,
            "ci_low": stat.ci_low,
            "ci_high": stat.ci_high,
            "method": stat.method,
        }
        if b is None:
            b_stat = asymptote_interval(sizes, per_disorder, seed=config["seed"], which="exponent")
            entry |= {"exponent_ci_low": b_stat.ci_low, "exponent_ci_high": b_stat.ci_high}
        fits.append(entry)
    return fits


def memory(config: dict[str, Any]) -> list[MemoryNeed]:
    n, p = max(config["sizes"]), config["p"]
    runs = max(runs_per_size(config).values())
    spins = f"the couplings of the {p}-spin glass at n = {n}"
    chunk = min(config["index_chunk"], runs)
    return [
        MemoryNeed("sizes", _memory.pspin_couplings(n, min(p, 3)), spins),
        MemoryNeed("p", _memory.pspin_couplings(n, p), spins),
        MemoryNeed("runs", _memory.configurations(runs, n), f"{runs} configurations of n = {n} spins"),
        MemoryNeed(
            "index_chunk",
            _memory.batched_hessians(chunk, n),
            f"the Hessians of {chunk} endpoints at once (n = {n})",
        ),
    ]


# ---------------------------------------------------------------------------------------------- figures


def plot_floor(energies: dict[int, np.ndarray], p: int):
    e0, einf = theory.e0(p), theory.e_inf(p)
    fig, axes = plt.subplots(len(energies), 1, figsize=(6, 1.4 * len(energies) + 0.8), sharex=True)
    axes = np.atleast_1d(axes)
    lo = min(min(v.min() for v in energies.values()), -e0) - 0.02
    hi = max(max(v.max() for v in energies.values()), -einf) + 0.02
    for ax, (n, values) in zip(axes, energies.items(), strict=True):
        ax.hist(values, bins=60, range=(lo, hi), color="tab:blue", alpha=0.8)
        ax.axvline(-e0, color="black", lw=1.5, label="−E₀")
        ax.axvline(-einf, color="tab:red", lw=1.5, label="−E∞")
        ax.set_ylabel(f"n = {n}\n({values.size} runs)", fontsize=8)
    axes[0].legend(fontsize=8, loc="upper right")
    axes[0].set_title(f"Final H/n of gradient descent, {p}-spin glass")
    axes[-1].set_xlabel("H/n")
    fig.tight_layout()
    return fig


def plot_fit(rows: list[dict[str, Any]], fits: list[dict[str, Any]], e0: float, einf: float):
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    ns = np.array([r["n"] for r in rows], dtype=float)
    for r in rows:
        left.scatter([r["n"]] * len(r["disorder_means"]), r["disorder_means"], s=10, color="tab:gray")
    left.plot(
        ns, [np.mean(r["disorder_means"]) for r in rows], "o", color="tab:blue", label="mean over disorders"
    )
    grid = np.geomspace(ns.min(), 1e5, 200)
    for fit, style in zip(fits, ("-", "--"), strict=False):
        b = fit["exponent"]
        label = (
            f"c + a·n^(−{b:.2f}){' (b fitted)' if fit['exponent_fitted'] else ''}: c = {fit['asymptote']:.4f}"
        )
        line = left.plot(grid, fit["asymptote"] + fit["amplitude"] * grid**-b, style, lw=1, label=label)
        left.axhspan(fit["ci_low"], fit["ci_high"], color=line[0].get_color(), alpha=0.15)
    left.axhline(-e0, color="black", lw=1, label="−E₀")
    left.axhline(-einf, color="tab:red", lw=1, label="−E∞")
    left.set_xscale("log")
    left.set(xlabel="n", ylabel="mean final H/n", title="finite-size fit (bands: 95% intervals of c)")
    left.legend(fontsize=7)
    spread = [np.mean(r["disorder_stds"]) for r in rows]
    right.loglog(ns, spread, "o-", label="std of H/n within a disorder")
    right.loglog(ns, [r["median_lambda_min"] for r in rows], "s-", label="median λ_min of the Hessian")
    right.set(xlabel="n", title="spread of the endpoints and their softest curvature")
    right.legend(fontsize=8)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------- claims


def _margin(results: dict[str, Any]) -> float:
    """Half the distance between the paper's two levels −E₀ and −E∞: an asymptote within it is at the
    floor rather than at the ground state."""
    return (results["e0"] - results["e_inf"]) / 2


def _decide_above(run: RunData) -> Verdict:
    einf = run.results["e_inf"]
    parts = [
        (
            f"n = {r['n']}",
            decide(mean(r["disorder_means"], f"mean H/n at n = {r['n']}", what="disorder"), above=-einf),
        )
        for r in run.results["sizes"]
    ]
    return all_of(parts)


def _decide_asymptote(run: RunData) -> Verdict:
    r = run.results
    if not r["fits"]:
        raise NotChecked("fewer than three sizes n ≥ fit_from with two disorders or more: nothing to fit")
    fit, m = r["fits"][0], _margin(r)
    how = "b fitted" if fit["exponent_fitted"] else f"b = {fit['exponent']:.4g} fixed"
    free = next((f for f in r["fits"] if f["exponent_fitted"]), None)
    if not fit["exponent_fitted"] and free is not None:
        lo, hi = free["exponent_ci_low"], free["exponent_ci_high"]
        if not lo <= fit["exponent"] <= hi:
            raise Undecidable(
                f"the data do not support b = {fit['exponent']:.4g}: the fit with b free gives "
                f"b = {free['exponent']:.3g} [{lo:.3g}, {hi:.3g}] and c = {free['asymptote']:.4f} "
                f"[{free['ci_low']:.4f}, {free['ci_high']:.4f}]",
                guard=True,
            )
    stat = Statistic(
        f"asymptote c of c + a·n^(−b) ({how})",
        fit["asymptote"],
        fit["ci_low"],
        fit["ci_high"],
        method=fit["method"] + f", n = {', '.join(map(str, fit['sizes']))}",
    )
    return decide(
        stat,
        above=-r["e_inf"] - m,
        below=-r["e_inf"] + m,
        evidence=f"b = {fit['exponent']:.3g}"
        + (
            f" (b fitted: {free['exponent']:.3g} "
            f"[{free['exponent_ci_low']:.3g}, {free['exponent_ci_high']:.3g}])"
            if free is not None and free is not fit
            else ""
        )
        + f"; −E∞ = {-r['e_inf']:.4f}, −E₀ = {-r['e0']:.4f}",
    )


def _spread_slope(*groups: np.ndarray, sizes: np.ndarray, axis: int = -1) -> np.ndarray:
    """Least-squares slope of log(mean within-disorder std) against log n (vectorized over resamples)."""
    y = np.log(np.stack([np.mean(g, axis=axis) for g in groups], axis=-1))
    x = np.log(sizes) - np.log(sizes).mean()
    return ((y - y.mean(-1, keepdims=True)) * x).sum(-1) / (x * x).sum()


def _decide_spread(run: RunData) -> Verdict:
    rows = [r for r in run.results["sizes"] if len(r["disorder_stds"]) >= 2]
    if len(rows) < 2:
        raise NotChecked("fewer than two sizes with two disorders or more")
    sizes = np.array([r["n"] for r in rows], dtype=float)
    stat = bootstrap(
        [r["disorder_stds"] for r in rows],
        lambda *g, axis=-1: _spread_slope(*g, sizes=sizes, axis=axis),
        "slope of log(std of H/n within a disorder) against log n",
        what="disorder",
        seed=run.config.get("seed", 0),
    )
    stds = ", ".join(f"n = {r['n']}: {np.mean(r['disorder_stds']):.3g}" for r in rows)
    return decide(stat, below=0.0, evidence=f"mean std {stds}")


def _decide_minima(run: RunData) -> Verdict:
    r = run.results
    rows, limit = r["sizes"], CRITICAL_FACTOR * r["tol"]
    total, critical = sum(x["runs"] for x in rows), sum(x["critical"] for x in rows)
    if total - critical > UNCHECKED_SHARE * total:
        raise Undecidable(
            f"floor endpoints: {total - critical} of {total} have a gradient norm above {limit:g} "
            f"(largest {max(x['max_grad_norm'] for x in rows):.3g}): not critical points",
            guard=True,
        )
    minima = sum(x["critical_minima"] for x in rows)
    return decide(
        proportion(minima, critical, "share of critical endpoints with index 0"),
        above=MINIMA_SHARE,
        evidence=", ".join(f"n = {x['n']}: {x['critical_minima']}/{x['critical']}" for x in rows)
        + f" (endpoints with ‖grad‖ ≤ {limit:g}; {total - critical} of {total} above it left out)",
    )


CLAIMS = (
    Claim(
        "floor.above",
        "“it is observed that the points found with this procedure lies within a narrow band of values "
        "that is just above the asymptotic floor level”",
        "Sagun et al. §3.1.1, Fig. 2",
        "at every n the mean final H/n (t interval over disorders) lies above −E∞",
        _decide_above,
        shown_in="floor.png",
    ),
    Claim(
        "floor.asymptote",
        "“as Λ increases the values concentrate around −E∞”; the band is “just above the asymptotic "
        "floor level” −E∞ (Sagun et al. §3.1.1)",
        "Choromanska et al. §5.2, Fig. 3 (left), Fig. 8 (top); Sagun et al. §3.1.1",
        "the asymptote c of the finite-size fit c + a·n^(−b) of the mean final H/n (sizes n ≥ fit_from; "
        "percentile bootstrap over disorders, resampled within each size) lies within ±(E₀ − E∞)/2 of −E∞: "
        "the margin is half the distance between the paper's two levels (Sagun et al. §2.1.1: "
        f"{PAPER_E0} and {PAPER_EINF}), so that a held verdict places the band at the floor and not at the "
        "ground state. b = 2/3 by default (fit_exponent): a minimum at H/n = −E∞ + δ has a Hessian whose "
        "spectrum is a semicircle of radius pE∞ shifted by pδ, so minima above −E∞ exist only within the "
        "Tracy–Widom window of its edge, δ ∝ n^(−2/3) (ours; the papers give no rate). Guard: the fit with "
        "b free must give b an interval that contains the fixed b",
        _decide_asymptote,
        shown_in="floor_fit.png",
    ),
    Claim(
        "floor.spread",
        "“When N is small the system gets trapped at bad energy values … When N is finite but large, floor "
        "is a narrow band”; “for larger values of Λ the distribution becomes increasingly concentrated”",
        "Sagun et al. Fig. 2; Choromanska et al. §5.2, Fig. 3 (left)",
        "the slope of log(std of the final H/n within a disorder) against log n is negative (BCa bootstrap "
        "over disorders, resampled within each size)",
        _decide_spread,
        shown_in="floor_fit.png",
    ),
    Claim(
        "floor.minima",
        "“for large-size networks the probability of recovering a saddle point in the band "
        "(−ΛE₀(H), −ΛE∞(H)), rather than a local minima, goes to 0”",
        "Choromanska et al. §4; Sagun et al. §2.1.1 (“this floor is the first place to get stuck”)",
        f"among the endpoints that are critical points (gradient norm measured and at most "
        f"{CRITICAL_FACTOR:g}× the descent's tolerance: the float32 gradient of the same point, evaluated "
        "again in another batch, can differ from the descent's by more than the tolerance at n = 300), the "
        "share whose Riemannian Hessian "
        f"has no negative eigenvalue (Wilson interval) exceeds {MINIMA_SHARE} (ours: at most 5% saddles); "
        f"guard: at most {UNCHECKED_SHARE:.0%} of the endpoints are not critical (the descent's step budget "
        "ran out)",
        _decide_minima,
        shown_in="floor-sizes",
    ),
)

DIAGNOSTICS = (
    Diagnostic(
        "floor-free-exponent",
        "floor",
        ("fit_exponent=0",),
        ("floor.asymptote",),
        "is the asymptote −E∞ when the exponent of the finite-size correction is fitted with it instead of "
        "being fixed at the soft-edge value 2/3?",
    ),
    Diagnostic(
        "floor-more-disorders",
        "floor",
        ("disorders=10",),
        ("floor.asymptote", "floor.above", "floor.spread"),
        "does the verdict change with twice the disorders per size?",
    ),
)


# ---------------------------------------------------------------------------------------------- tables


def tables(results: dict[str, Any], config: dict[str, Any]) -> list[Table]:
    sizes = tuple(
        (
            r["n"],
            f"{r['disorders']} × {r['runs'] // max(r['disorders'], 1)}",
            f"{r['mean']:.4f}",
            f"{np.mean(r['disorder_stds']):.4f}",
            f"{r['min']:.4f}",
            f"{r['minima']}/{r['runs']}",
            f"{r['median_lambda_min']:.3g}",
            f"{r['max_grad_norm']:.2g}",
            "–",
        )
        for r in results["sizes"]
    )
    paper_runs = ", ".join(f"{v} ({k})" for k, v in PAPER_RUNS.items())
    fits = tuple(
        (
            "fitted" if f["exponent_fitted"] else "fixed",
            f"{f['exponent']:.3g} [{f['exponent_ci_low']:.3g}, {f['exponent_ci_high']:.3g}]"
            if f["exponent_fitted"]
            else f"{f['exponent']:.3g}",
            f"{f['asymptote']:.4f} [{f['ci_low']:.4f}, {f['ci_high']:.4f}]",
            f"{f['rms']:.2g}",
            f"−{PAPER_EINF} (−E∞), −{PAPER_E0} (−E₀)",
        )
        for f in results["fits"]
    )
    return [
        Table(
            "floor-sizes",
            "final H/n of gradient descent per size n",
            (
                "n",
                "disorders × runs",
                "mean H/n",
                "std within a disorder",
                "min",
                "index 0",
                "median λ_min",
                "max ‖grad‖",
                "paper",
            ),
            sizes,
            f"Ours at the {config['scale']} scale; the papers show histograms only (runs per size: "
            f"{paper_runs}, one disorder). λ_min: the smallest eigenvalue of the Riemannian Hessian at an "
            f"endpoint; descent stops at ‖grad‖ ≤ {results['tol']:g}.",
        ),
        Table(
            "floor-fit",
            "the asymptote of the mean final H/n, c + a·n^(−b)",
            ("b", "value of b", "asymptote c [95% interval]", "rms residual", "Sagun et al. §2.1.1"),
            fits,
            "Least squares over the sizes n ≥ fit_from; the intervals resample the disorders of every size "
            "(percentile bootstrap). The first row decides floor.asymptote; b = 2/3 is the soft-edge scale "
            "of the Hessian's spectrum at a minimum just above −E∞.",
        ),
    ]


FIGURES = (
    Figure(
        "floor.png",
        "histograms of the final H/n of gradient descent per n (all disorders), with −E₀ and −E∞",
        "Sagun et al. Fig. 2; Choromanska et al. Fig. 3 (left), Fig. 8 (top): histograms of the final H/n "
        "for Λ = 25 … 500; for small n the system gets trapped at bad values, for large n the values form "
        f"a narrow band just above the floor −E∞ = −{PAPER_EINF} (ground state −E₀ = −{PAPER_E0}).",
    ),
    Figure(
        "floor_fit.png",
        "left: the mean final H/n per n (grey: per disorder) with the finite-size fits and the intervals of "
        "their asymptotes; right: the spread within a disorder and the median λ_min against n",
        "Choromanska et al. §5.2: “as Λ increases the values concentrate around −E∞” (no figure of the "
        "extrapolation in the papers).",
    ),
)


EXPERIMENT = Experiment(
    name="floor",
    description="final energies of gradient descent from random starts, per size n, and their asymptote",
    reproduces="Sagun et al. Fig. 2, §3.1.1; Choromanska et al. Fig. 3 (left), Fig. 8 (top), §5",
    params=PARAMS,
    units=units,
    run_unit=run_unit,
    finalize=finalize,
    memory=memory,
    tables=tables,
    figures=FIGURES,
    claims=CLAIMS,
    diagnostics=DIAGNOSTICS,
    order=110,
)
