"""``relaxation``: the PDE-based optimizers of Thesis §4.6 — Entropy-SGD, HEAT, HJ — against SGD (and SAM)
on mnistfc and lenet, validation error against effective epochs (Thesis Table 4.1, Fig. 4.2).

The methods, as the authors ran them (§4.6.1; "other details such as adding momentum to first order
stochastic updates and scoping of the parameter γ are standard and as discussed in Section 3.2.3"):

- **Entropy-SGD** (§4.6.1.1, Alg. 2): L = 20 Langevin steps of size η_y = 0.1, β_ex⁻¹ = 1e-8, scope
  γ0 = 1e4 shrinking by (1 − 10⁻³) per outer update, Nesterov momentum 0.9 in the inner loop (restarted each
  cycle); "we set η = 0.1 and reduce it by a factor of 5 after every 3 epochs" for the outer step, which
  the authors' PyTorch code (``python/optim.py``, ``train.py``: ``lr = 0.1``, Nesterov momentum 0.9 on the
  outer update) runs with Nesterov momentum on the outer update: ``lr=0.1, outer_momentum=0.9,
  outer_nesterov=True``. The average z ← αz + (1 − α)y uses the code's α = 0.75 (the text writes 0.25);
- **HJ** (§4.6.1.2): the same with L = 5, β_ex⁻¹ = 0 and α = 0 (the last inner iterate);
- **HEAT** (§4.6.1.3, eq. (4.43)): x ← x − (η/L) Σ_i ∇f_b(x + ε^i), ε^i ∼ N(0, γI), L = 20, η = 0.1 with
  Nesterov momentum 0.9; the Thesis gives no γ (the default 1e-4 of :class:`~deeplandscape.optim.Heat` is
  β⁻¹γ of Entropy-SGD);
- **SGD** (eq. (4.6)) with Nesterov momentum 0.9, lr 0.1; and **SAM** around it (ρ = 0.05, not in the
  Thesis).

Every method's step size drops ÷5 at the middle of the run: the Thesis's "÷5 after every 3 epochs" for
Entropy-SGD's 6 epochs of L = 20 (Table 4.1: 120 effective epochs on mnistfc), applied to all four
(the Thesis gives no other schedule). **Budgets** are equal in effective epochs and sized so that the
two-loop methods complete their declared minimum of outer updates (:data:`._compare.MINIMUM_UPDATES`:
100); HEAT's claims need the Thesis's own number of HEAT updates (75 effective epochs on lenet, ~1,760
updates), which only the paper scale affords: below it they are not decidable. The protocol (same
initializations, batch orders; evaluation at the reference weights; the width of every seed's solution
in the Thesis's measure) is :mod:`deeplandscape.experiments._compare`; the decisions :mod:`._verdicts`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from deeplandscape.experiments import _compare as C
from deeplandscape.experiments import _verdicts as V
from deeplandscape.experiments._plot import save
from deeplandscape.experiments.claims import (
    Claim,
    NotChecked,
    PaperNumber,
    RunData,
    Undecidable,
    Verdict,
    all_of,
    decide,
    paired_difference,
)
from deeplandscape.experiments.spec import Experiment, Figure, Param, Table, Unit, UnitResult

SGD_SETTINGS = {"lr": 0.1, "momentum": 0.9, "nesterov": True}
OUTER = {"lr": 0.1, "outer_momentum": 0.9, "outer_nesterov": True}  # the authors' PyTorch code
DROP = {"drops": (0.5,), "drop_factor": 0.2}  # §4.6.1.1: ÷5 after 3 of Entropy-SGD's 6 epochs
METHODS = {
    "entropy-sgd": C.Method("Entropy-SGD", "entropy-sgd", OUTER, tune="inner_lr", **DROP),
    "heat": C.Method("HEAT", "heat", **DROP),
    "hj": C.Method("HJ", "hj", OUTER, tune="inner_lr", **DROP),
    "sgd": C.Method("SGD", "sgd", SGD_SETTINGS, **DROP),
    "sam": C.Method("SAM", "sam", {"rho": 0.05}, base="sgd", base_kwargs=SGD_SETTINGS, **DROP),
}

#: Thesis Table 4.1: validation error % (mean, std) @ effective epochs, MNIST.
PAPER_TABLE = {
    (model, method): PaperNumber(value, "Thesis Table 4.1", f"@ {epochs}")
    for model, row in {
        "mnistfc": {"Entropy-SGD": ((1.08, 0.02), 120), "HEAT": ((1.13, 0.02), 200),
                    "HJ": ((1.17, 0.04), 200), "SGD": ((1.10, 0.01), 194)},
        "lenet": {"Entropy-SGD": ((0.5, 0.01), 80), "HEAT": ((0.59, 0.02), 75), "HJ": ((0.5, 0.01), 70),
                  "SGD": ((0.5, 0.02), 67)},
    }.items()
    for method, (value, epochs) in row.items()
}  # fmt: skip
#: The equivalence margin of "similar"/"comparable": the largest relative spread of errors that the Thesis
#: calls "quite similar" (Table 4.1, mnistfc: "the difference …, e.g., 1.08 % for Entropy-SGD versus 1.17 %
#: for HJ, is minor").
SIMILAR_MARGIN = V.margin_from([n.value[0] for (m, _), n in PAPER_TABLE.items() if m == "mnistfc"])
SIMILAR_SOURCE = (
    "the largest relative spread the Thesis calls “quite similar”: Table 4.1's mnistfc row, "
    "1.17/1.08 − 1 (“the difference … e.g., 1.08 % for Entropy-SGD versus 1.17 % for HJ, is minor”)"
)

PARAMS = C.data_params(
    **C.protocol_params(
        epochs=Param("float", 27.0, "budget of effective epochs per run", quick=1.0, reference=1.5,
                     paper=120.0, low=0.01),
    ),
    models=Param("str", "lenet", "networks, comma-separated", reference="mnistfc,lenet",
                 paper="mnistfc,lenet"),
    methods=Param("str", "entropy-sgd,heat,hj,sgd", "methods, comma-separated (" + ", ".join(METHODS) + ")",
                  reference="entropy-sgd,hj,sgd"),
)  # fmt: skip


def units(config: dict[str, Any]) -> list[Unit]:
    C.width_settings(config)
    return C.method_units(config, METHODS)


def run_unit(config: dict[str, Any], unit: Unit, seed: int) -> UnitResult:
    return C.run_method(config, unit.params["model"], METHODS[unit.params["method"]])


def finalize(config: dict[str, Any], results: list[UnitResult], out: Path) -> dict[str, Any]:
    npz = C.save_comparison("relaxation", results, out)
    save(C.plot_curves(results, "val_error", "validation error %"), out / "val_error.png")
    save(C.plot_curves(results, "train_loss", "training loss"), out / "train_loss.png")
    save(C.plot_width(results, config["width_gammas"]), out / "width.png")
    return {"data": config["data"], "npz": npz, "runs": C.run_rows(results), "width": V.width_summary(config)}


def tables(results: dict[str, Any], config: dict[str, Any]) -> list[Table]:
    paper = {key: f"{number} {number.note}" for key, number in PAPER_TABLE.items()}
    return [
        V.runs_table(results, config, paper, "Thesis Table 4.1 (validation error % @ effective epochs)"),
        V.width_table(results),
    ]


# ---------------------------------------------------------------------------------------------- claims

PDE_METHODS = ("Entropy-SGD", "HJ", "HEAT")


def _decide_similar(run: RunData) -> Verdict:
    """mnistfc: every method similar to SGD; lenet: every method but HEAT (the Thesis's exception)."""
    parts = []
    for model in V.models(run, "SGD"):
        for method in PDE_METHODS:
            if (method == "HEAT" and model == "lenet") or model not in V.models(run, method):
                continue
            verdict = V.case_verdict(lambda _, m=model, k=method: V.similar(run, m, k, "SGD", SIMILAR_MARGIN))
            parts.append((f"{model}: {method} vs SGD", verdict))
    return all_of(parts)


def _decide_heat_worst(run: RunData) -> Verdict:
    if "lenet" not in V.models(run, "HEAT"):
        raise Undecidable(
            "HEAT was not trained on lenet at this scale: its claims need the Thesis's "
            f"{C.HEAT_THESIS_UPDATES:,} HEAT updates, which the paper scale affords"
        )
    others = [k for k in ("Entropy-SGD", "HJ", "SGD") if "lenet" in V.models(run, "HEAT", k)]

    def one(other: str) -> Verdict:
        V.guard(run, "lenet", "HEAT")
        V.guard(run, "lenet", other)
        return decide(V.error_difference(run, "lenet", "HEAT", other), above=0.0)

    return all_of([(f"lenet: HEAT vs {k}", V.case_verdict(lambda _, k=k: one(k))) for k in others])


def _curve_level(run: RunData, model: str, method: str) -> np.ndarray:
    """Each seed's mean validation error over the evaluation points after the start: the area under its
    curve against effective epochs (the points are evenly spaced), lower for a faster method."""
    return V.arrays(run, model, method)["val_error"][:, 1:].mean(axis=1)


def _decide_fastest(run: RunData) -> Verdict:
    if "mnistfc" not in V.models(run, "Entropy-SGD"):
        raise NotChecked(
            "the claim is about mnistfc, which this run did not train (reference and paper scales)"
        )
    others = [k for k in ("HEAT", "HJ", "SGD") if "mnistfc" in V.models(run, "Entropy-SGD", k)]

    def one(other: str) -> Verdict:
        V.guard(run, "mnistfc", "Entropy-SGD")
        V.guard(run, "mnistfc", other)
        stat = paired_difference(
            _curve_level(run, "mnistfc", "Entropy-SGD"), _curve_level(run, "mnistfc", other),
            f"mean validation error along training, Entropy-SGD − {other} on mnistfc (points)",
        )  # fmt: skip
        return decide(stat, below=0.0)

    return all_of([(f"mnistfc: Entropy-SGD vs {k}", V.case_verdict(lambda _, k=k: one(k))) for k in others])


def _against_sgd(run: RunData, compare, methods: tuple[str, ...]) -> Verdict:
    parts = [
        (f"{model}: {k} vs SGD", V.case_verdict(lambda _, m=model, k=k: compare(run, m, k, "SGD")))
        for model in V.models(run, "SGD")
        for k in methods
        if model in V.models(run, k)
    ]
    return all_of(parts)


GUARDS = (
    "Guards (not decidable): a method with fewer of its own updates than declared (Entropy-SGD and HJ 100 "
    "outer updates, HEAT the Thesis's ~1,760 updates, SGD 100 steps), a classifier not shown to exceed twice "
    "chance on every seed."
)
CLAIMS = (
    Claim(
        "relaxation.similar",
        "“As Figure 4.2a and Table 4.1 show, the final validation error for all algorithms is quite similar” "
        "(mnistfc); on lenet “the final validation error is very similar for all algorithms at 0.50 % with "
        "the exception of the heat equation”",
        "Thesis §4.6.2, Table 4.1, Fig. 4.2",
        "Every method's test error minus SGD's within ±m × SGD's error (equivalence; the union of the t "
        "interval over seeds and the bootstrap interval over the test images): Entropy-SGD, HJ and HEAT on "
        f"mnistfc, Entropy-SGD and HJ on lenet. m = {SIMILAR_MARGIN:.3f} is {SIMILAR_SOURCE}. " + GUARDS,
        _decide_similar,
        shown_in="errors",
    ),
    Claim(
        "relaxation.heat-worst",
        "lenet: the final validation error is very similar for all algorithms at 0.50 % “with the exception "
        f"of the heat equation which only reaches {PAPER_TABLE['lenet', 'HEAT'].value[0]} %”",
        "Thesis §4.6.2, Table 4.1",
        "On lenet, HEAT's test error minus each of Entropy-SGD's, HJ's and SGD's is above 0. " + GUARDS,
        _decide_heat_worst,
        shown_in="errors",
    ),
    Claim(
        "relaxation.fastest",
        "“The convergence rate varies, in particular, Entropy-SGD converges fastest in this case” (mnistfc; "
        "Table 4.1: “Entropy-SGD is significantly faster at training mnistfc”)",
        "Thesis §4.6.2, Table 4.1, Fig. 4.2a",
        "On mnistfc, Entropy-SGD's validation error averaged over the evaluation points after the start (the "
        "area under its curve against effective epochs; ours, the Thesis gives no number) minus each other "
        "method's is below 0 (paired t interval over seeds). " + GUARDS,
        _decide_fastest,
        shown_in="val_error.png",
    ),
    Claim(
        "relaxation.wider",
        "“This suggests that the width of a region obtained by X_csgd(t) is larger than the width of a "
        "region "
        "obtained by X_sgd(t) if both controlled SGD and SGD are trained for the same time t” "
        "(controlled SGD: "
        "Entropy-SGD and HJ, §4.4)",
        "Thesis §4.5.3.1 (width: Def. 4.20, eq. (4.38))",
        "In the Thesis's measure (Def. 4.20: the width is −f_γ(x)), Entropy-SGD's and HJ's solutions have a "
        "lower Local Entropy f_γ(x) than SGD's at every scope γ of the grid, on every network (paired t "
        "interval over seeds below 0; the same budget of effective epochs for all). " + GUARDS,
        lambda run: _against_sgd(run, V.wider, ("Entropy-SGD", "HJ")),
        shown_in="width",
    ),
    Claim(
        "relaxation.sharpness",
        "Beyond the papers: Entropy-SGD's, HJ's and HEAT's solutions have a lower scale-invariant sharpness "
        "than SGD's",
        "ours (Remark 4.21: Local Entropy is “quite different from … the Hessian”)",
        "The adaptive sharpness λ_max(diag|x| H diag|x|) of each PDE method's solutions below SGD's on every "
        "network (paired t interval of log10 over seeds below 0). " + GUARDS,
        lambda run: _against_sgd(run, V.lower_adaptive_sharpness, PDE_METHODS),
        beyond_papers=True,
        shown_in="width",
    ),
)

_ALL = ("methods=entropy-sgd,heat,hj,sgd",)
DIAGNOSTICS = (
    V.longer_run("relaxation", _ALL, ("relaxation.similar", "relaxation.fastest", "relaxation.wider")),
    V.search_run("relaxation", _ALL, ("relaxation.similar", "relaxation.heat-worst", "relaxation.fastest")),
    V.width_precision_run("relaxation", _ALL, ("relaxation.wider",)),
)

_ROW = "; ".join(
    f"{model} " + ", ".join(f"{k} {PAPER_TABLE[model, k]}% {PAPER_TABLE[model, k].note}" for k in ks)
    for model, ks in (("mnistfc", ("Entropy-SGD", "HEAT", "HJ", "SGD")), ("lenet", ("Entropy-SGD", "HEAT",
                                                                                   "HJ", "SGD")))
)  # fmt: skip
FIGURES = (
    Figure(
        "val_error.png",
        "validation error against effective epochs and against wall-clock seconds (mean ± std over seeds)",
        f"Thesis Fig. 4.2, Table 4.1: validation error against effective epochs: {_ROW} — all similar, HEAT "
        "the worst on lenet, Entropy-SGD the fastest on mnistfc.",
    ),
    Figure("train_loss.png", "training loss against effective epochs and wall-clock seconds",
           "Thesis Fig. 4.2: training loss against effective epochs (Entropy-SGD converges fastest on "
           "mnistfc)."),
    Figure(
        "width.png",
        "Local Entropy's excess f_γ(x) − f(x) against γ at every seed's solution, and the adaptive sharpness",
        "Thesis §4.5.3.1, Def. 4.20: controlled SGD finds wider regions than SGD in the same time; the "
        "Thesis "
        "shows no measured width.",
    ),
)  # fmt: skip


EXPERIMENT = Experiment(
    name="relaxation",
    description="Entropy-SGD, HEAT, HJ vs SGD / SAM at the same budget of effective epochs",
    reproduces="Thesis §4.6, Table 4.1, Fig. 4.2",
    params=PARAMS,
    units=units,
    run_unit=run_unit,
    finalize=finalize,
    tables=tables,
    figures=FIGURES,
    claims=CLAIMS,
    diagnostics=DIAGNOSTICS,
    order=420,
)
