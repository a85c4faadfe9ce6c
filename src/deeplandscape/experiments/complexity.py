"""``complexity``: the complexity Θ_k(u), Θ(u) and the layered structure of critical values.

Choromanska et al. Fig. 2 (= AnnealSGD paper Fig. 1, Sagun et al. Fig. 1): Θ_{k,p}(u) for k = 0…5 and
Θ_p(u) with the lines −E_0 and −E_∞. Choromanska Fig. 1: the mean number of critical points of each index
with H ≤ Λu for Λ = 1000, here to leading exponential order, E crt_k(Λu) ≈ exp(Λ Θ_k(u)) (the
sub-exponential prefactors of Choromanska Thm 11.1 do not move the curves on a log scale).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from deeplandscape.experiments._common import table
from deeplandscape.experiments._plot import plt, save
from deeplandscape.experiments.runner import Experiment, Param, Unit, UnitResult
from deeplandscape.rundir import save_npz
from deeplandscape.spinglass import theory

PARAMS = {
    "p": Param("int", 3, "interaction order", low=3),
    "max_k": Param("int", 5, "largest index k plotted", low=0, high=50),
    "lam": Param("int", 1000, "Λ (number of spins) of the counts figure", low=2),
    "points": Param("int", 2001, "grid points in u", quick=401, low=10),
}


def units(config: dict[str, Any]) -> list[Unit]:
    return [Unit("theory", {})]


def run_unit(config: dict[str, Any], unit: Unit, seed: int) -> UnitResult:
    p, max_k = config["p"], config["max_k"]
    einf = theory.e_inf(p)
    ek = [theory.e_k(p, k) for k in range(max_k + 1)]
    u = np.linspace(-ek[0] - 0.03, 0.5, config["points"])
    arrays = {"u": u, "theta": theory.complexity(u, p)}
    for k in range(max_k + 1):
        arrays[f"theta_{k}"] = theory.complexity(u, p, k)
    return UnitResult(values={"p": p, "e0": ek[0], "e_inf": einf, "e_k": ek}, arrays=arrays)


def finalize(config: dict[str, Any], results: list[UnitResult], out: Path) -> tuple[dict, str]:
    (result,) = results
    values, a = result.values, result.arrays
    p, lam, max_k = config["p"], config["lam"], config["max_k"]
    e0, einf = values["e0"], values["e_inf"]
    save_npz(out / "complexity.npz", **a)

    fig, ax = plt.subplots(figsize=(6, 4))
    zoom = a["u"] <= -einf + 0.02
    for k in range(max_k + 1):
        ax.plot(a["u"][zoom], a[f"theta_{k}"][zoom], lw=1.2, label=f"Θ_{k}")
    ax.plot(a["u"][zoom], a["theta"][zoom], "k--", lw=1.2, label="Θ (all indices)")
    ax.axvline(-e0, color="black", lw=1, label="−E₀")
    ax.axvline(-einf, color="tab:red", lw=1, label="−E∞")
    ax.axhline(0, color="gray", lw=0.5)
    ax.set(xlabel="u", ylabel="complexity", title=f"Θ_k(u), p = {p}")
    ax.legend(fontsize=7, ncol=2)
    save(fig, out / "complexity.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    window = a["u"] <= -einf + 0.05
    energy = lam * a["u"][window]
    for k in range(max_k + 1):
        ax.semilogy(energy, np.exp(lam * a[f"theta_{k}"][window]), lw=1.2, label=f"index {k}")
    ax.semilogy(energy, np.exp(lam * a["theta"][window]), "k--", lw=1.2, label="all")
    ax.axvline(-lam * e0, color="black", lw=1)
    ax.axvline(-lam * einf, color="tab:red", lw=1)
    ax.set(xlabel="Λu", ylabel="mean number of critical points ≤ Λu", title=f"Λ = {lam}, p = {p}")
    ax.legend(fontsize=7)
    save(fig, out / "counts.png")

    body = "\n\n".join(
        [
            "E_k is the zero of Θ_k below −E∞; Sagun et al. §2.1.1 give −1.657 (−E₀) and −1.633 (−E∞) "
            "for p = 3.",
            table(["k", "E_k"], [[k, e] for k, e in enumerate(values["e_k"])] + [["∞", einf]]),
            "![complexity](complexity.png)",
            "![counts](counts.png)",
        ]
    )
    return {"p": p, "e0": e0, "e_inf": einf, "e_k": values["e_k"]}, body


EXPERIMENT = Experiment(
    name="complexity",
    description="complexity Θ_k(u), Θ(u), E_k and the counts of critical points",
    reproduces="Choromanska et al. Fig. 1–2; AnnealSGD paper Fig. 1; Sagun et al. Fig. 1",
    params=PARAMS,
    units=units,
    run_unit=run_unit,
    finalize=finalize,
)
