"""``complexity``: the complexity Θ_k(u), Θ(u) and the layered structure of critical values.

Choromanska et al. Fig. 2 (= AnnealSGD paper Fig. 1, Sagun et al. Fig. 1): Θ_{k,p}(u) for k = 0…5 and
Θ_p(u) with the lines −E_0 and −E_∞. Choromanska Fig. 1: the mean number of critical points of each index
with H ≤ Λu for Λ = 1000, here to leading exponential order, E crt_k(Λu) ≈ exp(Λ Θ_k(u)) (the
sub-exponential prefactors of Choromanska Thm 11.1 do not move the curves on a log scale).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np

from deeplandscape.experiments._plot import plt, save
from deeplandscape.experiments.claims import (
    Claim,
    NotChecked,
    RunData,
    Statistic,
    Verdict,
    all_of,
    decide,
)
from deeplandscape.experiments.spec import Experiment, Figure, Param, Table, Unit, UnitResult
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


def finalize(config: dict[str, Any], results: list[UnitResult], out: Path) -> dict[str, Any]:
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

    band = (a["u"] > -e0) & (a["u"] < -einf)
    excess = [float(np.max(a[f"theta_{k}"][band] - a["theta_0"][band])) for k in range(1, max_k + 1)]
    return {
        "p": p,
        "e0": e0,
        "e_inf": einf,
        "e_k": values["e_k"],
        "minima_excess": excess if band.any() else None,
    }


# Sagun et al. §2.1.1: "the energy at the ground state and floor is calculated to be −N1.657 and −N1.633".
PAPER_E0, PAPER_EINF = 1.657, 1.633
PAPER_DIGITS = 0.0005  # the paper rounds to three decimals


def tables(results: dict[str, Any], config: dict[str, Any]) -> list[Table]:
    e_k = results["e_k"]
    rows = [(f"E_{k}", f"{e:.4f}", PAPER_E0 if k == 0 else "–") for k, e in enumerate(e_k)]
    rows.append(("E_∞", f"{results['e_inf']:.4f}", PAPER_EINF))
    return [
        Table(
            "critical-values",
            f"the critical values E_k, p = {results['p']}",
            ("", "ours", "Sagun et al. §2.1.1"),
            tuple(rows),
            "E_k is the zero of Θ_k below −E∞ (Choromanska et al. §4); E∞ = 2√((p−1)/p).",
        )
    ]


def _exact(name: str, value: float) -> Statistic:
    """A value computed to machine precision: its interval is the point itself."""
    return Statistic(name, value, value, value, method="computed to machine precision")


def _decide_values(run: RunData) -> Verdict:
    r = run.results
    if r["p"] != 3:
        raise NotChecked(f"the paper's values are for p = 3, this run has p = {r['p']}")
    parts = [
        (
            f"E{label}",
            decide(_exact(f"E{label}", r[key]), above=paper - PAPER_DIGITS, below=paper + PAPER_DIGITS),
        )
        for label, key, paper in (("₀", "e0", PAPER_E0), ("∞", "e_inf", PAPER_EINF))
    ]
    return all_of(parts)


def _decide_layers(run: RunData) -> Verdict:
    e = [*run.results["e_k"], run.results["e_inf"]]
    gaps = [a - b for a, b in itertools.pairwise(e)]
    smallest = min(range(len(gaps)), key=gaps.__getitem__)
    label = f"E_{smallest} − E_{smallest + 1}" if smallest < len(gaps) - 1 else f"E_{smallest} − E_∞"
    return decide(
        _exact(f"smallest gap {label}", gaps[smallest]),
        above=0.0,
        evidence=", ".join(f"−E_{k} = {-v:.4f}" for k, v in enumerate(e[:-1])) + f", −E∞ = {-e[-1]:.4f}",
    )


def _decide_minima_dominate(run: RunData) -> Verdict:
    excess = run.results["minima_excess"]
    if not excess:
        raise NotChecked("no grid point of u lies in the band (−E₀, −E∞), or max_k = 0")
    worst = max(range(len(excess)), key=excess.__getitem__)
    return decide(
        _exact(f"largest Θ_{worst + 1}(u) − Θ_0(u) over the band", excess[worst]),
        below=0.0,
        evidence=f"k = 1 … {len(excess)} on the grid points of u in (−E₀, −E∞)",
    )


CLAIMS = (
    Claim(
        "complexity.values",
        "“For our experiments the energy at the ground state and floor is calculated to be −N1.657 and "
        "−N1.633, respectively”",
        "Sagun et al. §2.1.1",
        "E₀ and E∞ computed for p = 3 equal 1.657 and 1.633 to the paper's three decimals (±0.0005)",
        _decide_values,
        shown_in="critical-values",
    ),
    Claim(
        "complexity.layers",
        "“the sequence {E_k(H)}_{k∈ℕ} is strictly decreasing and converges to E∞ as k → ∞”: the layered "
        "structure −E₀ < −E₁ < … < −E∞ of the lowest critical values (Fig. 2)",
        "Choromanska et al. §4, Fig. 2",
        "every gap E_k − E_{k+1} and E_k − E∞ computed for k ≤ max_k is positive",
        _decide_layers,
        shown_in="complexity.png",
    ),
    Claim(
        "complexity.minima-dominate",
        "“Corollary 4.1. For all k > 0 and u < −E∞, Θ_{k,H}(u) < Θ_{0,H}(u)” — “local minima dominate over "
        "saddle points and this domination also grows exponentially as Λ grows”",
        "Choromanska et al. §4, Corollary 4.1, Fig. 2",
        "Θ_k(u) − Θ_0(u), computed for k = 1 … max_k on every grid point of u in the band (−E₀, −E∞), is "
        "negative",
        _decide_minima_dominate,
        shown_in="complexity.png",
    ),
)

FIGURES = (
    Figure(
        "complexity.png",
        "Θ_k(u) for k = 0…max_k and Θ(u), with −E₀ and −E∞",
        "Choromanska et al. Fig. 2 (= AnnealSGD paper Fig. 1, Sagun et al. Fig. 1): the complexity Θ_k(u) "
        f"for k = 0…5 and Θ(u) of the 3-spin glass, with −E₀ = −{PAPER_E0} and −E∞ = −{PAPER_EINF}.",
    ),
    Figure(
        "counts.png",
        "mean number of critical points of each index below Λu",
        "Choromanska et al. Fig. 1: the mean number of critical points of each index below Λu, Λ = 1000; "
        "the low-index ones lie in the band (−ΛE₀, −ΛE∞).",
    ),
)


EXPERIMENT = Experiment(
    name="complexity",
    description="complexity Θ_k(u), Θ(u), E_k and the counts of critical points",
    reproduces="Choromanska et al. Fig. 1–2; AnnealSGD paper Fig. 1; Sagun et al. Fig. 1",
    params=PARAMS,
    units=units,
    run_unit=run_unit,
    finalize=finalize,
    tables=tables,
    figures=FIGURES,
    claims=CLAIMS,
    order=100,
)
