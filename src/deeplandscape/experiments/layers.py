"""``layers``: the layered structure of critical values, measured.

Choromanska et al. §4 (Auffinger et al. Thm 2.15), Thesis Remark 2.6: critical points of index ≥ k are
(asymptotically) not found below −n E_k. Critical points of many indices are sampled by stopping
gradient descent after a varying number of steps (so at various energies) and refining each point with
Newton's method on the sphere, which converges to the nearby critical point whatever its index. Their
energy is plotted against their index together with −E_k, and the fraction of index-k points below
−E_k is reported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from deeplandscape.experiments import _memory
from deeplandscape.experiments._common import table
from deeplandscape.experiments._plot import plt, save
from deeplandscape.experiments.spec import Experiment, MemoryNeed, Param, Unit, UnitResult
from deeplandscape.rundir import save_npz
from deeplandscape.spinglass import PSpinGlass, descend, group_minima, index, newton_critical_points, theory

PARAMS = {
    "n": Param("int", 60, "number of spins", quick=30, paper=150, low=3),
    "starts": Param("int", 64, "starting points per descent length", quick=16, low=1),
    "descent_steps": Param(
        "ints",
        [0, 2, 5, 10, 20, 40, 80, 160, 400],
        "gradient steps before Newton",
        quick=[0, 5, 20, 80],
        low=0,
    ),
    "lr": Param("float", 0.1, "gradient step", low=1e-8),
    "newton_iterations": Param("int", 60, "Newton iterations", quick=40, low=1),
    "tol": Param("float", 1e-7, "accept a critical point when ‖grad‖ ≤ tol", low=1e-14),
}


def units(config: dict[str, Any]) -> list[Unit]:
    return [Unit(f"steps{s}", {"steps": s}) for s in config["descent_steps"]]


def run_unit(config: dict[str, Any], unit: Unit, seed: int) -> UnitResult:
    n = config["n"]
    hamiltonian = PSpinGlass(n, 3, seed=config["seed"], dtype=torch.float64)  # one disorder for all units
    sigma = hamiltonian.random_configurations(config["starts"], seed=seed)
    if unit.params["steps"] > 0:
        sigma = descend(hamiltonian, sigma, lr=config["lr"], tol=0.0, max_steps=unit.params["steps"]).sigma
    found = newton_critical_points(
        hamiltonian, sigma, tol=config["tol"], max_iterations=config["newton_iterations"]
    )
    points = found.sigma[found.converged]
    if points.shape[0] == 0:
        return UnitResult(
            values={"steps": unit.params["steps"], "found": 0},
            arrays={"sigma": np.zeros((0, n)), "energy": np.zeros(0), "index": np.zeros(0)},
        )
    ix = index(hamiltonian, points)
    return UnitResult(
        values={"steps": unit.params["steps"], "found": int(points.shape[0])},
        arrays={
            "sigma": points.numpy(),
            "energy": (hamiltonian.energy(points) / n).numpy(),
            "index": ix.index.numpy(),
        },
    )


def finalize(config: dict[str, Any], results: list[UnitResult], out: Path) -> tuple[dict, str]:
    sigma = np.concatenate([r.arrays["sigma"] for r in results])
    energy = np.concatenate([r.arrays["energy"] for r in results])
    idx = np.concatenate([r.arrays["index"] for r in results]).astype(int)
    if len(sigma):  # the same critical point reached from several starts counts once
        groups = group_minima(torch.from_numpy(sigma), eps=1e-6, energy=torch.from_numpy(energy))
        keep = groups.representatives.numpy()
        sigma, energy, idx = sigma[keep], energy[keep], idx[keep]
    save_npz(out / "layers.npz", energy=energy, index=idx)
    by_index = []
    for k in sorted(set(idx.tolist())):
        e = energy[idx == k]
        ek = theory.e_k(3, k)
        by_index.append(
            {
                "k": k,
                "count": int(e.size),
                "mean_energy": float(e.mean()),
                "e_k": ek,
                "fraction_below_minus_e_k": float(np.mean(e < -ek)),
            }
        )
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(idx, energy, s=8, alpha=0.6, label="critical points")
    ks = np.arange(0, max(idx.max(initial=0), 5) + 1)
    ax.step(ks, [-theory.e_k(3, int(k)) for k in ks], where="mid", color="black", label="−E_k")
    ax.axhline(-theory.e_inf(3), color="tab:red", lw=1, label="−E∞")
    ax.set(xlabel="index k", ylabel="H/n", title=f"Energy against index, 3-spin glass, n = {config['n']}")
    ax.legend(fontsize=8)
    save(fig, out / "layers.png")
    body = "\n\n".join(
        [
            f"{len(energy)} distinct critical points. Asymptotically none of index k lies below −E_k.",
            table(
                ["k", "count", "mean H/n", "−E_k", "fraction below −E_k"],
                [
                    [r["k"], r["count"], r["mean_energy"], -r["e_k"], r["fraction_below_minus_e_k"]]
                    for r in by_index
                ],
            ),
            "![layers](layers.png)",
        ]
    )
    return {"n": config["n"], "points": len(energy), "by_index": by_index}, body


def memory(config: dict[str, Any]) -> list[MemoryNeed]:
    n, starts = config["n"], config["starts"]
    return [
        MemoryNeed("n", _memory.pspin_couplings(n, 3, _memory.FLOAT64), f"the 3-spin couplings at n = {n}"),
        MemoryNeed(
            "starts",
            _memory.batched_hessians(starts, n) + _memory.configurations(starts, n, _memory.FLOAT64),
            f"the Newton steps of {starts} points (n = {n})",
        ),
    ]


EXPERIMENT = Experiment(
    name="layers",
    description="energy against index of sampled critical points, with −E_k",
    reproduces="Choromanska et al. §4 (layered structure); Thesis Remark 2.6",
    params=PARAMS,
    units=units,
    run_unit=run_unit,
    finalize=finalize,
    memory=memory,
    order=150,
)
