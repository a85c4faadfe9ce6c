"""``tripartite``: final energies of gradient descent on the tri-partite spin glass, small vs large n.

Sagun et al. §3.1.2, Fig. 4: H = n^{-1} Σ x_ijk w¹_i w²_j w³_k on a product of three spheres; the floor
structure of the p-spin glass appears for large n, with lower energies (fewer constraints). No ground
state is known for this model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from deeplandscape.experiments import _memory
from deeplandscape.experiments._common import descent_params, summary, table
from deeplandscape.experiments._plot import plt, save
from deeplandscape.experiments.spec import Experiment, MemoryNeed, Param, Unit, UnitResult
from deeplandscape.rundir import save_npz
from deeplandscape.spinglass import TripartiteSpinGlass, descend

PARAMS = {
    "sizes": Param("ints", [10, 100], "spins per layer n (a small and a large one)", quick=[8, 30], low=2),
    "runs": Param("int", 500, "random starts per size", quick=32, paper=5000, low=2),
    **descent_params(),
}


def units(config: dict[str, Any]) -> list[Unit]:
    return [Unit(f"n{n}", {"n": n}) for n in config["sizes"]]


def run_unit(config: dict[str, Any], unit: Unit, seed: int) -> UnitResult:
    hamiltonian = TripartiteSpinGlass(unit.params["n"], seed=seed)
    starts = hamiltonian.random_configurations(config["runs"], seed=seed + 1)
    result = descend(hamiltonian, starts, lr=config["lr"], tol=config["tol"], max_steps=config["max_steps"])
    energy = result.energy_per_spin.double().numpy()
    return UnitResult(
        values={
            "n": unit.params["n"],
            "runs": config["runs"],
            "converged_fraction": result.converged_fraction,
            **summary(energy),
        },
        arrays={"energy_per_spin": energy},
    )


def finalize(config: dict[str, Any], results: list[UnitResult], out: Path) -> tuple[dict, str]:
    fig, axes = plt.subplots(len(results), 1, figsize=(6, 1.8 * len(results) + 0.5), sharex=True)
    axes = np.atleast_1d(axes)
    for ax, result in zip(axes, results, strict=True):
        ax.hist(result.arrays["energy_per_spin"], bins=50, color="tab:green", alpha=0.8)
        ax.set_ylabel(f"n = {result.values['n']}")
    axes[0].set_title("Final H/n of gradient descent, tri-partite spin glass")
    axes[-1].set_xlabel("H/n")
    fig.tight_layout()
    save(fig, out / "tripartite.png")
    save_npz(out / "tripartite.npz", **{f"n{r.values['n']}": r.arrays["energy_per_spin"] for r in results})
    rows = [r.values for r in results]
    body = "\n\n".join(
        [
            table(
                ["n", "runs", "mean H/n", "std", "min", "max", "converged"],
                [
                    [r["n"], r["runs"], r["mean"], r["std"], r["min"], r["max"], r["converged_fraction"]]
                    for r in rows
                ],
            ),
            "![tripartite](tripartite.png)",
        ]
    )
    return {"sizes": rows}, body


def memory(config: dict[str, Any]) -> list[MemoryNeed]:
    n, runs = max(config["sizes"]), config["runs"]
    return [
        # TripartiteSpinGlass stores its n³ couplings unpacked (float32)
        MemoryNeed("sizes", 2.0 * n**3 * _memory.FLOAT32, f"the n³ couplings at n = {n}"),
        MemoryNeed("runs", _memory.configurations(runs, 3 * n), f"{runs} configurations of 3 × {n} spins"),
    ]


EXPERIMENT = Experiment(
    name="tripartite",
    description="gradient descent on the tri-partite spin glass, small vs large n",
    reproduces="Sagun et al. Fig. 4, §3.1.2",
    params=PARAMS,
    units=units,
    run_unit=run_unit,
    finalize=finalize,
    memory=memory,
    order=140,
)
