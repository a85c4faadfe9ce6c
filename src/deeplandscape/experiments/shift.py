"""``shift``: how far a small external field moves the minima of the p-spin glass.

AnnealSGD paper §4.5, Thm 5 and Appendix B, Thm A-5: for a local minimum σ of H and the perturbed
Hamiltonian H̃ = H − h·σ with a field of constant strength ν, a minimum σ̃ of H̃ lies within O(n^{−1/3})
of σ (Thm A-5: a ball of radius n^{−α}, α ∈ (1/4, 1/3), in the normalization of the unit sphere) and the
normalized energy changes by at most 2ν. Here: descend to minima σ of H, switch the field on (same
disorder), descend from σ to σ̃, and fit the exponent of the median of ‖σ − σ̃‖/√n against n. Descent
from a marginal minimum sometimes slides to a different minimum (a "jump", ‖σ − σ̃‖/√n > 0.5): such
endpoints say nothing about the nearby perturbed minimum, so they are counted apart and the median, not the
mean, carries the fit.

``scaling="appendix"`` uses the appendix's field h/√n with h ~ N(0, ν²I) (eq. (A-6), under which the
theorem is stated for constant ν); ``scaling="eq7"`` uses eq. (7)'s h ~ N(0, ν²I) directly.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from deeplandscape.experiments import _memory
from deeplandscape.experiments._common import descent_params, table
from deeplandscape.experiments._plot import plt, save
from deeplandscape.experiments.spec import Experiment, MemoryNeed, Param, Unit, UnitResult
from deeplandscape.spinglass import PSpinGlass, descend

JUMP = 0.5  # ‖σ − σ̃‖/√n beyond which descent left the basin (the sphere's diameter is 2)

PARAMS = {
    "sizes": Param("ints", [25, 50, 100, 200], "numbers of spins n", quick=[20, 40, 60], low=3),
    "minima": Param("int", 32, "minima per size", quick=8, paper=200, low=1),
    "nu": Param("float", 0.5, "field strength ν", low=0.0),
    "scaling": Param("str", "appendix", "field normalization", choices=("appendix", "eq7")),
    **descent_params(),
}


def units(config: dict[str, Any]) -> list[Unit]:
    return [Unit(f"n{n}", {"n": n}) for n in config["sizes"]]


def run_unit(config: dict[str, Any], unit: Unit, seed: int) -> UnitResult:
    n = unit.params["n"]
    nu = config["nu"] / math.sqrt(n) if config["scaling"] == "appendix" else config["nu"]
    plain = PSpinGlass(n, 3, seed=seed)
    perturbed = PSpinGlass(n, 3, field_std=nu, seed=seed)  # same disorder J
    kwargs = {"lr": config["lr"], "tol": config["tol"], "max_steps": config["max_steps"]}
    minima = descend(plain, plain.random_configurations(config["minima"], seed=seed + 1), **kwargs)
    moved = descend(perturbed, minima.sigma, **kwargs)
    distance = (moved.sigma - minima.sigma).double().norm(dim=1) / math.sqrt(n)
    change = (moved.energy_per_spin - minima.energy_per_spin).double().abs()
    return UnitResult(
        values={
            "n": n,
            "field_std": nu,
            "mean_distance": float(distance.mean()),
            "median_distance": float(distance.median()),
            "jump_fraction": float((distance > JUMP).double().mean()),
            "mean_energy_change": float(change.mean()),
            "max_energy_change": float(change.max()),
            "converged_fraction": min(minima.converged_fraction, moved.converged_fraction),
        },
        arrays={"distance": distance.numpy(), "energy_change": change.numpy()},
    )


def finalize(config: dict[str, Any], results: list[UnitResult], out: Path) -> tuple[dict, str]:
    rows = [r.values for r in results]
    ns = np.array([r["n"] for r in rows], dtype=float)
    dist = np.array([r["median_distance"] for r in rows])
    exponent = (
        float(np.polyfit(np.log(ns), np.log(dist), 1)[0]) if len(ns) > 1 and (dist > 0).all() else math.nan
    )
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.loglog(ns, dist, "o-", label=f"measured, slope {exponent:.2f}")
    ax.loglog(ns, dist[0] * (ns / ns[0]) ** (-1 / 3), "k--", lw=1, label="n^(−1/3)")
    ax.set(
        xlabel="n",
        ylabel="mean ‖σ − σ̃‖/√n",
        title=f"Shift of minima, ν = {config['nu']} ({config['scaling']})",
    )
    ax.legend()
    save(fig, out / "shift.png")
    body = "\n\n".join(
        [
            f"Fitted exponent of the median distance against n: {exponent:.3f} (Thm 5: −1/3 or faster, "
            "asymptotically). "
            f"Energy change bound 2ν = {2 * config['nu']:g}.",
            table(
                ["n", "field std", "median distance", "mean distance", "jumps", "mean |ΔH/n|", "max |ΔH/n|"],
                [
                    [
                        r["n"],
                        r["field_std"],
                        r["median_distance"],
                        r["mean_distance"],
                        r["jump_fraction"],
                        r["mean_energy_change"],
                        r["max_energy_change"],
                    ]
                    for r in rows
                ],
            ),
            "![shift](shift.png)",
        ]
    )
    return {
        "nu": config["nu"],
        "scaling": config["scaling"],
        "sizes": rows,
        "distance_exponent": exponent,
    }, body


def memory(config: dict[str, Any]) -> list[MemoryNeed]:
    n, minima = max(config["sizes"]), config["minima"]
    return [
        MemoryNeed(  # two Hamiltonians: without and with the field
            "sizes", 2 * _memory.pspin_couplings(n, 3), f"the couplings of two 3-spin glasses at n = {n}"
        ),
        MemoryNeed("minima", _memory.configurations(minima, n), f"{minima} configurations of n = {n} spins"),
    ]


EXPERIMENT = Experiment(
    name="shift",
    description="distance between minima with and without a small field, against n",
    reproduces="AnnealSGD paper Thm 5 / Thm A-5, §4.5",
    params=PARAMS,
    units=units,
    run_unit=run_unit,
    finalize=finalize,
    memory=memory,
    order=160,
)
