"""How the comparisons decide their claims: the statistics of two methods run with the same seeds (same
initializations and batch orders, :mod:`._compare`), the guards that make a vacuous comparison not decidable,
and the tables every comparison shows.

A comparison's raw data are in its npz (``<model>_<method>_<key>``, one row per seed) and its
``results.json`` (``runs``: one row per model and method, :func:`._compare.run_rows`). The statistics:

- **error rates** on the test set: :func:`~.claims.error_difference` (the union of the t interval over
  seeds and the bootstrap interval over test samples) of the per-sample wrong/right arrays;
- **perplexities** (character models): the same union for the difference of the mean cross-entropy per
  character, i.e. of log-perplexities (:func:`log_perplexity_difference`);
- **measurements at the solutions** (Local Entropy, sharpness, alignment, gradients): the paired t interval
  over seeds (:func:`~.claims.paired_difference`).

The guards (:func:`guard`): each method must have completed the least number of its own updates that
:data:`._compare.MINIMUM_UPDATES` declares for it, AnnealSGD's field must have decayed below
:data:`._compare.FIELD_LIMIT` of its start, and a classifier must have left chance level
(:func:`~.claims.require_above_chance`, every seed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from deeplandscape.experiments import _compare as C
from deeplandscape.experiments.claims import (
    Claim,
    NotChecked,
    RunData,
    Statistic,
    Undecidable,
    Verdict,
    all_of,
    bootstrap,
    decide,
    fmt,
    mean,
    paired_difference,
    require_above_chance,
    require_at_most,
    require_updates,
)
from deeplandscape.experiments.claims import (
    error_difference as test_error_difference,
)
from deeplandscape.experiments.spec import Diagnostic, Table

CLASSES = 10  # the image tasks (MNIST, digits)

# ---------------------------------------------------------------------------------------------- data


def row(run: RunData, model: str, method: str) -> dict[str, Any]:
    """The ``runs`` row of ``method`` on ``model``; :class:`NotChecked` if the run did not have it."""
    for r in run.results["runs"]:
        if r["model"] == model and r["method"] == method:
            return r
    raise NotChecked(f"{method} was not run on {model}")


def models(run: RunData, *methods: str) -> list[str]:
    """The models on which every one of ``methods`` was run, in the run's order."""
    have = [(r["model"], r["method"]) for r in run.results["runs"]]
    ordered = list(dict.fromkeys(m for m, _ in have))
    return [m for m in ordered if all((m, k) in have for k in methods)]


def arrays(run: RunData, model: str, method: str) -> dict[str, np.ndarray]:
    """The per-seed arrays of ``method`` on ``model`` from the run's npz (``run.results['npz']``)."""
    data = run.arrays(run.results["npz"])
    prefix = f"{model}_{method}_"
    found = {k[len(prefix) :]: v for k, v in data.items() if k.startswith(prefix)}
    if not found:
        raise NotChecked(f"the run's {run.results['npz']} has no arrays of {method} on {model}")
    return found


# ---------------------------------------------------------------------------------------------- guards


def guard(
    run: RunData, model: str, method: str, *, classifier: bool = True, field: bool = True
) -> dict[str, Any]:
    """``method``'s row on ``model`` after its guards: its own updates (every seed) at least the declared
    minimum; with ``field``, AnnealSGD's field below :data:`._compare.FIELD_LIMIT` at the end (a claim on
    the trained network; not one on training while the field is on); a classifier above chance on every
    seed. :class:`Undecidable` (a guard) otherwise."""
    r = row(run, model, method)
    label = f"{method} on {model}"
    need = C.minimum_updates(r["optimizer"])
    require_updates(label, r["own_updates"], need.minimum, f"{need.unit} (least over seeds)")
    if field and "field_fraction_end" in r:
        require_at_most(label, r["field_fraction_end"], C.FIELD_LIMIT, "the field's magnitude / its start")
    if classifier:
        a = arrays(run, model, method)
        wrong = a["test_per_sample"].sum(axis=1)
        worst = int(np.argmax(wrong))
        require_above_chance(f"{label} (seed {worst})", int(wrong[worst]), a["test_per_sample"].shape[1],
                             CLASSES)  # fmt: skip
    return r


# ---------------------------------------------------------------------------------------------- statistics


def error_difference(run: RunData, model: str, a: str, b: str) -> Statistic:
    """Test error of ``a`` minus that of ``b`` on ``model`` (percentage points), seeds paired."""
    wa, wb = arrays(run, model, a)["test_per_sample"], arrays(run, model, b)["test_per_sample"]
    return test_error_difference(wa, wb, f"test error {a} − {b} on {model} (points)")


def log_perplexity_difference(run: RunData, model: str, a: str, b: str) -> Statistic:
    """Test log-perplexity (mean cross-entropy per character) of ``a`` minus ``b`` on ``model``.

    The union of the paired t interval over seeds and the bootstrap interval over test windows of the
    seed-averaged per-window difference (the construction of :func:`~.claims.error_difference`).
    """
    ca, cb = arrays(run, model, a)["test_per_sample"], arrays(run, model, b)["test_per_sample"]
    name = f"test log-perplexity {a} − {b} on {model}"
    if ca.shape[0] < 2:
        raise Undecidable(f"one seed per method: the seed-to-seed variation of {name} cannot be estimated")
    over_seeds = mean(ca.mean(axis=1) - cb.mean(axis=1), name)
    over_windows = bootstrap((ca - cb).mean(axis=0), np.mean, name, what="test window", method="percentile")
    return Statistic(
        name, over_seeds.estimate, min(over_seeds.ci_low, over_windows.ci_low),
        max(over_seeds.ci_high, over_windows.ci_high),
        method=f"union of t over {ca.shape[0]} seeds and bootstrap over {ca.shape[1]} test windows",
    )  # fmt: skip


def paired(run: RunData, model: str, a: str, b: str, key: str, *, column: int | None = None,
           log: bool = False, name: str = "") -> Statistic:  # fmt: skip
    """The paired difference over seeds of the per-seed ``key`` (``column`` of a 2-D array; log10 of it
    with ``log``) of ``a`` minus ``b`` on ``model``."""
    va, vb = arrays(run, model, a)[key], arrays(run, model, b)[key]
    if column is not None:
        va, vb = va[:, column], vb[:, column]
    if log:
        tiny = np.finfo(np.float32).tiny  # a float32 gradient can vanish to exactly 0
        va, vb = np.log10(np.maximum(va, tiny)), np.log10(np.maximum(vb, tiny))
    return paired_difference(va, vb, name or f"{key} {a} − {b} on {model}")


# ---------------------------------------------------------------------------------------------- decisions


def lower_error(run: RunData, model: str, a: str, b: str) -> Verdict:
    """``a``'s test error below ``b``'s on ``model`` (both guarded)."""
    guard(run, model, a)
    guard(run, model, b)
    return decide(error_difference(run, model, a, b), below=0.0)


def not_worse(run: RunData, model: str, a: str, b: str, margin: float) -> Verdict:
    """``a``'s test error at most ``b``'s plus ``margin`` × ``b``'s mean error (non-inferiority)."""
    guard(run, model, a)
    rb = guard(run, model, b)
    bound = margin * rb["error_mean"]
    evidence = f"margin {bound:.3g} points = {margin:.3g} × {b}'s {rb['error_mean']:.3g}%"
    return decide(error_difference(run, model, a, b), below=bound, evidence=evidence)


def similar(run: RunData, model: str, a: str, b: str, margin: float) -> Verdict:
    """``a``'s and ``b``'s test errors within ± ``margin`` × ``b``'s mean error (equivalence)."""
    guard(run, model, a)
    rb = guard(run, model, b)
    bound = margin * rb["error_mean"]
    evidence = f"margin ±{bound:.3g} points = {margin:.3g} × {b}'s {rb['error_mean']:.3g}%"
    return decide(error_difference(run, model, a, b), above=-bound, below=bound, evidence=evidence)


def wider(run: RunData, model: str, a: str, b: str, *, classifier: bool = True) -> Verdict:
    """``a``'s solutions wider than ``b``'s in the Thesis's measure: Local Entropy f_γ(x) lower (the width
    −f_γ larger, Def. 4.20) at every scope γ of the grid, paired over seeds (both guarded)."""
    guard(run, model, a, classifier=classifier)
    guard(run, model, b, classifier=classifier)
    gammas = run.results["width"]["gammas"]
    parts = []
    for i, g in enumerate(gammas):
        stat = paired(
            run, model, a, b, "local_entropy", column=i, name=f"f_γ {a} − {b} on {model}, γ = {g:g}"
        )
        excess = paired(run, model, a, b, "local_entropy_excess", column=i)
        parts.append((f"γ = {g:g}", decide(stat, below=0.0, evidence=f"excess f_γ − f: {excess.describe()}")))
    return all_of(parts)


def lower_adaptive_sharpness(run: RunData, model: str, a: str, b: str, *, classifier: bool = True) -> Verdict:
    """``a``'s adaptive sharpness λ_max(T H T) below ``b``'s (log10, paired over seeds; both guarded)."""
    guard(run, model, a, classifier=classifier)
    guard(run, model, b, classifier=classifier)
    stat = paired(run, model, a, b, "adaptive_top", log=True,
                  name=f"log10 adaptive sharpness {a} − {b} on {model}")  # fmt: skip
    top = paired(run, model, a, b, "hessian_top", log=True)
    return decide(stat, below=0.0, evidence=f"log10 λ_max (not scale-invariant): {top.describe()}")


def per_model(run: RunData, decide_one, *methods: str) -> Verdict:
    """``decide_one(model)`` on every model that has all of ``methods``, combined (:func:`all_of`)."""
    found = models(run, *methods)
    if not found:
        raise NotChecked(f"no model with {', '.join(methods)}")
    return all_of([(m, case_verdict(lambda _, m=m: decide_one(m))) for m in found])


def case_verdict(decision) -> Verdict:
    """The verdict of one case of a claim: ``decision``'s, or the one that the exception it raised stands
    for (a guard, a straddling interval, a missing measurement), as :meth:`Claim.evaluate` gives it."""
    return Claim("case", "one case of a claim", "–", "–", decision).evaluate(RunData({}, {}))


# ---------------------------------------------------------------------------------------------- diagnostics


def longer_run(
    experiment: str, overrides: Sequence[str], explains: Sequence[str], factor: float = 4
) -> Diagnostic:
    """The run that asks whether a verdict is the budget's: ``factor`` × the budget (drops at the same
    fractions of the run)."""
    return Diagnostic(
        f"{experiment}-longer", experiment, (*overrides, f"budget_scale={factor:g}"), tuple(explains),
        f"With {factor:g} times the budget (the step-size drops at the same fractions of the run), does the "
        "verdict change? A change points at the budget, not the method.",
    )  # fmt: skip


def search_run(experiment: str, overrides: Sequence[str], explains: Sequence[str]) -> Diagnostic:
    """The run that asks whether a verdict is the tuning's: every method's step size searched."""
    return Diagnostic(
        f"{experiment}-search", experiment, (*overrides, "lr_factors=0.5,1,2"), tuple(explains),
        "With every method's step size (the Langevin step η of Entropy-SGD and HJ) searched over "
        "×{0.5, 1, 2} on the validation split, does the verdict change? A change points at the tuning.",
    )  # fmt: skip


def width_precision_run(experiment: str, overrides: Sequence[str], explains: Sequence[str]) -> Diagnostic:
    """The run that asks whether a width verdict is the Local Entropy estimates' precision's."""
    return Diagnostic(
        f"{experiment}-width-precision", experiment,
        (*overrides, "width_samples=512", "width_chains=4", "width_steps=40", "width_burnin=20"),
        tuple(explains),
        "With four times the training samples and longer, more numerous Langevin chains, is the width "
        "verdict the same? A change points at the precision of the Local Entropy estimates.",
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------- tables


def runs_table(results: dict[str, Any], config: dict[str, Any], paper: dict[tuple[str, str], str],
               paper_column: str, *, metric: str = "test error %") -> Table:  # fmt: skip
    """Our final numbers beside the paper's, with each method's own updates against its minimum."""
    rows = []
    for r in results["runs"]:
        need = C.minimum_updates(r["optimizer"])
        field = f"; field {r['field_fraction_end']:.2g} of its start" if "field_fraction_end" in r else ""
        rows.append((
            r["model"], r["method"], paper.get((r["model"], r["method"]), "–"),
            _mean_std(r["error_mean"], r["error_std"], r["seeds"]), _mean_std(r["val_error_mean"],
            r["val_error_std"], r["seeds"]), fmt(r["effective_epochs"]),
            f"{r['own_updates']} {need.unit} (≥ {need.minimum}){field}", r["seeds"],
        ))  # fmt: skip
    return Table(
        "errors", f"final {metric}: ours beside the paper's",
        ("model", "method", paper_column, f"ours {metric}", "ours validation", "effective epochs",
         "own updates (least over seeds; minimum)", "seeds"),
        tuple(rows),
        f"Ours: mean ± std over seeds at the end of the run ({C.protocol_text(config)}). The paper's numbers "
        "are at its own budget and data (the column header says which).",
    )  # fmt: skip


def width_table(results: dict[str, Any]) -> Table:
    """The width of every method's solutions: Local Entropy per γ, its excess, γ*, the sharpnesses."""
    w = results["width"]
    rows = []
    for r in results["runs"]:
        if "local_entropy" not in r:
            continue
        rows.append((
            r["model"], r["method"], fmt(r["width_loss"]),
            " / ".join(f"{v:.4g}" for v in r["local_entropy"]),
            " / ".join(f"{v:.3g}" for v in r["local_entropy_excess"]), f"{r['gamma_star']:g}",
            _mean_std(r["adaptive_top"], r["adaptive_top_std"], r["seeds"]),
            _mean_std(r["hessian_top"], r["hessian_top_std"], r["seeds"]), fmt(r["hessian_trace"]),
        ))  # fmt: skip
    return Table(
        "width", "the width of the solutions (Thesis Def. 4.20) and the sharpness beside it",
        ("model", "method", "f(x)", f"f_γ(x), γ = {' / '.join(f'{g:g}' for g in w['gammas'])}",
         "excess f_γ − f", f"γ* (ε = {w['epsilon']:g}, median)", "adaptive sharpness λ_max(THT)",
         "λ_max(H)", "tr H"),
        tuple(rows),
        f"Means over seeds at the solutions (reference weights x, batch-norm statistics recomputed), on "
        f"{w['samples']} training samples in evaluation mode. Local Entropy f_γ(x) = −log E_(y~N(x,γI)) "
        "e^(−f(y)) (Thesis eq. (4.11), β = 1): lower is wider (Def. 4.20); γ* the largest grid γ with "
        "f_γ − f ≤ ε at it and below (eq. (4.38)). Adaptive sharpness: λ_max of diag(|x|) H diag(|x|) "
        "(Kwon et al. 2021), invariant to the rescalings that leave a batch-normalized or ReLU network's "
        "function unchanged; λ_max(H) and tr H are not (Dinh et al. 2017). The papers report none of these "
        "numbers.",
    )  # fmt: skip


def width_summary(config: dict[str, Any]) -> dict[str, Any]:
    """What ``results.json`` says about the width measurements (the grid, ε, samples)."""
    return {"gammas": [float(g) for g in config["width_gammas"]], "epsilon": config["width_epsilon"],
            "samples": config["width_samples"]}  # fmt: skip


def _mean_std(mean_: float, std: float, seeds: int) -> str:
    return f"{mean_:.4g} ± {std:.2g}" if seeds > 1 else f"{mean_:.4g}"


def margin_from(values: Sequence[float]) -> float:
    """The relative spread max/min − 1 of numbers a paper calls similar (the equivalence margin)."""
    return max(values) / min(values) - 1.0


def fmt_updates(n: float) -> str:
    return f"{n:,.0f}" if math.isfinite(n) else str(n)
