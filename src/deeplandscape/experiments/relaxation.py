"""``relaxation``: the PDE-based optimizers of Thesis §4.6 — Entropy-SGD, HEAT, HJ — against SGD (and SAM)
on mnistfc and lenet, validation error against effective epochs (Thesis Table 4.1, Fig. 4.2).

The methods, with the Thesis's settings (§4.6.1):

- **Entropy-SGD** (§4.6.1.1, Alg. 2): L = 20 Langevin steps of size η_y = 0.1, β_ex^{-1} = 1e-8, average
  ⟨y⟩ ← α⟨y⟩ + (1 − α)y with α = 0.25, scaled outer step η′ = 1 (§3.2.3), scoping of γ.
- **HEAT** (§4.6.1.3, eq. (4.43)): x ← x − (η/L) Σ_i ∇f_b(x + ε^i), ε^i ∼ N(0, γI), L = 20, η = 0.1; the
  Thesis gives no γ (the default 1e-4 of :class:`~deeplandscape.optim.heat.Heat` is β^{-1}γ of Entropy-SGD).
- **HJ** (§4.6.1.2): Entropy-SGD with L = 5, β_ex^{-1} = 0 and α = 0 (the last inner iterate).
- **SGD** (eq. (4.6)) with Nesterov momentum 0.9, lr 0.1; and **SAM** around it (ρ = 0.05).

Momentum and scoping of γ are "standard and as discussed in Section 3.2.3" (§4.6.1.3): Nesterov momentum 0.9
in every method (for Entropy-SGD and HJ only at the paper scale: ``entropy_momentum``, see
:data:`._compare.ENTROPY_MOMENTUM` for why). The Thesis reduces the outer step by a factor of 5 every 3
epochs; at the short budgets here every step size is constant. The protocol (same initializations, batch
orders, search budget; evaluation at the reference weights; Hessian at the solution) is
:mod:`deeplandscape.experiments._compare`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deeplandscape.experiments import _compare as C
from deeplandscape.experiments._common import table
from deeplandscape.experiments.spec import Experiment, Param, Unit, UnitResult

METHODS = {
    "entropy-sgd": C.Method("Entropy-SGD", "entropy-sgd",
                            {"lr": 1.0, "inner_lr": 0.1, "L": 20, "alpha": 0.25, "noise": 1e-8},
                            tune="inner_lr"),
    "heat": C.Method("HEAT", "heat", {"lr": 0.1, "L": 20}),
    "hj": C.Method("HJ", "hj", {"lr": 1.0, "inner_lr": 0.1, "L": 5, "alpha": 0.0, "noise": 0.0},
                   tune="inner_lr"),
    "sgd": C.Method("SGD", "sgd", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    "sam": C.Method("SAM", "sam", {"rho": 0.05}, base="sgd",
                    base_kwargs={"lr": 0.1, "momentum": 0.9, "nesterov": True}),
}  # fmt: skip

#: Thesis Table 4.1: validation error (%) @ effective epochs, MNIST.
PAPER_TABLE = {
    "mnistfc": {"Entropy-SGD": ("1.08 ± 0.02", 120), "HEAT": ("1.13 ± 0.02", 200),
                "HJ": ("1.17 ± 0.04", 200), "SGD": ("1.10 ± 0.01", 194)},
    "lenet": {"Entropy-SGD": ("0.5 ± 0.01", 80), "HEAT": ("0.59 ± 0.02", 75), "HJ": ("0.5 ± 0.01", 70),
              "SGD": ("0.5 ± 0.02", 67)},
}  # fmt: skip

PAPER = (
    "Paper (Thesis Table 4.1, MNIST, validation error % @ effective epochs): mnistfc Entropy-SGD 1.08 ± 0.02 "
    "@ 120, HEAT 1.13 ± 0.02 @ 200, HJ 1.17 ± 0.04 @ 200, SGD 1.10 ± 0.01 @ 194; lenet Entropy-SGD "
    "0.5 ± 0.01 @ 80, HEAT 0.59 ± 0.02 @ 75, HJ 0.5 ± 0.01 @ 70, SGD 0.5 ± 0.02 @ 67. The claims: all "
    "methods reach a similar validation error, HEAT is the worst on lenet, Entropy-SGD converges fastest on "
    "mnistfc (compare the curves against effective epochs)."
)

PARAMS = C.data_params(
    entropy_momentum=C.ENTROPY_MOMENTUM,
    epochs=C.IMAGE_EPOCHS,
    seeds=C.TWO_SEEDS,
    models=Param("str", "mnistfc,lenet", "networks, comma-separated", quick="lenet"),
    methods=Param("str", ",".join(METHODS), "methods, comma-separated (" + ", ".join(METHODS) + ")"),
)


def units(config: dict[str, Any]) -> list[Unit]:
    return C.method_units(config, METHODS)


def run_unit(config: dict[str, Any], unit: Unit, seed: int) -> UnitResult:
    method = C.with_entropy_momentum(METHODS[unit.params["method"]], config)
    return C.run_method(config, unit.params["model"], method)


def paper_table(rows: list[dict[str, Any]]) -> str:
    """Thesis Table 4.1 beside our validation errors (mean ± std @ effective epochs)."""
    out = []
    for r in rows:
        paper = PAPER_TABLE.get(r["model"], {}).get(r["method"])
        out.append([
            r["model"], r["method"], "—" if paper is None else f"{paper[0]} @ {paper[1]}",
            f"{r['val_error_mean']:.4g} ± {r['val_error_std']:.2g} @ {r['effective_epochs']:.3g}",
        ])  # fmt: skip
    return table(["model", "method", "paper val error % @ epochs", "ours val error % @ epochs"], out)


def finalize(config: dict[str, Any], results: list[UnitResult], out: Path) -> tuple[dict, str]:
    rows = C.run_rows(results)
    return C.finalize_comparison("relaxation", config, results, out, PAPER + "\n\n" + paper_table(rows))


EXPERIMENT = Experiment(
    name="relaxation",
    description="Entropy-SGD, HEAT, HJ vs SGD / SAM at the same budget of effective epochs",
    reproduces="Thesis §4.6, Table 4.1, Fig. 4.2",
    params=PARAMS,
    units=units,
    run_unit=run_unit,
    finalize=finalize,
    order=420,
)
