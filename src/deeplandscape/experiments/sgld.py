"""``sgld``: stochastic gradient Langevin dynamics with a decaying step size against Entropy-SGD (and SGD,
SAM) on lenet (Thesis §3.3.6).

SGLD (Welling & Teh 2011; Thesis eq. (3.16)), one step per mini-batch:

    x_{t+1} = x_t − η_t ∇f_b(x_t) + √(2 η_t β^{-1}) ε_t,     η_t = η / (1 + t)^b,     ε_t ∼ N(0, I),

with t the number of steps taken (η_0 = η). "We follow the experiments in Welling and Teh (2011) and Chen et
al. (2015a) and set the learning rate schedule to be η/(1 + t)^b where the initial learning rate η and b are
hyper-parameters" (§3.3.6). The Thesis reports neither value nor the temperature. Here:

- b = 0.55 by default, the exponent of the step sizes a(b + t)^{-γ} of Welling & Teh (2011) (γ = 0.55 in
  their experiments; γ ∈ (0.5, 1] gives Σ η_t = ∞ and Σ η_t² < ∞);
- β^{-1} = 1/N (``sgld_temperature_n`` = 1) for N training samples: with f the *mean* loss, this is
  Welling & Teh's sampler of the Bayesian posterior (Thesis eq. (3.14)–(3.16));
- η = 0.5, searched (as the Thesis did: "after a hyper-parameter search") over ``lr_factors`` — with the same
  search for every method of the comparison.

The decay is a ``torch.optim.lr_scheduler.LambdaLR`` with factor (1 + t)^{-b}, stepped after every
optimizer step (:func:`step_size_decay`); :class:`~deeplandscape.optim.sgld.SGLD` takes both its drift and
its noise √(2ηβ^{-1}) from the group's ``lr``, so the schedule acts on both, as η_t does in eq. (3.16).
Entropy-SGD, SGD and SAM run as in ``entropy-sgd`` (the authors' settings and step-size drops of Thesis
§3.3; :data:`deeplandscape.experiments.entropy_sgd.METHODS`). SGLD gets ``sgld_budget_scale`` times the
common budget (the Thesis: 300 epochs of SGLD against 80 effective epochs of Entropy-SGD; 1 by default,
the same budget).

Paper (Thesis §3.3.6): lenet on MNIST, SGLD 0.63 ± 0.1% after 300 epochs against Entropy-SGD 0.50 ± 0.01%
(80 effective epochs); allcnn on CIFAR-10, 9.89 ± 0.11% after 500 epochs against 7.81 ± 0.09%.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from deeplandscape.experiments import _compare as C
from deeplandscape.experiments import _verdicts as V
from deeplandscape.experiments import entropy_sgd
from deeplandscape.experiments._plot import save
from deeplandscape.experiments.claims import Claim, PaperNumber, RunData, Verdict, all_of
from deeplandscape.experiments.spec import Diagnostic, Experiment, Figure, Param, Table, Unit, UnitResult

METHODS = {
    "sgld": C.Method("SGLD", "sgld", {"lr": 0.5}),
    **{k: entropy_sgd.METHODS[k] for k in ("entropy-sgd", "sgd", "sam")},
}

#: Thesis §3.3.6 (lenet, MNIST): validation error %.
PAPER_TABLE = {
    ("lenet", "SGLD"): PaperNumber((0.63, 0.1), "Thesis §3.3.6", "after 300 epochs"),
    ("lenet", "Entropy-SGD"): PaperNumber((0.50, 0.01), "Thesis §3.3.6", "@ 80 effective epochs"),
}

PARAMS = C.data_params(
    **C.protocol_params(
        epochs=Param("float", 27.0, "budget of effective epochs per run", quick=1.0, reference=1.5,
                     paper=80.0, low=0.01),
        lr_factors=Param("floats", [0.5, 1.0, 2.0], "step sizes tried per method (× its default) on the "
                         "validation split with seed 0", quick=[1.0], low=1e-6),
    ),
    models=Param("str", "lenet", "networks, comma-separated"),
    methods=Param("str", "sgld,entropy-sgd", "methods, comma-separated (" + ", ".join(METHODS) + ")",
                  paper="sgld,entropy-sgd,sgd"),
    sgld_b=Param("float", 0.55, "exponent b of SGLD's step size η/(1+t)^b (Welling & Teh 2011)", low=0.0),
    sgld_temperature_n=Param("float", 1.0, "SGLD temperature β^{-1} in units of 1/N (1: the posterior)",
                             low=0.0),
    sgld_budget_scale=Param("float", 1.0, "SGLD's budget in units of the others' (Thesis: 300 epochs "
                            "against Entropy-SGD's 80 effective epochs)", paper=3.75, low=0.01),
)  # fmt: skip


def step_size_decay(b: float) -> Callable[[torch.optim.Optimizer], torch.optim.lr_scheduler.LambdaLR]:
    """The schedule η_t = η/(1 + t)^b of Thesis §3.3.6: a ``LambdaLR`` with factor (1 + t)^{-b}, t = steps
    taken (stepped once after every optimizer step)."""
    if not b >= 0:
        raise ValueError(f"Invalid b: {b} (must be ≥ 0)")

    def schedule(optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: (1.0 + t) ** -b)

    return schedule


def sgld_method(config: dict[str, Any], n_train: int) -> C.Method:
    """SGLD with β^{-1} = ``sgld_temperature_n`` / N."""
    base = METHODS["sgld"]
    return C.Method(
        base.label, base.optimizer, {**base.kwargs, "temperature": config["sgld_temperature_n"] / n_train}
    )


def units(config: dict[str, Any]) -> list[Unit]:
    C.width_settings(config)
    return C.method_units(config, METHODS)


def run_unit(config: dict[str, Any], unit: Unit, seed: int) -> UnitResult:
    model, key = unit.params["model"], unit.params["method"]
    if key != "sgld":
        return C.run_method(config, model, METHODS[key])
    d = C.load_images(config)
    return C.run_method(
        config, model, sgld_method(config, len(d.y)), d=d, schedule=step_size_decay(config["sgld_b"]),
        epochs=config["epochs"] * config["sgld_budget_scale"],
    )  # fmt: skip


def finalize(config: dict[str, Any], results: list[UnitResult], out: Path) -> dict[str, Any]:
    npz = C.save_comparison("sgld", results, out)
    save(C.plot_curves(results, "val_error", "validation error %"), out / "val_error.png")
    save(C.plot_curves(results, "train_loss", "training loss"), out / "train_loss.png")
    save(C.plot_width(results, config["width_gammas"]), out / "width.png")
    return {
        "data": config["data"], "npz": npz, "runs": C.run_rows(results), "width": V.width_summary(config),
        "sgld_b": config["sgld_b"], "sgld_temperature_n": config["sgld_temperature_n"],
        "sgld_budget_scale": config["sgld_budget_scale"],
    }  # fmt: skip


def tables(results: dict[str, Any], config: dict[str, Any]) -> list[Table]:
    paper = {key: f"{number} {number.note}" for key, number in PAPER_TABLE.items()}
    errors = V.runs_table(results, config, paper, "Thesis §3.3.6 (validation error %)")
    note = (
        f"{errors.note} SGLD: η_t = η/(1+t)^b with b = {results['sgld_b']:g}, temperature β⁻¹ = "
        f"{results['sgld_temperature_n']:g}/N, t = SGLD steps, {results['sgld_budget_scale']:g} × the budget."
    )
    return [Table(errors.id, errors.title, errors.header, errors.rows, note), V.width_table(results)]


# ---------------------------------------------------------------------------------------------- claims


def _per_model(run: RunData, compare) -> Verdict:
    return all_of([
        (model, V.case_verdict(lambda _, m=model: compare(run, m, "Entropy-SGD", "SGLD")))
        for model in V.models(run, "Entropy-SGD", "SGLD")
    ])  # fmt: skip


GUARDS = (
    "Guards (not decidable): Entropy-SGD with fewer than 100 outer updates, SGLD with fewer than 100 steps, "
    "a classifier not shown to exceed twice chance on every seed."
)
CLAIMS = (
    Claim(
        "sgld.error",
        "“After a hyper-parameter search, we obtained a validation error on lenet of "
        f"{PAPER_TABLE['lenet', 'SGLD']}% after 300 epochs … Even if one were to disregard the slow "
        "convergence of SGLD, its generalization error is much worse than our experimental results; we get "
        f"{PAPER_TABLE['lenet', 'Entropy-SGD']}% on lenet”",
        "Thesis §3.3.6",
        "Entropy-SGD's test error minus SGLD's is below 0 (the union of the t interval over seeds and the "
        "bootstrap interval over the test images), both after the same step-size search; SGLD gets "
        "sgld_budget_scale × the budget. " + GUARDS,
        lambda run: _per_model(run, V.lower_error),
        shown_in="errors",
    ),
    Claim(
        "sgld.wider",
        "“Conventional MCMC techniques such as SGLD … can only trade energy for entropy via the temperature "
        "parameter which does not allow the direct use of the geometric information of the energy landscape "
        "and does not help with narrow minima”: Entropy-SGD's solutions are wider than SGLD's",
        "Thesis §3.3.6 (width: Def. 4.20)",
        "In the Thesis's measure (Def. 4.20: the width is −f_γ(x)), Entropy-SGD's solutions have a lower "
        "Local Entropy f_γ(x) than SGLD's at every scope γ of the grid (paired t interval over seeds below "
        "0). " + GUARDS,
        lambda run: _per_model(run, V.wider),
        shown_in="width",
    ),
    Claim(
        "sgld.sharpness",
        "Beyond the papers: Entropy-SGD's solutions have a lower scale-invariant sharpness than SGLD's",
        "ours (Remark 4.21: Local Entropy is “quite different from … the Hessian”)",
        "The adaptive sharpness λ_max(diag|x| H diag|x|) of Entropy-SGD's solutions below SGLD's (paired t "
        "interval of log10 over seeds below 0). " + GUARDS,
        lambda run: _per_model(run, V.lower_adaptive_sharpness),
        beyond_papers=True,
        shown_in="width",
    ),
)

DIAGNOSTICS = (
    Diagnostic(
        "sgld-longer", "sgld", ("methods=sgld,entropy-sgd", "sgld_budget_scale=3.75"), ("sgld.error",),
        "With the Thesis's ratio of budgets (SGLD 300 epochs against Entropy-SGD's 80 effective epochs: 3.75 "
        "× the budget for SGLD), does SGLD reach Entropy-SGD's error? A change points at SGLD's slow "
        "convergence rather than its generalization.",
    ),
    Diagnostic(
        "sgld-cold", "sgld", ("methods=sgld,entropy-sgd", "sgld_temperature_n=0"),
        ("sgld.error", "sgld.wider"),
        "SGLD at zero temperature (SGD with the decaying step size η/(1+t)^b): is the difference due to "
        "SGLD's noise or to its step-size schedule?",
    ),
    V.width_precision_run("sgld", ("methods=sgld,entropy-sgd",), ("sgld.wider",)),
)  # fmt: skip

FIGURES = (
    Figure(
        "val_error.png",
        "validation error against effective epochs and against wall-clock seconds (mean ± std over seeds)",
        f"Thesis §3.3.6: lenet on MNIST, SGLD with η/(1+t)^b {PAPER_TABLE['lenet', 'SGLD']}% after 300 "
        "epochs "
        f"against Entropy-SGD {PAPER_TABLE['lenet', 'Entropy-SGD']}% @ 80 effective epochs.",
    ),
    Figure("train_loss.png", "training loss against effective epochs and wall-clock seconds",
           "Thesis §3.3.6: SGLD converges more slowly than Entropy-SGD (no figure)."),
    Figure(
        "width.png",
        "Local Entropy's excess f_γ(x) − f(x) against γ at every seed's solution, and the adaptive sharpness",
        "Thesis §3.3.6: SGLD “does not help with narrow minima” (no figure).",
    ),
)  # fmt: skip


EXPERIMENT = Experiment(
    name="sgld",
    description="SGLD with step size η/(1+t)^b vs Entropy-SGD / SGD / SAM, same budget of effective epochs",
    reproduces="Thesis §3.3.6",
    params=PARAMS,
    units=units,
    run_unit=run_unit,
    finalize=finalize,
    tables=tables,
    figures=FIGURES,
    claims=CLAIMS,
    diagnostics=DIAGNOSTICS,
    order=450,
)
