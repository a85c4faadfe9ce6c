"""``layers``: the layered structure of critical values, measured.

Choromanska et al. §4 (Auffinger et al. Thm 2.15), Thesis Remark 2.6: critical points of index ≥ k are
(asymptotically) not found below −n E_k, and the lowest critical values form layers by index. Critical
points of many indices are sampled by stopping gradient descent after a varying number of steps (so at
various energies) and refining each point with Newton's method on the sphere, which converges to the
nearby critical point whatever its index; a point counts only when its Riemannian gradient norm is at
most ``tol`` (float64). Their energy is plotted against their index together with −E_k.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from deeplandscape.experiments import _memory
from deeplandscape.experiments._plot import plt, save
from deeplandscape.experiments.claims import (
    Claim,
    NotChecked,
    RunData,
    Verdict,
    bootstrap,
    decide,
    proportion,
    require_gradient_checked,
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
from deeplandscape.rundir import save_npz
from deeplandscape.spinglass import PSpinGlass, descend, group_minima, index, newton_critical_points, theory

BELOW_SHARE = 0.05  # "improbable": ours, at most 5% of the critical points below their −E_k

PARAMS = {
    "n": Param("int", 60, "number of spins", quick=30, paper=150, low=3),
    "disorders": Param("int", 2, "independent disorders J", quick=1, reference=3, low=1),
    "starts": Param("int", 48, "starting points per descent length and disorder", quick=12, low=1),
    "descent_steps": Param(
        "ints",
        [0, 2, 5, 10, 20, 40, 80, 160, 400],
        "gradient steps before Newton",
        quick=[0, 5, 20, 80],
        low=0,
    ),
    "lr": Param("float", 0.1, "gradient step", low=1e-8),
    "newton_iterations": Param("int", 60, "Newton iterations", quick=40, low=1),
    "tol": Param("float", 1e-7, "accept a critical point when ‖grad‖ ≤ tol (float64)", low=1e-14),
}


def units(config: dict[str, Any]) -> list[Unit]:
    return [
        Unit(f"steps{s}-d{d}", {"steps": s, "disorder": d})
        for d in range(config["disorders"])
        for s in config["descent_steps"]
    ]


def run_unit(config: dict[str, Any], unit: Unit, seed: int) -> UnitResult:
    n, d = config["n"], unit.params["disorder"]
    # one disorder for every descent length of it
    hamiltonian = PSpinGlass(n, 3, seed=unit_seed(config["seed"], 1_000_000 + d), dtype=torch.float64)
    sigma = hamiltonian.random_configurations(config["starts"], seed=seed)
    if unit.params["steps"] > 0:
        sigma = descend(hamiltonian, sigma, lr=config["lr"], tol=0.0, max_steps=unit.params["steps"]).sigma
    found = newton_critical_points(
        hamiltonian, sigma, tol=config["tol"], max_iterations=config["newton_iterations"]
    )
    points = found.sigma[found.converged]
    values = {"steps": unit.params["steps"], "disorder": d, "found": int(points.shape[0])}
    if points.shape[0] == 0:
        empty = np.zeros(0)
        return UnitResult(values, {"sigma": np.zeros((0, n)), "energy": empty, "index": empty, "grad": empty})
    ix = index(hamiltonian, points)
    return UnitResult(
        values,
        {
            "sigma": points.numpy(),
            "energy": (hamiltonian.energy(points) / n).numpy(),
            "index": ix.index.numpy(),
            "grad": ix.grad_norm.numpy(),
        },
    )


def finalize(config: dict[str, Any], results: list[UnitResult], out: Path) -> dict[str, Any]:
    energy, idx, grad = [], [], []
    for d in range(config["disorders"]):  # the same critical point reached from several starts counts once
        mine = [r for r in results if r.values["disorder"] == d]
        sigma = np.concatenate([r.arrays["sigma"] for r in mine])
        e = np.concatenate([r.arrays["energy"] for r in mine])
        if len(sigma):
            keep = group_minima(torch.from_numpy(sigma), eps=1e-6, energy=torch.from_numpy(e)).representatives
            keep = keep.numpy()
            energy.append(e[keep])
            idx.append(np.concatenate([r.arrays["index"] for r in mine])[keep])
            grad.append(np.concatenate([r.arrays["grad"] for r in mine])[keep])
    energy = np.concatenate(energy) if energy else np.zeros(0)
    idx = np.concatenate(idx).astype(int) if idx else np.zeros(0, dtype=int)
    grad = np.concatenate(grad) if grad else np.zeros(0)
    save_npz(out / "layers.npz", energy=energy, index=idx, grad_norm=grad)
    by_index = []
    for k in sorted(set(idx.tolist())):
        e = energy[idx == k]
        ek = theory.e_k(3, k)
        by_index.append(
            {
                "k": k,
                "count": int(e.size),
                "mean_energy": float(e.mean()),
                "min_energy": float(e.min()),
                "e_k": ek,
                "below_minus_e_k": int(np.sum(e < -ek)),
            }
        )
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    ax.scatter(idx, energy, s=8, alpha=0.5, label="critical points")
    ks = np.arange(0, max(idx.max(initial=0), 5) + 1)
    ax.step(ks, [-theory.e_k(3, int(k)) for k in ks], where="mid", color="black", label="−E_k")
    ax.axhline(-theory.e_inf(3), color="tab:red", lw=1, label="−E∞")
    ax.set(
        xlabel="index k",
        ylabel="H/n",
        title=f"Energy against index, 3-spin glass, n = {config['n']}, {len(energy)} critical points",
    )
    ax.legend(fontsize=8)
    save(fig, out / "layers.png")
    return {
        "n": config["n"],
        "tol": config["tol"],
        "points": len(energy),
        "max_grad_norm": float(grad.max()) if grad.size else None,
        "by_index": by_index,
    }


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


# ---------------------------------------------------------------------------------------------- claims


def _checked(run: RunData) -> list[dict[str, Any]]:
    r = run.results
    if not r["points"]:
        raise NotChecked("Newton's method found no critical point")
    require_gradient_checked("critical points", r["max_grad_norm"], r["tol"])
    return r["by_index"]


def _decide_below(run: RunData) -> Verdict:
    rows = _checked(run)
    below, total = sum(r["below_minus_e_k"] for r in rows), sum(r["count"] for r in rows)
    lowest = ", ".join(f"k = {r['k']}: {r['min_energy']:.4f} (−E_k = {-r['e_k']:.4f})" for r in rows[:6])
    return decide(
        proportion(below, total, "share of critical points of index k below −E_k"),
        below=BELOW_SHARE,
        evidence=f"lowest H/n per index {lowest}",
    )


def _slope(k: np.ndarray, e: np.ndarray, axis: int = -1) -> np.ndarray:
    dk = k - k.mean(axis, keepdims=True)
    return (dk * (e - e.mean(axis, keepdims=True))).sum(axis) / (dk * dk).sum(axis)


def _decide_order(run: RunData) -> Verdict:
    rows = _checked(run)
    if len(rows) < 2:
        raise NotChecked(f"critical points of {len(rows)} index only")
    data = run.arrays("layers.npz")
    stat = bootstrap(
        [data["index"].astype(float), data["energy"]],
        _slope,
        "slope of H/n against the index",
        what="critical point",
        paired=True,
        seed=run.config.get("seed", 0),
    )
    means = ", ".join(f"k = {r['k']}: {r['mean_energy']:.4f}" for r in rows[:8])
    return decide(stat, above=0.0, evidence=f"mean H/n {means}")


CLAIMS = (
    Claim(
        "layers.below",
        "“finding a critical value with index larger or equal to k (for any fixed integer k) below energy "
        "level −ΛE_k(H) is improbable”",
        "Choromanska et al. §4 (Auffinger et al. Thm 2.15)",
        f"the share of distinct critical points of index k with H/n < −E_k (Wilson interval) is below "
        f"{BELOW_SHARE} (ours: “improbable” read as at most 5%); guard: every point's gradient norm is at "
        "most tol",
        _decide_below,
        shown_in="layers.png",
    ),
    Claim(
        "layers.order",
        "“These results unravel a layered structure for the lowest critical values”: above the band of "
        "local minima lies one of minima and index-1 saddles, then one with index 2, “and so on”",
        "Choromanska et al. §4, Fig. 1",
        "the least-squares slope of H/n against the index over the distinct critical points is positive "
        "(BCa bootstrap over critical points); guard: every point's gradient norm is at most tol",
        _decide_order,
        shown_in="layers.png",
    ),
)

DIAGNOSTICS = (
    Diagnostic(
        "layers-larger-n",
        "layers",
        ("n=100",),
        ("layers.below", "layers.order"),
        "does the verdict change at a larger n, where the asymptotic thresholds −E_k are closer to hold?",
    ),
)


def tables(results: dict[str, Any], config: dict[str, Any]) -> list[Table]:
    rows = tuple(
        (
            r["k"],
            r["count"],
            f"{r['mean_energy']:.4f}",
            f"{r['min_energy']:.4f}",
            f"{-r['e_k']:.4f}",
            r["below_minus_e_k"],
            "–",
        )
        for r in results["by_index"]
    )
    return [
        Table(
            "layers-table",
            f"distinct critical points by index, n = {results['n']}",
            ("index k", "points", "mean H/n", "lowest H/n", "−E_k", "below −E_k", "Choromanska et al."),
            rows,
            f"Ours at the {config['scale']} scale: {config['disorders']} disorders, Newton's method from "
            f"{config['starts']} points after each of {len(config['descent_steps'])} descent lengths; a "
            "point "
            f"counts when ‖grad‖ ≤ {results['tol']:g}. −E_k: Auffinger et al.'s thresholds (n → ∞). The "
            "paper gives the theorem and Fig. 1 (expected counts), no measured points.",
        )
    ]


FIGURES = (
    Figure(
        "layers.png",
        "energy against index of the distinct critical points found, with −E_k and −E∞",
        "Choromanska et al. §4, Fig. 1: with overwhelming probability no critical point of index k lies "
        "below −ΛE_k; the critical values form layers by index.",
    ),
)


EXPERIMENT = Experiment(
    name="layers",
    description="energy against index of sampled critical points, with −E_k",
    reproduces="Choromanska et al. §4 (layered structure); Thesis Remark 2.6",
    params=PARAMS,
    units=units,
    run_unit=run_unit,
    finalize=finalize,
    memory=memory,
    tables=tables,
    figures=FIGURES,
    claims=CLAIMS,
    diagnostics=DIAGNOSTICS,
    order=150,
)
