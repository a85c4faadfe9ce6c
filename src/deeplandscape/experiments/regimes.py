"""``regimes``: the perturbed 3-spin glass in the exponential, polynomial and trivial regimes.

AnnealSGD paper §5.1, eq. (15), Fig. 2 (Thesis §2.4.1): for a disorder J, n = 100 spins and fields
h = ν z, z ~ N(0, I), with ν = 1/n (exponential), ν = √3(1 − 1/n)^{1/2} (polynomial) and ν = 3 (trivial),
R runs of projected gradient descent (η = 0.1, stop at ‖∇H̃‖ ≤ 1e-4) per regime; a 2-D t-SNE of the
endpoints with the background coloured by a kernel estimate of H/n; the number of distinct minima
(overlap ≥ 1 − ε) and the mean cosine distance between endpoints (paper: 1.16 exponential, 0.02 trivial).

The paper runs one disorder; we run several (the three regimes of one disorder share J and the direction
of h, as in the paper), so that every number has an interval over disorders.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.ticker import ScalarFormatter

from deeplandscape.experiments import _memory
from deeplandscape.experiments._common import descent_params
from deeplandscape.experiments._plot import plt, save
from deeplandscape.experiments.claims import (
    Claim,
    PaperNumber,
    RunData,
    Verdict,
    all_of,
    bootstrap,
    decide,
    mean,
    proportion,
)
from deeplandscape.experiments.spec import (
    Diagnostic,
    Experiment,
    Figure,
    MemoryNeed,
    Param,
    Table,
    Unit,
    UnitResult,
    unit_seed,
)
from deeplandscape.spinglass import PSpinGlass, descend, group_minima, mean_cosine_distance, theory

REGIMES = ("exponential", "polynomial", "trivial")
# AnnealSGD paper Fig. 2(C): "The average cosine distance (on S^{n−1}(√n)) here is 0.02 as compared to 1.16
# for Fig. 2a".
PAPER_COSINE = {
    "exponential": PaperNumber(1.16, "AnnealSGD paper Fig. 2(C) caption (for Fig. 2a)"),
    "trivial": PaperNumber(0.02, "AnnealSGD paper Fig. 2(C) caption"),
}
# The colour bars of Fig. 2 (the raw extraction of the AnnealSGD paper): H/n of the endpoints per regime.
PAPER_ENERGY = {"exponential": "−1.58 … −1.54", "polynomial": "−2.100 … −2.000", "trivial": "−3.446"}
PAPER_RUNS = 20_000  # "t-SNE … for 20,000 runs of gradient descent", AnnealSGD paper §5.1
COSINE_SPLIT = (PAPER_COSINE["exponential"].value + PAPER_COSINE["trivial"].value) / 2
UNIQUE_SHARE = 0.99  # "always converges to the same location": ours, at most 1 run in 100 elsewhere
CONSTANT = 1e-6  # a kernel background varying less than this (in H/n) is drawn as one colour

PARAMS = {
    "n": Param("int", 100, "number of spins", quick=50, low=3),
    "runs": Param(
        "int",
        200,
        "gradient-descent runs per regime and disorder",
        quick=48,
        reference=400,
        paper=20000,
        low=2,
    ),
    "disorders": Param(
        "int", 5, "independent disorders J (each run in the three regimes)", quick=3, paper=2, low=1
    ),
    **descent_params(),
    "eps": Param("float", 0.01, "same minimum when overlap ≥ 1 − eps", low=1e-9, high=1.0),
    "tsne_points": Param(
        "int",
        500,
        "endpoints of the first disorder embedded by t-SNE per regime",
        quick=48,
        paper=5000,
        low=10,
    ),
}


def field_std(name: str, n: int) -> float:
    """ν of each regime, AnnealSGD paper §5.1 (i)–(iii)."""
    return {"exponential": 1 / n, "polynomial": math.sqrt(3) * (1 - 1 / n) ** 0.5, "trivial": 3.0}[name]


def units(config: dict[str, Any]) -> list[Unit]:
    return [
        Unit(f"{name}-d{d}", {"name": name, "disorder": d})
        for d in range(config["disorders"])
        for name in REGIMES
    ]


def disorder_seed(seed: int, disorder: int) -> int:
    """The seed of disorder J number ``disorder`` (and of the field's direction), shared by the regimes."""
    return unit_seed(seed, 1_000_000 + disorder)


def run_unit(config: dict[str, Any], unit: Unit, seed: int) -> UnitResult:
    n, name = config["n"], unit.params["name"]
    nu = field_std(name, n)
    hamiltonian = PSpinGlass(n, 3, field_std=nu, seed=disorder_seed(config["seed"], unit.params["disorder"]))
    starts = hamiltonian.random_configurations(config["runs"], seed=seed)
    result = descend(hamiltonian, starts, lr=config["lr"], tol=config["tol"], max_steps=config["max_steps"])
    groups = group_minima(result.sigma, eps=config["eps"], energy=result.energy)
    predicted = theory.regime(n, 3, nu)
    return UnitResult(
        values={
            "name": name,
            "disorder": unit.params["disorder"],
            "nu": nu,
            "runs": config["runs"],
            "distinct_minima": groups.num_minima,
            "largest_share": int(groups.counts.max()),
            "mean_cosine_distance": mean_cosine_distance(result.sigma),
            "mean_energy": float(result.energy_per_spin.double().mean()),
            "converged_fraction": result.converged_fraction,
            "n_times_b": -predicted.tau,
            "predicted_regime": predicted.name,
        },
        arrays={"sigma": result.sigma.numpy(), "energy_per_spin": result.energy_per_spin.numpy()},
    )


def embed(sigma: np.ndarray, seed: int) -> np.ndarray:
    """2-D t-SNE of endpoints (cosine metric: points on a sphere)."""
    from sklearn.manifold import TSNE

    perplexity = float(min(30, max(2, (len(sigma) - 1) // 3)))
    tsne = TSNE(2, perplexity=perplexity, metric="cosine", init="random", random_state=seed % 2**31)
    return tsne.fit_transform(sigma.astype(np.float64))


def kernel_background(xy: np.ndarray, values: np.ndarray, grid: int = 120):
    """Nadaraya–Watson estimate of H/n over the embedding plane (bandwidth: Scott's rule)."""
    lo, hi = xy.min(0), xy.max(0)
    pad = 0.05 * (hi - lo + 1e-9)
    gx, gy = np.meshgrid(
        np.linspace(lo[0] - pad[0], hi[0] + pad[0], grid), np.linspace(lo[1] - pad[1], hi[1] + pad[1], grid)
    )
    bandwidth = xy.std(0).mean() * len(xy) ** (-1 / 6) + 1e-12
    d2 = ((np.stack([gx.ravel(), gy.ravel()], 1)[:, None, :] - xy[None]) ** 2).sum(-1)
    w = np.exp(-0.5 * d2 / bandwidth**2) + 1e-300
    return gx, gy, ((w @ values) / w.sum(1)).reshape(grid, grid)


def _minima(count: int) -> str:
    return f"{count} minimum" if count == 1 else f"{count} minima"


def _padded(values: np.ndarray) -> tuple[float, float]:
    lo, hi = float(values.min()), float(values.max())
    pad = 0.05 * (hi - lo) + 1e-6
    return lo - pad, hi + pad


def plot_regimes(first: list[UnitResult], tsne_points: int, seed: int):
    """One panel per regime (the first disorder): t-SNE of the endpoints on the kernel estimate of H/n.
    A background that varies by less than :data:`CONSTANT` (the trivial regime: every run at one minimum,
    the rest float32 round-off) is drawn in one colour and labelled with its value, not stretched over
    a colour map; colour bars print plain values, without an offset."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
    rng = np.random.default_rng(seed)
    for ax, result in zip(axes, first, strict=True):
        sigma, energy = result.arrays["sigma"], result.arrays["energy_per_spin"].astype(float)
        pick = rng.choice(len(sigma), size=min(tsne_points, len(sigma)), replace=False)
        v = result.values
        ax.set_title(
            f"{v['name']}: ν = {v['nu']:.3g}\n{_minima(v['distinct_minima'])} in {v['runs']} runs",
            fontsize=10,
        )
        ax.set_xticks([])
        ax.set_yticks([])
        xy = embed(sigma[pick], seed)
        ax.set_xlim(*_padded(xy[:, 0]))
        ax.set_ylim(*_padded(xy[:, 1]))
        if np.ptp(energy[pick]) < CONSTANT:
            ax.set_facecolor(plt.get_cmap("viridis")(0.5))
            ax.scatter(xy[:, 0], xy[:, 1], s=3, c="white", edgecolors="none", alpha=0.7)
            ax.text(
                0.5,
                0.04,
                f"H/n = {energy[pick].mean():.4f} at every endpoint (spread < {CONSTANT:g})",
                ha="center",
                transform=ax.transAxes,
                color="white",
                fontsize=9,
            )
            continue
        gx, gy, bg = kernel_background(xy, energy[pick])
        mesh = ax.contourf(gx, gy, bg, levels=20, cmap="viridis")
        ax.scatter(xy[:, 0], xy[:, 1], s=3, c="white", edgecolors="none", alpha=0.7)
        bar = fig.colorbar(mesh, ax=ax, label="H/n (kernel estimate)")
        formatter = ScalarFormatter(useOffset=False)
        formatter.set_scientific(False)
        bar.ax.yaxis.set_major_formatter(formatter)
    fig.tight_layout()
    return fig


def finalize(config: dict[str, Any], results: list[UnitResult], out: Path) -> dict[str, Any]:
    first = [r for r in results if r.values["disorder"] == 0]
    save(plot_regimes(first, config["tsne_points"], config["seed"]), out / "regimes.png")
    regimes = []
    for name in REGIMES:
        mine = [r.values for r in results if r.values["name"] == name]
        keys = (
            "distinct_minima",
            "largest_share",
            "mean_cosine_distance",
            "mean_energy",
            "converged_fraction",
        )
        regimes.append(
            {
                "name": name,
                "nu": mine[0]["nu"],
                "n_times_b": mine[0]["n_times_b"],
                "predicted_regime": mine[0]["predicted_regime"],
                "runs": config["runs"],
                **{key: [v[key] for v in mine] for key in keys},
            }
        )
    return {"n": config["n"], "eps": config["eps"], "regimes": regimes}


def memory(config: dict[str, Any]) -> list[MemoryNeed]:
    n, runs = config["n"], config["runs"]
    return [
        MemoryNeed("n", _memory.pspin_couplings(n, 3), f"the couplings of the 3-spin glass at n = {n}"),
        MemoryNeed("runs", _memory.configurations(runs, n), f"{runs} configurations of n = {n} spins"),
        MemoryNeed(
            "tsne_points",
            8.0 * config["tsne_points"] * 120 * 120 * 2,
            f"the kernel background of {config['tsne_points']} embedded endpoints (120 × 120 grid)",
        ),
    ]


# ---------------------------------------------------------------------------------------------- claims


def _by_name(run: RunData) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in run.results["regimes"]}


def _decide_fewer(run: RunData) -> Verdict:
    r = _by_name(run)
    exp, poly = np.array(r["exponential"]["distinct_minima"]), np.array(r["polynomial"]["distinct_minima"])
    stat = mean(np.log(exp / poly), "log(minima exponential / minima polynomial)", what="disorder")
    return decide(
        stat,
        above=0.0,
        evidence=f"distinct minima per disorder: exponential {exp.tolist()}, "
        f"polynomial {poly.tolist()} of {r['exponential']['runs']} runs",
    )


def _decide_unique(run: RunData) -> Verdict:
    r = _by_name(run)["trivial"]
    at_main, runs = sum(r["largest_share"]), r["runs"] * len(r["largest_share"])
    return decide(
        proportion(at_main, runs, "share of runs at their disorder's most visited minimum (trivial)"),
        above=UNIQUE_SHARE,
        evidence=f"distinct minima per disorder {r['distinct_minima']}",
    )


def _decide_cosine(run: RunData) -> Verdict:
    r = _by_name(run)
    parts = []
    for name, side in (("exponential", "above"), ("trivial", "below")):
        stat = bootstrap(
            r[name]["mean_cosine_distance"],
            np.mean,
            f"mean cosine distance ({name})",
            what="disorder",
            seed=run.config.get("seed", 0),
        )
        parts.append((name, decide(stat, **{side: COSINE_SPLIT})))
    return all_of(parts)


CLAIMS = (
    Claim(
        "regimes.fewer-minima",
        "(B) Polynomial regime: “The number of isolated clusters, i.e., local minima, is significantly "
        "smaller as compared to Fig. 2a”",
        "AnnealSGD paper §5.1, Fig. 2(B)",
        "the mean over disorders of log(distinct minima in the exponential regime / in the polynomial "
        "regime) is above 0 (t interval over disorders); endpoints are the same minimum when their overlap "
        "is ≥ 1 − eps",
        _decide_fewer,
        shown_in="regimes-table",
    ),
    Claim(
        "regimes.unique",
        "(C) Trivial regime: “Gradient descent always converges to the same location”",
        "AnnealSGD paper §5.1, Fig. 2(C)",
        f"the share of runs that end at their disorder's most visited minimum (Wilson interval over every "
        f"run of every disorder) exceeds {UNIQUE_SHARE} (ours: “always” read as at most 1 run in 100 "
        "elsewhere)",
        _decide_unique,
        shown_in="regimes.png",
    ),
    Claim(
        "regimes.cosine",
        "“The average cosine distance (on S^{n−1}(√n)) here is 0.02 as compared to 1.16 for Fig. 2a which "
        "suggests that this is indeed a unique local minimum”",
        "AnnealSGD paper §5.1, Fig. 2(C)",
        f"the mean over disorders of the mean cosine distance 1 − cos between endpoints (BCa bootstrap over "
        f"disorders) lies above {COSINE_SPLIT:g} in the exponential regime and below it in the trivial one: "
        f"{COSINE_SPLIT:g} is the midpoint of the paper's two values, so each regime is nearer the paper's "
        "value for it than the other's. (The paper's 1.16 exceeds the largest possible mean of 1 − cos over "
        "all pairs of R points, 1 + 1/(R − 1); its distance must be defined otherwise, and only the "
        "contrast is compared.)",
        _decide_cosine,
        shown_in="regimes-table",
    ),
)

DIAGNOSTICS = (
    Diagnostic(
        "regimes-more-runs",
        "regimes",
        ("runs=1000",),
        ("regimes.fewer-minima", "regimes.unique"),
        "do the counts of distinct minima change with five times the runs per disorder?",
    ),
)


def _interval(values: list[float], digits: int = 3) -> str:
    v = np.asarray(values, dtype=float)
    if v.size < 2 or np.all(v == v[0]):
        return f"{v.mean():.{digits}g}"
    s = bootstrap(v, np.mean, "x", what="disorder")
    return f"{s.estimate:.{digits}g} [{s.ci_low:.{digits}g}, {s.ci_high:.{digits}g}]"


def tables(results: dict[str, Any], config: dict[str, Any]) -> list[Table]:
    rows = tuple(
        (
            r["name"],
            f"{r['nu']:.3g}",
            f"{r['n_times_b']:.3g}",
            r["predicted_regime"],
            _interval(r["distinct_minima"]),
            _interval(r["mean_cosine_distance"]),
            str(PAPER_COSINE[r["name"]]) if r["name"] in PAPER_COSINE else "–",
            _interval(r["mean_energy"], 4),
            PAPER_ENERGY[r["name"]],
        )
        for r in results["regimes"]
    )
    return [
        Table(
            "regimes-table",
            f"the three regimes, n = {results['n']}",
            (
                "regime",
                "ν",
                "nB",
                "theory (§4.2)",
                "distinct minima",
                "mean cosine distance",
                "paper",
                "mean H/n",
                "paper (Fig. 2 colour bars)",
            ),
            rows,
            f"Ours at the {config['scale']} scale: {config['runs']} runs per regime and disorder, "
            f"{config['disorders']} disorders; means over disorders with 95% intervals (BCa bootstrap over "
            "disorders). The paper: one "
            f"disorder, {PAPER_RUNS:,} runs. Distinct minima: endpoints grouped at overlap ≥ 1 − "
            f"{results['eps']:g}. Cosine distance: the mean of 1 − cos over all pairs of endpoints.",
        ),
    ]


FIGURES = (
    Figure(
        "regimes.png",
        "t-SNE of the endpoints of the first disorder in each regime, on a kernel estimate of H/n",
        f"AnnealSGD paper Fig. 2: t-SNE of the minima of the perturbed 3-spin glass (n = 100, {PAPER_RUNS:,} "
        "runs) in the exponential, polynomial and trivial regimes; mean cosine distance "
        f"{PAPER_COSINE['exponential']} (exponential) and {PAPER_COSINE['trivial']} (trivial).",
    ),
)


EXPERIMENT = Experiment(
    name="regimes",
    description="minima of the perturbed 3-spin glass in the three field regimes (t-SNE)",
    reproduces="AnnealSGD paper Fig. 2, §5.1; Thesis §2.4.1",
    params=PARAMS,
    units=units,
    run_unit=run_unit,
    finalize=finalize,
    memory=memory,
    tables=tables,
    figures=FIGURES,
    claims=CLAIMS,
    diagnostics=DIAGNOSTICS,
    order=120,
)
