"""``floor``: where gradient descent from random starts ends on the 3-spin glass, for several sizes n.

Sagun et al. §3.1.1 and Fig. 2; Choromanska et al. §5.1, Fig. 3 (left) and Fig. 8 (top): for each n
(and each disorder sample), run projected gradient descent (Thesis §2.4.1) from R uniform starts and
histogram the final H/n against the asymptotic bounds −E_0 (ground state) and −E_∞. As n grows the
endpoints concentrate in a narrow band just above −E_0; for small n they scatter. The index of every
endpoint checks that descent stops at minima.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from deeplandscape.experiments import _memory
from deeplandscape.experiments._common import descent_params, summary, table
from deeplandscape.experiments._plot import plt, save
from deeplandscape.experiments.spec import Experiment, MemoryNeed, Param, Unit, UnitResult
from deeplandscape.rundir import save_npz
from deeplandscape.spinglass import PSpinGlass, descend, index, theory

PARAMS = {
    "sizes": Param(
        "ints",
        [25, 50, 100, 200],
        "numbers of spins n",
        quick=[20, 50, 80],
        paper=[25, 50, 100, 200, 300, 400, 500],
        low=2,
    ),
    "runs": Param("int", 500, "random starts R per size and disorder", quick=48, paper=1000, low=2),
    "disorders": Param("int", 1, "independent disorder samples per size", paper=5, low=1),
    "p": Param("int", 3, "interaction order", low=3),
    **descent_params(),
    "index_chunk": Param("int", 100, "endpoints per batched Hessian when computing indices", low=1),
}


def units(config: dict[str, Any]) -> list[Unit]:
    return [
        Unit(f"n{n}-d{d}", {"n": n, "disorder": d})
        for n in config["sizes"]
        for d in range(config["disorders"])
    ]


def run_unit(config: dict[str, Any], unit: Unit, seed: int) -> UnitResult:
    n = unit.params["n"]
    hamiltonian = PSpinGlass(n, config["p"], seed=seed)
    starts = hamiltonian.random_configurations(config["runs"], seed=seed + 1)
    result = descend(hamiltonian, starts, lr=config["lr"], tol=config["tol"], max_steps=config["max_steps"])
    minima = torch.cat([index(hamiltonian, c).is_minimum for c in result.sigma.split(config["index_chunk"])])
    energies = result.energy_per_spin.double().numpy()
    return UnitResult(
        values={
            "n": n,
            "disorder": unit.params["disorder"],
            "converged_fraction": result.converged_fraction,
            "minima_fraction": float(minima.double().mean()),
            "median_steps": float(result.steps.double().median()),
            "wall_seconds": result.wall_seconds,
        },
        arrays={"energy_per_spin": energies},
    )


def finalize(config: dict[str, Any], results: list[UnitResult], out: Path) -> tuple[dict, str]:
    p = config["p"]
    e0, einf = theory.e0(p), theory.e_inf(p)
    energies: dict[int, np.ndarray] = {}
    rows = []
    for n in config["sizes"]:
        mine = [r for r in results if r.values["n"] == n]
        e = np.concatenate([r.arrays["energy_per_spin"] for r in mine])
        energies[n] = e
        rows.append(
            {
                "n": n,
                "runs": int(e.size),
                **summary(e),
                "converged_fraction": float(np.mean([r.values["converged_fraction"] for r in mine])),
                "minima_fraction": float(np.mean([r.values["minima_fraction"] for r in mine])),
                "median_steps": float(np.median([r.values["median_steps"] for r in mine])),
            }
        )
    save_npz(out / "floor.npz", **{f"n{n}": e for n, e in energies.items()})
    save(plot_floor(energies, p), out / "floor.png")
    results_json = {"p": p, "e0": e0, "e_inf": einf, "sizes": rows}
    body = "\n\n".join(
        [
            f"Asymptotic bounds: −E₀ = {-e0:.4f}, −E∞ = {-einf:.4f} (Sagun et al. §2.1.1 quote −1.657 and "
            "−1.633). The paper's histograms (Sagun Fig. 2, Choromanska Fig. 3) show a wide spread for "
            "small n and a narrow band just above −E₀ for large n.",
            table(
                ["n", "runs", "mean H/n", "std", "min", "max", "converged", "minima"],
                [
                    [
                        r["n"],
                        r["runs"],
                        r["mean"],
                        r["std"],
                        r["min"],
                        r["max"],
                        r["converged_fraction"],
                        r["minima_fraction"],
                    ]
                    for r in rows
                ],
            ),
            "![floor](floor.png)",
        ]
    )
    return results_json, body


def memory(config: dict[str, Any]) -> list[MemoryNeed]:
    n, p, runs = max(config["sizes"]), config["p"], config["runs"]
    spins = f"the couplings of the {p}-spin glass at n = {n}"
    return [
        MemoryNeed("sizes", _memory.pspin_couplings(n, min(p, 3)), spins),
        MemoryNeed("p", _memory.pspin_couplings(n, p), spins),
        MemoryNeed("runs", _memory.configurations(runs, n), f"{runs} configurations of n = {n} spins"),
        MemoryNeed(
            "index_chunk",
            _memory.batched_hessians(min(config["index_chunk"], runs), n),
            f"the Hessians of {min(config['index_chunk'], runs)} endpoints at once (n = {n})",
        ),
    ]


def plot_floor(energies: dict[int, np.ndarray], p: int):
    e0, einf = theory.e0(p), theory.e_inf(p)
    fig, axes = plt.subplots(len(energies), 1, figsize=(6, 1.6 * len(energies) + 0.6), sharex=True)
    axes = np.atleast_1d(axes)
    lo = min(min(v.min() for v in energies.values()), -e0) - 0.02
    hi = max(max(v.max() for v in energies.values()), -einf) + 0.02
    for ax, (n, values) in zip(axes, energies.items(), strict=True):
        ax.hist(values, bins=50, range=(lo, hi), color="tab:blue", alpha=0.8)
        ax.axvline(-e0, color="black", lw=1.5, label="−E₀")
        ax.axvline(-einf, color="tab:red", lw=1.5, label="−E∞")
        ax.set_ylabel(f"n = {n}")
    axes[0].legend(fontsize=8, loc="upper right")
    axes[0].set_title(f"Final H/n of gradient descent, {p}-spin glass")
    axes[-1].set_xlabel("H/n")
    fig.tight_layout()
    return fig


EXPERIMENT = Experiment(
    name="floor",
    description="final energies of gradient descent from random starts, per size n",
    reproduces="Sagun et al. Fig. 2; Choromanska et al. Fig. 3 (left), Fig. 8 (top)",
    params=PARAMS,
    units=units,
    run_unit=run_unit,
    finalize=finalize,
    memory=memory,
    order=110,
)
