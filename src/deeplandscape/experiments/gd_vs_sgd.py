"""``gd-vs-sgd``: gradient descent against stochastic gradient descent on the 3-spin glass.

Sagun et al. §3.2.1, eq. (4), Fig. 7: the Hamiltonian as a sum of P independent sub-Hamiltonians (disorder
variance 1/P each); SGD steps along one summand at a time (P = 1 is gradient descent). Energies are
compared at equal step × steps / P. Then, as the paper suggests ("Once SGD slows down, one could restart
GD from that point and reach the bottom of that well"), gradient descent on the whole Hamiltonian restarts
from every endpoint and runs to ‖grad‖ ≤ tol.

Every P of one disorder shares the total disorder J and the starting points (:class:`SharedSplit`), so
the comparison between P is paired: a difference between P is the method's, not the landscape's.
"""

from __future__ import annotations

from dataclasses import replace
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
    all_of,
    decide,
    mean,
    paired_difference,
)
from deeplandscape.experiments.complexity import PAPER_E0, PAPER_EINF
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
from deeplandscape.spinglass import SplitPSpinGlass, descend, overlap
from deeplandscape.spinglass.contraction import PackedSymmetric, pack, symmetrize

PAPER_PARTS = (1, 20, 30)  # Sagun et al. Fig. 7: P = 1 (GD), 20, 30
PAPER_HORIZON = 50.0  # Sagun et al. Fig. 7: the x axis "step size / P" runs to 50
BAND = PAPER_E0 - PAPER_EINF  # Sagun et al. §2.1.1: the ground state −1.657, the floor −1.633

PARAMS = {
    "n": Param("int", 100, "number of spins", quick=40, low=3),
    "runs": Param(
        "int",
        16,
        "random starts per disorder (the same for every P)",
        quick=8,
        reference=24,
        paper=500,
        low=1,
    ),
    "disorders": Param("int", 5, "independent total disorders J", quick=3, low=1),
    "parts": Param(
        "ints", list(PAPER_PARTS), "numbers of summands P (1 = gradient descent)", quick=[1, 5, 10], low=1
    ),
    "lr": Param("float", 0.1, "step size", low=1e-8),
    "horizon": Param("float", PAPER_HORIZON, "step × steps / P at which runs stop", quick=20.0, low=0.01),
    "points": Param("int", 100, "recorded points per curve", quick=40, low=2),
    "tol": Param("float", 1e-4, "the GD restart stops at ‖grad‖ ≤ tol", low=0.0),
    "max_steps": Param("int", 20_000, "at most this many steps of the GD restart", low=1),
    "eps": Param("float", 0.01, "the restart stays in the well when 1 − overlap < eps", low=1e-9, high=1.0),
}


class SharedSplit(SplitPSpinGlass):
    """Sagun et al. eq. (4) with the total disorder J held fixed across P.

    J is drawn exactly as :class:`~deeplandscape.spinglass.PSpinGlass` draws it from the same seed; the P
    summands are x^q = J/P + (y^q − ȳ) with y^q i.i.d. N(0, 1/P). Jointly Gaussian, each x^q is
    N(0, 1/P) and Cov(x^q, x^r) = 1/P² − 1/P² = 0 for q ≠ r: independent summands of variance 1/P, as
    eq. (4) asks, whose sum is J. So the Hamiltonian is the same for every P; only the steps differ.
    """

    def _draw_couplings(self, generator: torch.Generator) -> PackedSymmetric:
        shape = (self.n,) * self.p
        total = torch.randn(shape, generator=generator, dtype=self.dtype, device=self.device)
        draws = [
            self.parts**-0.5 * torch.randn(shape, generator=generator, dtype=self.dtype, device=self.device)
            for _ in range(self.parts if self.parts > 1 else 0)
        ]
        centre = sum(draws) / self.parts if draws else 0.0
        self.components = [pack(symmetrize(total / self.parts + y - centre)) for y in draws] or [
            pack(symmetrize(total))
        ]
        return pack(symmetrize(total))


def units(config: dict[str, Any]) -> list[Unit]:
    return [
        Unit(f"P{p}-d{d}", {"parts": p, "disorder": d})
        for d in range(config["disorders"])
        for p in config["parts"]
    ]


def run_unit(config: dict[str, Any], unit: Unit, seed: int) -> UnitResult:
    parts, lr, d = unit.params["parts"], config["lr"], unit.params["disorder"]
    hamiltonian = SharedSplit(config["n"], 3, parts=parts, seed=unit_seed(config["seed"], 1_000_000 + d))
    starts = hamiltonian.random_configurations(config["runs"], seed=unit_seed(config["seed"], 2_000_000 + d))
    steps = max(1, round(config["horizon"] * parts / lr))
    record = max(parts, steps // config["points"])
    result = descend(hamiltonian, starts, lr=lr, tol=0.0, max_steps=steps, method="sgd", record_every=record)
    restart = descend(hamiltonian, result.sigma, lr=lr, tol=config["tol"], max_steps=config["max_steps"])
    q = torch.diagonal(overlap(result.sigma.double(), restart.sigma.double()))
    return UnitResult(
        values={
            "P": parts,
            "disorder": d,
            "steps": steps,
            "final_energy": float(result.energy_per_spin.double().mean()),
            "restart_energy": float(restart.energy_per_spin.double().mean()),
            "restart_distance": float((1 - q).mean()),
            "restart_converged": restart.converged_fraction,
        },
        arrays={
            "x": result.trajectory_steps.double().numpy() * lr / parts,
            "energy": result.trajectory.double().numpy(),
        },
    )


def finalize(config: dict[str, Any], results: list[UnitResult], out: Path) -> dict[str, Any]:
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    arrays, rows = {}, []
    for p in config["parts"]:
        mine = [r for r in results if r.values["P"] == p]
        x = mine[0].arrays["x"]
        e = np.concatenate([r.arrays["energy"] for r in mine], axis=1)
        m, s = e.mean(1), e.std(1)
        ax.plot(x, m, label=f"P = {p}" + (" (GD)" if p == 1 else ""))
        ax.fill_between(x, m - s, m + s, alpha=0.2)
        arrays[f"x_P{p}"], arrays[f"energy_P{p}"] = x, e
        rows.append(
            {"P": p, "steps": mine[0].values["steps"]}
            | {
                k: [r.values[k] for r in mine]
                for k in ("final_energy", "restart_energy", "restart_distance", "restart_converged")
            }
        )
    ax.set(
        xlabel="step size × steps / P",
        ylabel="H/n (mean ± std over runs and disorders)",
        title=f"GD and SGD, 3-spin glass, n = {config['n']}",
    )
    ax.legend()
    save(fig, out / "gd_vs_sgd.png")
    save_npz(out / "gd_vs_sgd.npz", **arrays)
    return {"n": config["n"], "horizon": config["horizon"], "eps": config["eps"], "parts": rows}


def memory(config: dict[str, Any]) -> list[MemoryNeed]:
    n, runs, parts = config["n"], config["runs"], max(config["parts"])
    return [
        MemoryNeed("n", _memory.pspin_couplings(n, 3), f"the couplings of the 3-spin glass at n = {n}"),
        MemoryNeed(
            "parts",
            _memory.pspin_couplings(n, 3, parts=parts) + parts * n**3 * _memory.FLOAT32,
            f"the couplings of {parts} summands of the 3-spin glass at n = {n}, drawn at once",
        ),
        MemoryNeed("runs", _memory.configurations(runs, n), f"{runs} configurations of n = {n} spins"),
    ]


# ---------------------------------------------------------------------------------------------- claims


def _gd_and_sgd(run: RunData) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    rows = {r["P"]: r for r in run.results["parts"]}
    if 1 not in rows or len(rows) < 2:
        raise NotChecked("the run needs P = 1 (gradient descent) and at least one P > 1")
    return rows[1], [r for p, r in sorted(rows.items()) if p > 1]


def _decide_same(run: RunData) -> Verdict:
    gd, sgd = _gd_and_sgd(run)
    parts = [
        (
            f"P = {r['P']}",
            decide(
                paired_difference(
                    r["final_energy"], gd["final_energy"], f"H/n of P = {r['P']} − H/n of GD", what="disorder"
                ),
                above=-BAND,
                below=BAND,
            ),
        )
        for r in sgd
    ]
    return all_of(parts)


def _decide_walls(run: RunData) -> Verdict:
    gd, sgd = _gd_and_sgd(run)
    eps = run.results["eps"]
    own = np.mean(gd["restart_distance"])
    baseline = f"gradient descent's own restart from the same horizon: 1 − overlap {own:.2g}"
    parts = []
    for r in sgd:
        drop = np.mean(r["final_energy"]) - np.mean(r["restart_energy"])
        stat = mean(
            r["restart_distance"], f"1 − overlap(SGD end, GD restart end), P = {r['P']}", what="disorder"
        )
        parts.append(
            (f"P = {r['P']}", decide(stat, below=eps, evidence=f"the restart lowers H/n by {drop:.2g}"))
        )
    verdict = all_of(parts)
    return replace(verdict, evidence=f"{verdict.evidence}; {baseline}")


CLAIMS = (
    Claim(
        "gd-vs-sgd.same-energy",
        "“Both methods reach the floor. Different P’s give eventually the same energy when measured at the "
        "same step-size-times-number-of-steps”",
        "Sagun et al. §3.2.1, Fig. 7",
        f"for every P > 1, the mean final H/n minus gradient descent's (paired over disorders: the same J "
        f"and starts, t interval) lies within ±{BAND:.3g}, the width of the band between the paper's ground "
        f"state −{PAPER_E0} and floor −{PAPER_EINF} (Sagun et al. §2.1.1)",
        _decide_same,
        shown_in="gd_vs_sgd.png",
    ),
    Claim(
        "gd-vs-sgd.walls",
        "“SGD still goes to the floor. The tiny difference in the values of SGD comes from the fact that the "
        "SGD slows down very fast and stops at the walls of a well. Once SGD slows down, one could restart "
        "GD from that point and reach the bottom of that well.”",
        "Sagun et al. §3.2.1",
        "for every P > 1, gradient descent restarted from the SGD endpoints ends in the same well: the "
        "mean of 1 − overlap between an SGD endpoint and its restart's endpoint (t interval over disorders) "
        "is below eps (0.01 by default, the overlap at which `regimes` counts two endpoints as one minimum)",
        _decide_walls,
        shown_in="gd-vs-sgd-table",
    ),
)

DIAGNOSTICS = (
    Diagnostic(
        "gd-vs-sgd-longer",
        "gd-vs-sgd",
        (f"horizon={2 * PAPER_HORIZON:g}",),
        ("gd-vs-sgd.same-energy", "gd-vs-sgd.walls"),
        "do the energies of the P meet, and does SGD stop at the wall of the well that a GD restart reaches, "
        "when the runs go twice as far in step × steps / P?",
    ),
)


def _interval(values: list[float]) -> str:
    s = mean(values, "x", what="disorder") if len(values) > 1 else None
    return f"{np.mean(values):.4f}" if s is None else f"{s.estimate:.4f} [{s.ci_low:.4f}, {s.ci_high:.4f}]"


def tables(results: dict[str, Any], config: dict[str, Any]) -> list[Table]:
    rows = tuple(
        (
            r["P"],
            r["steps"],
            _interval(r["final_energy"]),
            _interval(r["restart_energy"]),
            f"{np.mean(r['restart_distance']):.2g}",
            f"{np.mean(r['restart_converged']):.3g}",
            "GD" if r["P"] == 1 else "–",
        )
        for r in results["parts"]
    )
    return [
        Table(
            "gd-vs-sgd-table",
            f"final H/n at step × steps / P = {results['horizon']:g}, and after a GD restart",
            (
                "P",
                "steps",
                "final H/n",
                "after GD restart",
                "1 − overlap",
                "restart converged",
                "Sagun et al. Fig. 7",
            ),
            rows,
            f"Ours at the {config['scale']} scale, n = {results['n']}: {config['runs']} starts × "
            f"{config['disorders']} disorders per P (each disorder's J and starts shared by every P); means "
            f"over disorders with t intervals (95%). The paper plots P = {', '.join(map(str, PAPER_PARTS))} "
            "to "
            f"step size / P = {PAPER_HORIZON:g} and gives no number (its N is not stated).",
        ),
    ]


FIGURES = (
    Figure(
        "gd_vs_sgd.png",
        "H/n against step size × steps / P for each P (mean ± std over runs and disorders)",
        f"Sagun et al. Fig. 7: “Both methods reach the floor. Different P’s give eventually the same energy "
        f"when measured at the same step-size-times-number-of-steps”; P = "
        f"{', '.join(map(str, PAPER_PARTS))}, step size / P up to {PAPER_HORIZON:g}.",
    ),
)


EXPERIMENT = Experiment(
    name="gd-vs-sgd",
    description="gradient descent vs SGD on the 3-spin glass written as a sum of P Hamiltonians",
    reproduces="Sagun et al. Fig. 7, §3.2.1",
    params=PARAMS,
    units=units,
    run_unit=run_unit,
    finalize=finalize,
    memory=memory,
    tables=tables,
    figures=FIGURES,
    claims=CLAIMS,
    diagnostics=DIAGNOSTICS,
    order=130,
)
