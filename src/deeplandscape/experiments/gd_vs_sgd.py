"""``gd-vs-sgd``: gradient descent against stochastic gradient descent on the 3-spin glass.

Sagun et al. §3.2.1, eq. (4), Fig. 7: the Hamiltonian as a sum of P independent sub-Hamiltonians (disorder
variance 1/P each); SGD steps along one summand at a time (P = 1 is gradient descent). Energies are
compared at equal step × steps / P, where all P reach the same floor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deeplandscape.experiments import _memory
from deeplandscape.experiments._common import summary, table
from deeplandscape.experiments._plot import plt, save
from deeplandscape.experiments.spec import Experiment, MemoryNeed, Param, Unit, UnitResult
from deeplandscape.rundir import save_npz
from deeplandscape.spinglass import SplitPSpinGlass, descend

PARAMS = {
    "n": Param("int", 100, "number of spins", quick=40, low=3),
    "runs": Param("int", 64, "random starts per P", quick=16, paper=500, low=1),
    "parts": Param(
        "ints", [1, 20, 30], "numbers of summands P (1 = gradient descent)", quick=[1, 5, 10], low=1
    ),
    "lr": Param("float", 0.1, "step size", low=1e-8),
    "horizon": Param("float", 50.0, "step × steps / P at which runs stop", quick=20.0, low=0.01),
    "points": Param("int", 100, "recorded points per curve", quick=40, low=2),
}


def units(config: dict[str, Any]) -> list[Unit]:
    return [Unit(f"P{p}", {"parts": p}) for p in config["parts"]]


def run_unit(config: dict[str, Any], unit: Unit, seed: int) -> UnitResult:
    parts, lr = unit.params["parts"], config["lr"]
    hamiltonian = SplitPSpinGlass(config["n"], 3, parts=parts, seed=seed)
    starts = hamiltonian.random_configurations(config["runs"], seed=seed + 1)
    steps = max(1, round(config["horizon"] * parts / lr))
    record = max(parts, steps // config["points"])
    result = descend(hamiltonian, starts, lr=lr, tol=0.0, max_steps=steps, method="sgd", record_every=record)
    energy = result.energy_per_spin.double().numpy()
    stats = summary(energy)
    return UnitResult(
        values={
            "P": parts,
            "steps": steps,
            "final_energy_mean": stats["mean"],
            "final_energy_std": stats["std"],
        },
        arrays={
            "x": result.trajectory_steps.double().numpy() * lr / parts,
            "energy": result.trajectory.double().numpy(),
        },
    )


def finalize(config: dict[str, Any], results: list[UnitResult], out: Path) -> tuple[dict, str]:
    fig, ax = plt.subplots(figsize=(6, 4))
    arrays = {}
    for result in results:
        p = result.values["P"]
        x, e = result.arrays["x"], result.arrays["energy"]
        mean, std = e.mean(1), e.std(1)
        ax.plot(x, mean, label=f"P = {p}" + (" (GD)" if p == 1 else ""))
        ax.fill_between(x, mean - std, mean + std, alpha=0.2)
        arrays[f"x_P{p}"], arrays[f"energy_P{p}"] = x, e
    ax.set(xlabel="step size × steps / P", ylabel="H/n", title=f"GD and SGD, 3-spin glass, n = {config['n']}")
    ax.legend()
    save(fig, out / "gd_vs_sgd.png")
    save_npz(out / "gd_vs_sgd.npz", **arrays)
    rows = [r.values for r in results]
    body = "\n\n".join(
        [
            "Sagun et al. Fig. 7: different P reach the same energy at the same step × steps / P.",
            table(
                ["P", "steps", "final H/n mean", "std"],
                [[r["P"], r["steps"], r["final_energy_mean"], r["final_energy_std"]] for r in rows],
            ),
            "![gd vs sgd](gd_vs_sgd.png)",
        ]
    )
    return {"n": config["n"], "runs": rows}, body


def memory(config: dict[str, Any]) -> list[MemoryNeed]:
    n, runs, parts = config["n"], config["runs"], max(config["parts"])
    return [
        MemoryNeed("n", _memory.pspin_couplings(n, 3), f"the couplings of the 3-spin glass at n = {n}"),
        MemoryNeed(
            "parts",
            _memory.pspin_couplings(n, 3, parts=parts),
            f"the couplings of {parts} summands of the 3-spin glass at n = {n}",
        ),
        MemoryNeed("runs", _memory.configurations(runs, n), f"{runs} configurations of n = {n} spins"),
    ]


EXPERIMENT = Experiment(
    name="gd-vs-sgd",
    description="gradient descent vs SGD on the 3-spin glass written as a sum of P Hamiltonians",
    reproduces="Sagun et al. Fig. 7, §3.2.1",
    params=PARAMS,
    units=units,
    run_unit=run_unit,
    finalize=finalize,
    memory=memory,
    order=130,
)
