"""``tripartite``: final energies of gradient descent on the tri-partite spin glass, small vs large n.

Sagun et al. §3.1.2, Fig. 4: H = n^{-1} Σ x_ijk w¹_i w²_j w³_k on a product of three spheres (the same
variance n as the 3-spin glass H of eq. (1)); the floor structure of the p-spin glass appears for large
n, at lower energies (fewer constraints). No ground state is known for this model. The 3-spin glass runs
beside it at the same n, with the same descent, for the comparison the paper makes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from deeplandscape.experiments import _memory
from deeplandscape.experiments._common import descent_params
from deeplandscape.experiments._plot import plt, save
from deeplandscape.experiments.claims import (
    Claim,
    NotChecked,
    RunData,
    Verdict,
    all_of,
    bootstrap,
    decide,
    mean,
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
)
from deeplandscape.rundir import save_npz
from deeplandscape.spinglass import PSpinGlass, TripartiteSpinGlass, descend

MODELS = ("tripartite", "3-spin")

PARAMS = {
    "sizes": Param("ints", [10, 100], "spins per layer n (a small and a large one)", quick=[8, 30], low=2),
    "runs": Param(
        "int", 100, "random starts per model, size and disorder", quick=24, reference=200, paper=5000, low=2
    ),
    "disorders": Param("int", 5, "independent disorders per model and size", quick=3, low=1),
    **descent_params(),
}


def units(config: dict[str, Any]) -> list[Unit]:
    return [
        Unit(f"{model}-n{n}-d{d}", {"model": model, "n": n, "disorder": d})
        for model in MODELS
        for n in config["sizes"]
        for d in range(config["disorders"])
    ]


def run_unit(config: dict[str, Any], unit: Unit, seed: int) -> UnitResult:
    n, model = unit.params["n"], unit.params["model"]
    hamiltonian = TripartiteSpinGlass(n, seed=seed) if model == "tripartite" else PSpinGlass(n, 3, seed=seed)
    starts = hamiltonian.random_configurations(config["runs"], seed=seed + 1)
    result = descend(hamiltonian, starts, lr=config["lr"], tol=config["tol"], max_steps=config["max_steps"])
    energy = result.energy_per_spin.double().numpy()
    return UnitResult(
        values={
            **unit.params,
            "mean": float(energy.mean()),
            "std": float(energy.std(ddof=1)),
            "converged_fraction": result.converged_fraction,
        },
        arrays={"energy_per_spin": energy},
    )


def finalize(config: dict[str, Any], results: list[UnitResult], out: Path) -> dict[str, Any]:
    sizes = config["sizes"]
    fig, axes = plt.subplots(len(sizes), 1, figsize=(6, 1.9 * len(sizes) + 0.6), sharex=True)
    axes = np.atleast_1d(axes)
    rows, arrays = [], {}
    for ax, n in zip(axes, sizes, strict=True):
        for model, colour in zip(MODELS, ("tab:green", "tab:blue"), strict=True):
            mine = [r for r in results if r.values["n"] == n and r.values["model"] == model]
            e = np.concatenate([r.arrays["energy_per_spin"] for r in mine])
            arrays[f"{model}_n{n}"] = e
            ax.hist(e, bins=50, color=colour, alpha=0.6, label=f"{model} ({e.size} runs)")
            rows.append(
                {"model": model, "n": n, "runs": int(e.size)}
                | {k: [r.values[k] for r in mine] for k in ("mean", "std", "converged_fraction")}
            )
        ax.set_ylabel(f"n = {n}")
        ax.legend(fontsize=7)
    axes[0].set_title("Final H/n of gradient descent: tri-partite and 3-spin glass")
    axes[-1].set_xlabel("H/n")
    fig.tight_layout()
    save(fig, out / "tripartite.png")
    save_npz(out / "tripartite.npz", **arrays)
    return {"sizes": sizes, "rows": rows}


def memory(config: dict[str, Any]) -> list[MemoryNeed]:
    n, runs = max(config["sizes"]), config["runs"]
    return [
        # TripartiteSpinGlass stores its n³ couplings unpacked (float32), the 3-spin glass packs them
        MemoryNeed(
            "sizes",
            2.0 * n**3 * _memory.FLOAT32 + _memory.pspin_couplings(n, 3),
            f"the n³ couplings at n = {n}",
        ),
        MemoryNeed("runs", _memory.configurations(runs, 3 * n), f"{runs} configurations of 3 × {n} spins"),
    ]


# ---------------------------------------------------------------------------------------------- claims


def _row(run: RunData, model: str, n: int) -> dict[str, Any]:
    return next(r for r in run.results["rows"] if r["model"] == model and r["n"] == n)


def _difference(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(a, axis=axis) - np.mean(b, axis=axis)


def _decide_lower(run: RunData) -> Verdict:
    parts = []
    for n in run.results["sizes"]:
        tri, spin = _row(run, "tripartite", n)["mean"], _row(run, "3-spin", n)["mean"]
        stat = bootstrap(
            [tri, spin],
            _difference,
            f"mean H/n tri-partite − 3-spin, n = {n}",
            what="disorder",
            seed=run.config.get("seed", 0),
        )
        parts.append((f"n = {n}", decide(stat, below=0.0)))
    return all_of(parts)


def _log_ratio(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.log(np.mean(a, axis=axis) / np.mean(b, axis=axis))


def _decide_floor(run: RunData) -> Verdict:
    small, large = min(run.results["sizes"]), max(run.results["sizes"])
    if small == large:
        raise NotChecked("a single size: no small and large n to compare")
    a, b = _row(run, "tripartite", large)["std"], _row(run, "tripartite", small)["std"]
    stat = bootstrap(
        [a, b],
        _log_ratio,
        f"log(std of H/n at n = {large} / at n = {small})",
        what="disorder",
        seed=run.config.get("seed", 0),
    )
    return decide(
        stat, below=0.0, evidence=f"mean std {np.mean(b):.3g} at n = {small}, {np.mean(a):.3g} at n = {large}"
    )


CLAIMS = (
    Claim(
        "tripartite.lower",
        "“Since there are fewer constraints, the values obtained by this procedure should be lower, which is "
        "indeed the case.”",
        "Sagun et al. §3.1.2, Fig. 4",
        "at every n, the mean final H/n of the tri-partite glass minus that of the 3-spin glass at the same "
        "n (BCa bootstrap over disorders, two independent samples) lies below 0",
        _decide_lower,
        shown_in="tripartite-table",
    ),
    Claim(
        "tripartite.floor",
        "“Figure 4 shows a similar floor structure of the landscape … we find evidence of floor in high "
        "dimensions” (low dimension: a wide spread of values; high dimension: a narrow band)",
        "Sagun et al. §3.1.2, Fig. 4",
        "the std of the final H/n within a disorder is smaller at the largest n than at the smallest: "
        "log(ratio of the means over disorders) below 0 (BCa bootstrap over disorders)",
        _decide_floor,
        shown_in="tripartite.png",
    ),
)

DIAGNOSTICS = (
    Diagnostic(
        "tripartite-more-disorders",
        "tripartite",
        ("disorders=10",),
        ("tripartite.lower", "tripartite.floor"),
        "does the verdict change with twice the disorders?",
    ),
)


def tables(results: dict[str, Any], config: dict[str, Any]) -> list[Table]:
    def interval(values: list[float]) -> str:
        if len(values) < 2:
            return f"{np.mean(values):.4f}"
        s = mean(values, "x", what="disorder")
        return f"{s.estimate:.4f} [{s.ci_low:.4f}, {s.ci_high:.4f}]"

    rows = tuple(
        (
            r["model"],
            r["n"],
            r["runs"],
            interval(r["mean"]),
            f"{np.mean(r['std']):.4f}",
            f"{np.mean(r['converged_fraction']):.3g}",
            "–",
        )
        for r in results["rows"]
    )
    return [
        Table(
            "tripartite-table",
            "final H/n of gradient descent, tri-partite and 3-spin glass",
            ("model", "n", "runs", "mean H/n [95%]", "std within a disorder", "converged", "Sagun et al."),
            rows,
            f"Ours at the {config['scale']} scale: {config['runs']} runs × {config['disorders']} disorders "
            "per "
            "model and n; means over disorders with t intervals. n counts the spins of one layer (the "
            "tri-partite configuration has 3n). The paper shows histograms (Fig. 4) and gives no number.",
        )
    ]


FIGURES = (
    Figure(
        "tripartite.png",
        "histograms of the final H/n of gradient descent, tri-partite (green) and 3-spin (blue), per n",
        "Sagun et al. Fig. 4: “Tri-partite spins low dimension vs high dimension comparison”: a floor "
        "appears "
        "for large n, none for small n.",
    ),
)


EXPERIMENT = Experiment(
    name="tripartite",
    description="gradient descent on the tri-partite spin glass, small vs large n, beside the 3-spin glass",
    reproduces="Sagun et al. Fig. 4, §3.1.2",
    params=PARAMS,
    units=units,
    run_unit=run_unit,
    finalize=finalize,
    memory=memory,
    tables=tables,
    figures=FIGURES,
    claims=CLAIMS,
    diagnostics=DIAGNOSTICS,
    order=140,
)
