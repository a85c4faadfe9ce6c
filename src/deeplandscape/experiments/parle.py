"""``parle``: Parle against Elastic-SGD, Entropy-SGD and SGD on lenet, with full and split data.

Thesis Ch. 5. Parle (eq. (5.8)) runs n replicas of Entropy-SGD coupled elastically to a master. Table 5.1
(§5.4.2, lenet on MNIST): Parle 0.44 ± 0.01% against 0.48–0.50% for Elastic-SGD, Entropy-SGD and SGD;
§5.4.5 / Fig. 5.6: SGD and Elastic-SGD reach near-zero training error while Parle (and Entropy-SGD) stay
above it and generalize better; §5.5 / Table 5.2: with the training set split between the replicas (n = 3
with 50% each, n = 6 with 25% each; :func:`~deeplandscape.optim.parle.split_dataset`) Parle and Elastic-SGD
stay far better than SGD on a random subset of one replica's size, and Parle better than SGD on all the data.

Methods (Thesis §5.3.2, §5.4: η = 0.1, Nesterov momentum 0.9, L = 25, γ0 = 100, ρ0 = 1, scoping
s = 1/(2B) with B mini-batches per pass over the whole training set, eq. (5.10), clipped at γ ≥ 1, ρ ≥ 0.1):

- **Parle** (registry ``parle``) over n replicas; ``variant=authors`` runs the authors' published code
  instead (:mod:`deeplandscape.optim.parle`), with the script's initial coupling 1/ρ0 = 0.01·L·n;
- **Elastic-SGD** (``elastic-sgd``, eq. (5.4)) over the same n replicas, scoping of ρ (§5.4.3);
- **Entropy-SGD** in the normalization of eq. (5.5): Parle with n = 1 and ρ = ∞ (§5.3.1 (iii));
- **SGD** with Nesterov momentum; with split data, **SGD on a random subset** of one replica's size (Table
  5.2's starred column).

**Budget: the papers' accounting.** Tables 5.1–5.2 compare at wall-clock time with one replica per GPU
(Remark 5.4), so every replica gets the whole budget: every run, of every method, makes the same number
of steps (mini-batch gradients per replica), ``epochs`` passes' worth over the whole training set
(``epochs_per_replica``: passes over its own data Ξ^a). The shared-budget view (the work of all n replicas
counted together, n times fewer steps per replica) is read off the same runs at 1/n of their budget, where
each is measured too: the second table. (Remark 5.4 also runs SGD and Entropy-SGD data-parallel on the same
GPUs, which brings the comparison nearer the shared view where that parallelism is efficient; for lenet it
is not, the Remark says, and each method of Table 5.1 ran its own schedule to its end.) Learning-rate drops
(``lr_drops``, §5.4.2): ÷10 after 30, 60, 90 passes for SGD (and Elastic-SGD, for which the Thesis gives
none), once after the second epoch of Parle and Entropy-SGD, whose epoch in the authors' code is B outer
steps, i.e. L passes.

**Each method's own updates.** Parle and Entropy-SGD update x^a once per L steps. A comparison needs
:data:`MIN_OUTER_STEPS` of them: the outer step's Nesterov momentum μ = 0.9 (Remark 5.3) forgets its start
as μ^K, and K ≥ 29 brings that below 5%; fewer, and the reference weights have not yet moved at their own
speed. And their scoping must act: γ_k (and ρ_k of Parle and Elastic-SGD) at most :data:`SCOPE_LEFT` of its
start at the end, i.e. shrunk by 10% (the threshold the comparisons of Ch. 3–4 use for Entropy-SGD's scope).
Eq. (5.10) shrinks γ by (1 − 1/(2B)) per outer step, e^(−1/(2L)) per pass over the data whatever B, so 10%
takes 2L·ln(1/0.9) ≈ 5.3 passes per replica (e, as the Thesis's runs reach, 2L = 50: the paper scale only).
Where a guard fails, the comparison is not decidable, with a warning.

Replicas in one process (:mod:`deeplandscape.experiments._replicas`): every replica its own mini-batch
gradient per step, from its own data Ξ^a, batch order and dropout masks; the master (``reference_weights()``)
is what is evaluated.

One replica per process: ``torchrun`` runs the same training with
:class:`~deeplandscape.optim.distributed.DistributedParle` / ``DistributedElasticSGD``, process a being
replica a, and gives the numbers of the single-process run (to the rounding of the ``all_reduce``)::

    torchrun --standalone --nproc-per-node 3 -m deeplandscape.experiments.parle --method parle \\
        --fraction 0.5 --seed 0 --out /tmp/parle-n3 [--scale quick|default|reference|paper] [KEY=VALUE ...]

writes ``config.json``, ``run.json`` (curves, final errors, Hessian at the master) and ``master.pt`` into a
new or empty ``--out``, held with a lock for the run, every input validated before anything is written.

The rest of the protocol (initializations, evaluation with batch-norm statistics recomputed, Hessian top
eigenvalue and trace at the solution) is :mod:`deeplandscape.experiments._compare`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deeplandscape import nets
from deeplandscape.experiments import _compare as C
from deeplandscape.experiments import _replicas as R
from deeplandscape.experiments._plot import plt, save
from deeplandscape.experiments.claims import (
    HELD,
    NOT_HELD,
    UNDECIDABLE,
    Claim,
    NotChecked,
    PaperNumber,
    RunData,
    Statistic,
    Undecidable,
    Verdict,
    all_of,
    decide,
    error_difference,
    paired_difference,
    require_above_chance,
    require_at_most,
    require_updates,
)
from deeplandscape.experiments.spec import (
    SCALES,
    ConfigError,
    Diagnostic,
    Experiment,
    Figure,
    Param,
    Table,
    Unit,
    UnitResult,
    resolve_config,
)
from deeplandscape.optim.parle import VARIANTS
from deeplandscape.rundir import (
    RunDirError,
    atomic_write,
    discard,
    entries,
    hold,
    save_npz,
    with_version,
    write_json,
)

METHODS = {
    "parle": C.Method("Parle", "parle", {"lr": 0.1, "gamma": 100.0, "rho": 1.0}),
    "elastic-sgd": C.Method("Elastic-SGD", "elastic-sgd", {"lr": 0.1, "rho": 1.0}),
    "entropy-sgd": C.Method("Entropy-SGD", "parle", {"lr": 0.1, "gamma": 100.0, "rho": math.inf}),
    "sgd": C.Method("SGD", "sgd", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
}
REPLICATED = ("parle", "elastic-sgd")
SPLIT_METHODS = ("parle", "elastic-sgd", "sgd")
SUBSET_LABEL = "SGD (random subset)"
FULL = "full data"
CLASSES = 10

# Thesis Table 5.1 (lenet on MNIST, n = 6 in the table, three replicas in §5.4.2's text) and Table 5.2
# (allcnn on CIFAR-10): validation error % (mean, std over 3 runs) and wall-clock minutes.
PAPER_TABLE_5_1 = {
    "Parle": PaperNumber((0.44, 0.01), "Thesis Table 5.1", "4.24 min"),
    "Elastic-SGD": PaperNumber((0.48, 0.01), "Thesis Table 5.1", "5 min"),
    "Entropy-SGD": PaperNumber((0.49, 0.01), "Thesis Table 5.1", "6.5 min"),
    "SGD": PaperNumber((0.5, 0.01), "Thesis Table 5.1", "5.6 min"),
}
PAPER_TABLE_5_2 = {
    FULL: {"Parle": (5.18, 0.06, 75), "Elastic-SGD": (5.76, 0.07, 44), "SGD": (6.15, 0.05, 37)},
    "n = 3, 50% each": {"Parle": (5.89, 0.01, 34), "Elastic-SGD": (6.51, 0.09, 36), "SGD": (7.86, 0.12, 20)},
    "n = 6, 25% each": {"Parle": (6.08, 0.05, 19), "Elastic-SGD": (6.8, 0.05, 20), "SGD": (10.96, 0.17, 10)},
}
# Remark 5.3: Nesterov momentum 0.9 on the outer step; μ^K ≤ 5% from K = 29 outer steps on.
OUTER_MOMENTUM, FORGOTTEN = 0.9, 0.05
MIN_OUTER_STEPS = math.ceil(math.log(FORGOTTEN) / math.log(OUTER_MOMENTUM))
SCOPE_LEFT = 0.9  # scoping acts: γ_k/γ0 (ρ_k/ρ0) at most this at the end of a run (ours; module docstring)
SGD_DROPS = (30, 60, 90)  # §5.4.2: SGD's learning rate ÷10 at these epochs (passes)
PARLE_DROPS = (2,)  # §5.4.2: Parle's and Entropy-SGD's after the second epoch (of L passes each)


def _tie(paper: PaperNumber) -> float:
    """The paper's standard deviation of a method relative to its error: a difference below it is a tie."""
    mean, std = paper.value
    return std / mean


PARAMS = {
    **C.mnist_reference_params(5000),
    "models": Param("str", "lenet-parle", "networks, comma-separated (lenet-parle: Thesis §5.4.2)"),
    "methods": Param("str", ",".join(METHODS), "full-data methods (" + ", ".join(METHODS) + ")"),
    "replicas": Param("int", 3, "replicas n of Parle and Elastic-SGD on the full data (Thesis §5.4.2: three)",
                      quick=2, paper=6, low=2),
    "splits": Param("str", "3:0.5", "split-data settings n:fraction, comma-separated (none: skip; fraction "
                    "1/n: a disjoint partition)", quick="none",
                    paper="3:0.5,6:0.25"),
    "split_methods": Param("str", ",".join(SPLIT_METHODS), "methods of the split settings (sgd: SGD on a "
                           "random subset of one replica's size)"),
    "variant": Param("str", "thesis", "Parle's update: thesis (eq. (5.8)) or authors (their published code)",
                     choices=VARIANTS),
    "L": Param("int", 25, "inner steps per outer step of Parle and Entropy-SGD (Thesis §5.3.2)", quick=2,
               low=1),
    "epochs": Param("float", 20.0, "budget per replica: passes over the whole training set (every replica "
                    "the whole budget, Thesis Remark 5.4)", quick=1.0, reference=6.0, paper=125.0, low=0.01),
    "budget_factor": Param("float", 1.0, "multiplies epochs (the diagnostics' longer runs)", low=0.01),
    "batch_size": Param("int", 32, "mini-batch size (Thesis: 128)", paper=128, low=1),
    "lr_drops": Param("bool", True, "the Thesis's learning-rate drops (÷10; §5.4.2)"),
    "seeds": Param("int", 2, "seeds per method (same initializations, batch orders)", quick=1, reference=3,
                   paper=3, low=1),
    "lr_factors": Param("floats", [1.0], "step sizes tried per method (× its default; the Thesis uses one "
                        "setting for all)", low=1e-6),
    "evaluations": Param("int", 2, "evaluation points along training (besides the shared-budget point)",
                         quick=1, reference=1, paper=10, low=1),
    "hessian_samples": Param("int", 64, "training samples for the Hessian at the solution", quick=16,
                             paper=1024, low=1),
    "hessian_probes": Param("int", 5, "Hutchinson probes for the Hessian trace", quick=2, paper=100, low=1),
}  # fmt: skip


# ---------------------------------------------------------------------------------------------- methods


def method_for(config: dict[str, Any], key: str, n_train: int, replicas: int = 1) -> C.Method:
    """``METHODS[key]`` with the run's L, variant and scoping s = 1/(2B), B = ⌈N / batch⌉ (eq. (5.10))."""
    if key not in METHODS:
        raise ValueError(f"Invalid method: {key!r} (known: {', '.join(METHODS)})")
    method = METHODS[key]
    kwargs = dict(method.kwargs)
    if method.optimizer in ("parle", "elastic-sgd"):
        kwargs["batches_per_epoch"] = math.ceil(n_train / config["batch_size"])
    if method.optimizer == "parle":
        kwargs["L"] = config["L"]
    if key == "parle" and config["variant"] == "authors":
        # parle_mpi.py line 33: the initial elastic coupling is 0.01·L·n
        kwargs.update(variant="authors", rho=1.0 / (0.01 * config["L"] * replicas))
    return dataclasses.replace(method, kwargs=kwargs)


def drop_milestones(config: dict[str, Any], key: str, n_train: int) -> list[int]:
    """The steps after which the learning rate drops ÷10 (Thesis §5.4.2): SGD (and Elastic-SGD) after
    30, 60, 90 passes; Parle and Entropy-SGD after their second epoch of L passes."""
    if not config["lr_drops"]:
        return []
    passes = [e * config["L"] for e in PARLE_DROPS] if METHODS[key].optimizer == "parle" else SGD_DROPS
    per_pass = math.ceil(n_train / config["batch_size"])
    return [round(p * per_pass) for p in passes]


def _hessian(config: dict[str, Any], model: nn.Module, d: C.Tensors, seed: int) -> tuple[float, float]:
    return C.hessian_at_solution(
        model, d, samples=config["hessian_samples"], probes=config["hessian_probes"], seed=seed
    )


def setting_name(replicas: int, fraction: float) -> str:
    """ "full data" or "n = 3, 50% each"."""
    return FULL if fraction == 1.0 else f"n = {replicas}, {100 * fraction:g}% each"


def run_method(
    config: dict[str, Any], model_name: str, key: str, *, replicas: int, fraction: float, d: C.Tensors
) -> UnitResult:
    """:func:`~deeplandscape.experiments._compare.search_then_seeds` over
    :func:`~deeplandscape.experiments._replicas.train_replicas`: the step
    size searched on the validation split with seed 0 (full data only), then ``config['seeds']`` seeds,
    each measured by the Hessian at its master. Arrays: the curves, ``extra_*`` (steps, outer steps, γ_k,
    ρ_k at every measured point), ``train_per_sample`` (seeds, training samples)."""
    n = replicas if key in REPLICATED else 1  # a single-model method in a split setting: one model
    method = method_for(config, key, len(d.y), n)
    train_wrong: dict[tuple[int, float], np.ndarray] = {}

    milestones = drop_milestones(config, key, len(d.y))

    def one(seed: int, factor: float) -> C.Run:
        run = R.train_replicas(config, model_name, method, replicas=n, fraction=fraction, seed=seed,
                               factor=factor, d=d, milestones=milestones)  # fmt: skip
        train_wrong[seed, factor] = run.train_wrong
        return run.curves, run.models[0], run.optimizer, run.extras

    factors = None if fraction == 1.0 else [1.0]
    arrays, best, model = C.search_then_seeds(config, one, d, factors=factors)
    arrays["train_per_sample"] = np.stack([train_wrong[s, best] for s in range(config["seeds"])])
    label = method.label if fraction == 1.0 or key in REPLICATED else SUBSET_LABEL
    return UnitResult(
        values={
            "model": model_name, "method": label, "key": key, "tuned": method.tune, "factor": best,
            "parameters": nets.parameter_count(model), "replicas": n,
            "data_fraction": fraction, "setting": setting_name(replicas, fraction),
            "gamma0": _finite_or_none(method.kwargs.get("gamma", math.inf)),
            "rho0": _finite_or_none(method.kwargs.get("rho", math.inf)),
        },
        arrays=arrays,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------- units


def parse_splits(text: str) -> list[tuple[int, float]]:
    """``"3:0.5,6:0.25"`` → [(3, 0.5), (6, 0.25)]; ``""``/``"none"`` → []."""
    if text.strip().lower() in ("", "none"):
        return []
    out = []
    for item in text.split(","):
        try:
            n_text, f_text = item.split(":")
            n, f = int(n_text), float(f_text)
        except ValueError:
            raise ValueError(f"Invalid splits: {text!r} (expected n:fraction, comma-separated)") from None
        if n < 2 or not (1.0 / n <= f < 1.0 or math.isclose(f * n, 1.0, rel_tol=1e-9)):
            raise ValueError(f"Invalid splits: {item!r} (need n ≥ 2 and 1/n ≤ fraction < 1)")
        out.append((n, f))
    return out


def units(config: dict[str, Any]) -> list[Unit]:
    models = C.names(config, "models", nets.available())
    full = C.names(config, "methods", list(METHODS))
    splits = parse_splits(config["splits"])
    split_methods = C.names(config, "split_methods", SPLIT_METHODS) if splits else []
    out = []
    for model in models:
        for key in full:
            n = config["replicas"] if key in REPLICATED else 1
            out.append(
                Unit(f"{model}-{key}", {"model": model, "method": key, "replicas": n, "fraction": 1.0})
            )
        for n, f in splits:
            for key in split_methods:
                out.append(Unit(f"{model}-{key}-n{n}-{100 * f:g}pct",
                                {"model": model, "method": key, "replicas": n, "fraction": f}))  # fmt: skip
    return out


def run_unit(config: dict[str, Any], unit: Unit, seed: int) -> UnitResult:
    p = unit.params
    d = C.load_images(config)
    return run_method(config, p["model"], p["method"], replicas=p["replicas"], fraction=p["fraction"], d=d)


# ---------------------------------------------------------------------------------------------- results


def array_key(model: str, method: str, setting: str, name: str) -> str:
    """The name of a run's array in ``parle.npz``."""
    return f"{model}_{method}_{setting}_{name}".replace(" ", "")


def _std(a: np.ndarray) -> float:
    return float(a.std(ddof=1)) if a.size > 1 else 0.0


def run_row(r: UnitResult, config: dict[str, Any], n_train: int) -> dict[str, Any]:
    """One ``runs`` row of ``results.json``: at the end of the budget (every replica the whole budget) and,
    under ``shared``, at 1/n of it (the work of all replicas counted together)."""
    a, v = r.arrays, r.values
    n = v["replicas"]
    _, marks = R.measured_marks(config["evaluations"], n)
    shared = marks.index(max(marks) // n)
    size = n_train if v["data_fraction"] == 1.0 else math.ceil(v["data_fraction"] * n_train)

    def at(index: int) -> dict[str, Any]:
        steps = a["extra_steps"][:, index]
        return {
            "error_mean": float(a["test_error"][:, index].mean()),
            "error_std": _std(a["test_error"][:, index]),
            "val_error_mean": float(a["val_error"][:, index].mean()),
            "train_error_mean": float(a["train_error"][:, index].mean()),
            "train_error_std": _std(a["train_error"][:, index]),
            "train_loss_mean": float(a["train_loss"][:, index].mean()),
            "steps_per_replica": float(steps.mean()),
            "effective_epochs": float(a["effective_epochs"][:, index].mean()),
            "epochs_per_replica": float(steps.mean()) * config["batch_size"] / size,
            "outer_steps": float(a["extra_outer_steps"][:, index].min()),
            "gamma": _finite_or_none(a["extra_gamma"][:, index].mean()),
            "rho": _finite_or_none(a["extra_rho"][:, index].mean()),
        }

    return {
        "model": v["model"], "method": v["method"], "key": v["key"], "setting": v["setting"],
        "replicas": n, "data_fraction": v["data_fraction"], "seeds": int(a["test_error"].shape[0]),
        **at(-1),
        "test_wrong": int(a["test_per_sample"].sum()), "test_trials": int(a["test_per_sample"].size),
        "wall_seconds": float(a["wall_seconds"][:, -1].mean()),
        "hessian_top": float(a["hessian_top"].mean()), "hessian_top_std": _std(a["hessian_top"]),
        "hessian_trace": float(a["hessian_trace"].mean()), "hessian_trace_std": _std(a["hessian_trace"]),
        "tuned": v["tuned"], "factor": v["factor"], "gamma0": v.get("gamma0"), "rho0": v.get("rho0"),
        "shared": at(shared),
    }  # fmt: skip


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _settings(results: Sequence[UnitResult]) -> list[str]:
    return list(dict.fromkeys(r.values["setting"] for r in results))


def _band(ax, x: np.ndarray, y: np.ndarray, label: str) -> None:
    mean = y.mean(0)
    std = y.std(0, ddof=1) if y.shape[0] > 1 else np.zeros_like(mean)
    (line,) = ax.plot(x, mean, label=label, marker=".")
    ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2)


def plot_settings(results: Sequence[UnitResult], x_of: Callable[[UnitResult], np.ndarray], xlabel: str):
    """Test error (top) and training error (bottom, Fig. 5.6) against ``x_of(result)``, one column per data
    setting, one line per (model, method)."""
    settings = _settings(results)
    fig, axes = plt.subplots(2, len(settings), figsize=(4.6 * len(settings), 7), squeeze=False)
    several = len({r.values["model"] for r in results}) > 1
    for col, setting in enumerate(settings):
        for r in (r for r in results if r.values["setting"] == setting):
            label = r.values["method"] + (f" ({r.values['model']})" if several else "")
            x = x_of(r)
            _band(axes[0, col], x, r.arrays["test_error"], label)
            _band(axes[1, col], x, r.arrays["train_error"], label)
        axes[0, col].set_title(setting)
        for row, ylabel in enumerate(("test error %", "training error %")):
            axes[row, col].set_ylabel(ylabel)
            axes[row, col].set_xlabel(xlabel)
            axes[row, col].set_yscale("symlog", linthresh=1.0)
            axes[row, col].set_ylim(bottom=0)
        axes[0, col].legend(fontsize=7)
    fig.tight_layout()
    return fig


def finalize(config: dict[str, Any], results: list[UnitResult], out: Path) -> dict[str, Any]:
    n_train = len(C.load_images(config).y)
    save_npz(
        out / "parle.npz",
        **{array_key(r.values["model"], r.values["method"], r.values["setting"], k): a
           for r in results for k, a in r.arrays.items()},
    )  # fmt: skip
    per_pass = math.ceil(n_train / config["batch_size"])
    steps = "steps per replica, in passes over the training set (= wall clock, a replica per device)"
    save(plot_settings(results, lambda r: r.arrays["extra_steps"].mean(0) / per_pass, steps),
         out / "error.png")  # fmt: skip
    save(plot_settings(results, lambda r: r.arrays["effective_epochs"].mean(0),
                       "effective epochs (the gradients of all replicas)"),
         out / "error_shared.png")  # fmt: skip
    save(plot_settings(results, lambda r: r.arrays["wall_seconds"].mean(0),
                       "wall-clock seconds (training only, replicas one after another)"),
         out / "wall_clock.png")  # fmt: skip
    rows = [run_row(r, config, n_train) for r in results]
    return {
        "data": config["data"], "n_train": n_train, "min_outer_steps": MIN_OUTER_STEPS,
        "scope_left": SCOPE_LEFT, "classes": CLASSES,
        "runs": rows,
    }  # fmt: skip


# ---------------------------------------------------------------------------------------------- tables


def _cell(row: dict[str, Any] | None, key: str = "error_mean") -> str:
    if row is None:
        return "–"
    std = {"error_mean": "error_std", "train_error_mean": "train_error_std"}[key]
    return f"{row[key]:.2f} ± {row[std]:.2f}"


def _find(results: dict[str, Any], method: str, setting: str) -> dict[str, Any] | None:
    rows = [r for r in results["runs"] if r["method"] == method and r["setting"] == setting]
    return rows[0] if rows else None


def _scale_note(results: dict[str, Any], config: dict[str, Any]) -> str:
    data = "digits up-sampled to 28×28" if results["data"] == "digits" else "MNIST"
    test = "the 10,000 test images" if results["data"] == "mnist" else "the held-out digits"
    return (
        f"Ours: {config['models']}, {data}, {results['n_train']} training images, errors on {test}, mean ± "
        f"std over {config['seeds']} seeds (same initializations and batch orders for every method), batch "
        f"{config['batch_size']}, L = {config['L']}, Parle variant {config['variant']}, "
        f"{config['epochs'] * config['budget_factor']:g} passes over the training set per replica; the "
        "paper's: lenet on MNIST, validation error over 3 runs, batch 128, one replica per GPU."
    )


def tables(results: dict[str, Any], config: dict[str, Any]) -> list[Table]:
    def rows_5_1(view: str) -> tuple[tuple[Any, ...], ...]:
        out = []
        for label, paper in PAPER_TABLE_5_1.items():
            r = _find(results, label, FULL)
            r = r if r is None or view == "end" else {**r, **r["shared"]}
            out.append((
                label, str(paper), paper.note, _cell(r), _cell(r, "train_error_mean"),
                "–" if r is None else f"{r['steps_per_replica']:.0f}",
                "–" if r is None or r["key"] not in ("parle", "entropy-sgd") else f"{r['outer_steps']:.0f}",
                "–" if r is None or r["gamma"] is None else f"{r['gamma']:.3g}",
                "–" if r is None or r["rho"] is None else f"{r['rho']:.3g}",
            ))  # fmt: skip
        return tuple(out)

    header = ("method", "paper: val. error %", "paper: wall clock", "ours: test error %",
              "ours: training error %", "steps per replica", "outer steps", "γ at the end",
              "ρ at the end")  # fmt: skip
    note = _scale_note(results, config)
    split_rows = []
    for setting, entries_ in PAPER_TABLE_5_2.items():
        for label, (e, s, t) in entries_.items():
            ours = SUBSET_LABEL if (label == "SGD" and setting != FULL) else label
            r = _find(results, ours, setting)
            outer = "–" if r is None or r["key"] != "parle" else f"{r['outer_steps']:.0f}"
            passes = "–" if r is None else f"{r['epochs_per_replica']:.3g}"
            split_rows.append((setting, ours, f"{e:g} ± {s:g}", f"{t} min", _cell(r), passes, outer))
    split_header = ("setting", "method", "paper: val. error % (allcnn, CIFAR-10)", "paper: wall clock",
                    "ours: test error %", "ours: passes per replica over its data",
                    "outer steps")  # fmt: skip
    runs_header = ("model", "method", "setting", "replicas", "seeds", "test error %", "training error %",
                   "training loss", "steps per replica", "passes per replica", "outer steps", "Hessian top",
                   "Hessian trace")  # fmt: skip
    runs = tuple(
        (r["model"], r["method"], r["setting"], r["replicas"], r["seeds"], _cell(r),
         _cell(r, "train_error_mean"), r["train_loss_mean"], f"{r['steps_per_replica']:.0f}",
         f"{r['epochs_per_replica']:.3g}", f"{r['outer_steps']:.0f}", r["hessian_top"], r["hessian_trace"])
        for r in results["runs"]
    )  # fmt: skip
    accounting = (
        " Every method makes the same number of steps per replica (Remark 5.4: one replica per device, "
        f"compared at wall-clock time); outer steps: updates of x^a (at least {MIN_OUTER_STEPS} for a "
        "comparison)."
    )
    shared = (
        " The same runs measured at 1/n of their budget, where the n replicas together have computed as "
        "many gradients as SGD at the end (the single-replica methods at their end): the comparison at equal "
        "computation, as with SGD and Entropy-SGD data-parallel on the n devices at perfect efficiency "
        "(Remark 5.4)."
    )
    split = (
        " The paper's network is allcnn on CIFAR-10, ours lenet; with split data SGD is SGD on a random "
        "subset of one replica's size, with as many steps as every other run. Settings run: "
        f"{config['splits']} (n:fraction; – where not run at this scale)."
    )
    detail = (
        " Outer steps: Parle's and Entropy-SGD's updates of x^a (steps for the other methods). Hessian of "
        "the training loss on the first training samples at the master."
    )
    return [
        Table("table-5-1", "Thesis Table 5.1: every replica the whole budget (the papers' accounting)",
              header, rows_5_1("end"), note + accounting),
        Table("table-5-1-shared", "Table 5.1 with the budget shared: the gradients of all n replicas counted "
              "together", header, rows_5_1("shared"), note + shared),
        Table("table-5-2", "Thesis Table 5.2: the data split between the replicas", split_header,
              tuple(split_rows), note + split),
        Table("runs", "every run", runs_header, runs, note + detail),
    ]  # fmt: skip


# ---------------------------------------------------------------------------------------------- claims


def _row(run: RunData, method: str, setting: str) -> dict[str, Any]:
    row = _find(run.results, method, setting)
    if row is None:
        raise NotChecked(f"the run has no {method} with {setting}")
    return row


def _wrong(run: RunData, row: dict[str, Any], name: str = "test_per_sample") -> np.ndarray:
    arrays = run.arrays("parle.npz")
    key = array_key(row["model"], row["method"], row["setting"], name)
    if key not in arrays:
        raise NotChecked(f"parle.npz has no {key}")
    return arrays[key]


def _guards(run: RunData, *rows: dict[str, Any]) -> None:
    """Every method left chance; Parle and Entropy-SGD made their minimum of outer steps."""
    for r in rows:
        label = f"{r['method']} ({r['setting']})"
        require_above_chance(label, r["test_wrong"], r["test_trials"], run.results["classes"])
        if r["key"] in ("parle", "entropy-sgd"):
            require_updates(label, r["outer_steps"], run.results["min_outer_steps"], "outer steps")
        for name, symbol in (("gamma", "γ"), ("rho", "ρ")):
            start, end = r.get(f"{name}0"), r.get(name)
            if start is not None and end is not None:
                what = f"{symbol}_k/{symbol}0 (its scoping, eq. (5.10))"
                require_at_most(label, end / start, run.results["scope_left"], what)


def _lower_or_tie(stat: Statistic, tie: float) -> Verdict:
    """``held`` when the difference (method − other) is shown negative; ``did not hold`` when shown above the
    tie band ``tie`` (the method worse by more than the paper's own standard deviation); otherwise not
    decidable."""
    lower = decide(stat, below=0.0)
    if lower.status == HELD:
        return lower
    worse = decide(stat, below=tie)
    if worse.status == NOT_HELD:
        return worse
    reason = (
        f"the {stat.level:.0%} interval [{stat.ci_low:.3g}, {stat.ci_high:.3g}] of {stat.name} is neither "
        f"below 0 nor above the tie band {tie:.3g} (the paper's standard deviation)"
    )
    return Verdict(UNDECIDABLE, lower.evidence, reason, statistic=stat)


def _error_vs(run: RunData, a: dict[str, Any], b: dict[str, Any], name: str = "test_per_sample") -> Statistic:
    what = "test" if name == "test_per_sample" else "training"
    label = f"{what} error of {a['method']} ({a['setting']}) − {b['method']} ({b['setting']}), points"
    return error_difference(_wrong(run, a, name), _wrong(run, b, name), label)


Pair = Callable[[dict[str, Any], dict[str, Any]], Verdict]  # a decision on two runs' rows


def _cases(run: RunData, cases: Sequence[tuple[str, dict[str, Any], dict[str, Any], Pair]]) -> Verdict:
    """One verdict from a verdict per case ``(label, row a, row b, decision(a, b))``, each behind the guards
    of its two rows (a guard that fires makes that case not decidable); warnings said once."""
    parts = []
    for label, a, b, decision in cases:
        try:
            _guards(run, a, b)
            parts.append((label, decision(a, b)))
        except Undecidable as raised:
            warnings = (raised.reason,) if raised.guard else ()
            parts.append((label, Verdict(UNDECIDABLE, raised.evidence, raised.reason, warnings=warnings)))
    verdict = all_of(parts)
    return dataclasses.replace(verdict, warnings=tuple(dict.fromkeys(verdict.warnings)))


def _decide_lowest(run: RunData) -> Verdict:
    parle = _row(run, "Parle", FULL)

    def lower(a: dict[str, Any], b: dict[str, Any]) -> Verdict:
        return _lower_or_tie(_error_vs(run, a, b), _tie(PAPER_TABLE_5_1[b["method"]]) * b["error_mean"])

    others = ("Elastic-SGD", "Entropy-SGD", "SGD")
    return _cases(run, [(label, parle, _row(run, label, FULL), lower) for label in others])


def _decide_underfits(run: RunData) -> Verdict:
    parle = _row(run, "Parle", FULL)

    def above(a: dict[str, Any], b: dict[str, Any]) -> Verdict:
        return decide(_error_vs(run, a, b, "train_per_sample"), above=0.0)

    return _cases(run, [(label, parle, _row(run, label, FULL), above) for label in ("SGD", "Elastic-SGD")])


def _split_settings(run: RunData) -> list[str]:
    settings = [r["setting"] for r in run.results["runs"] if r["setting"] != FULL]
    if not settings:
        raise NotChecked("the run has no split-data setting (splits=none)")
    return list(dict.fromkeys(settings))


def _decide_split_subset(run: RunData) -> Verdict:
    def below(a: dict[str, Any], b: dict[str, Any]) -> Verdict:
        return decide(_error_vs(run, a, b), below=0.0)

    return _cases(run, [
        (f"{label}, {setting}", _row(run, label, setting), _row(run, SUBSET_LABEL, setting), below)
        for setting in _split_settings(run) for label in ("Parle", "Elastic-SGD")
    ])  # fmt: skip


def _decide_split_full(run: RunData) -> Verdict:
    mean, std, _ = PAPER_TABLE_5_2[FULL]["SGD"]

    def lower(a: dict[str, Any], b: dict[str, Any]) -> Verdict:
        return _lower_or_tie(_error_vs(run, a, b), std / mean * b["error_mean"])

    sgd = _row(run, "SGD", FULL)
    return _cases(run, [(s, _row(run, "Parle", s), sgd, lower) for s in _split_settings(run)])


def _decide_flatter(run: RunData) -> Verdict:
    parle, sgd = _row(run, "Parle", FULL), _row(run, "SGD", FULL)
    arrays = run.arrays("parle.npz")
    tops = [arrays[array_key(r["model"], r["method"], r["setting"], "hessian_top")] for r in (parle, sgd)]
    _guards(run, parle, sgd)
    stat = paired_difference(tops[0], tops[1], "λ_max(Parle) − λ_max(SGD) at the solution")
    return decide(stat, below=0.0)


TIES = ", ".join(f"{label} {100 * _tie(p):.1f}%" for label, p in PAPER_TABLE_5_1.items() if label != "Parle")
PAIRED = (
    "paired difference of errors in points: union of the t interval over seeds (same initialization and "
    "batch order) and the bootstrap interval over the test images, 95%"
)
GUARDS = (
    "guards: every method's accuracy shown above twice chance; Parle and Entropy-SGD at least "
    f"{MIN_OUTER_STEPS} outer steps (their outer momentum 0.9 forgotten to 5%); γ_k and ρ_k at most "
    f"{SCOPE_LEFT:g} of their start (scoping acts)"
)

CLAIMS = (
    Claim(
        "parle.lowest-error",
        f"“Parle obtains a validation error of {PAPER_TABLE_5_1['Parle']}% with three replicas as compared "
        "to about 0.48-0.5% on lenet with SGD, Entropy-SGD and Elastic-SGD”",
        "Thesis §5.4.2, Table 5.1",
        f"for each of Elastic-SGD, Entropy-SGD and SGD, every replica the whole budget, the {PAIRED}, of "
        "Parle − it lies below 0; it did not hold if it lies above the tie band: the paper's standard "
        f"deviation of that method relative to its error ({TIES}, Table 5.1) times our error of it — the "
        f"paper's differences (0.04–0.06 points) are a few of its standard deviations; {GUARDS}",
        _decide_lowest,
        shown_in="table-5-1",
    ),
    Claim(
        "parle.underfits",
        "“while SGD and Elastic-SGD always converge to near-zero training errors, both Entropy-SGD and "
        "Parle have much larger training error and do not over-fit as much”",
        "Thesis §5.4.5, Fig. 5.6 (CIFAR-10/100, SVHN; here lenet)",
        "the paired difference of training errors Parle − SGD and Parle − Elastic-SGD (training images of "
        f"the run, union of t over seeds and bootstrap over the images) lies above 0; {GUARDS}",
        _decide_underfits,
        shown_in="error.png",
    ),
    Claim(
        "parle.split-beats-subset",
        "with the data split between the replicas, Parle and Elastic-SGD stay far better than SGD with "
        "access to a random subset of one replica's size: “as expected, this is much worse than its error "
        "with access to the full dataset” (Table 5.2: 5.89/6.51 against 7.86 at n = 3, 6.08/6.80 against "
        "10.96 at n = 6)",
        "Thesis §5.5, Table 5.2",
        f"for each split setting, the {PAIRED}, of Parle − SGD on a subset and of Elastic-SGD − SGD on a "
        f"subset lies below 0; {GUARDS}",
        _decide_split_subset,
        shown_in="table-5-2",
    ),
    Claim(
        "parle.split-beats-full-sgd",
        "“quite surprisingly, Parle obtains better error than SGD in spite of the dataset being split "
        "between the replicas” (Table 5.2: 5.89 and 6.08 against SGD's 6.15 ± 0.05 on all the data)",
        "Thesis §5.5, Table 5.2",
        f"for each split setting, the {PAIRED}, of Parle (split) − SGD (all the data) lies below 0; it did "
        "not hold if it lies above the tie band, the paper's standard deviation of SGD relative to its "
        f"error (0.05/6.15, Table 5.2) times our error of SGD; {GUARDS}",
        _decide_split_full,
        shown_in="table-5-2",
    ),
    Claim(
        "parle.flatter",
        "Parle's master lies in a flatter region than SGD's solution (lower top Hessian eigenvalue); Ch. 5 "
        "argues from training error only, and λ_max of a batch-normalized network is not scale-invariant",
        "beyond the papers (Thesis Ch. 5 motivates Parle by wide minima)",
        "the paired t interval over seeds of λ_max(Parle) − λ_max(SGD) at the solutions lies below 0; "
        f"{GUARDS}",
        _decide_flatter,
        beyond_papers=True,
        shown_in="runs",
    ),
)

FIGURES = (
    Figure(
        "error.png",
        "test error (top) and training error (bottom) against steps per replica, one column per data setting",
        "Thesis Fig. 5.3, Table 5.1 (lenet, MNIST): validation error against wall-clock time, Parle "
        f"{PAPER_TABLE_5_1['Parle']}%, Elastic-SGD {PAPER_TABLE_5_1['Elastic-SGD']}%, Entropy-SGD "
        f"{PAPER_TABLE_5_1['Entropy-SGD']}%, SGD {PAPER_TABLE_5_1['SGD']}%; Fig. 5.6: the training error of "
        "Parle and Entropy-SGD stays above SGD's and Elastic-SGD's.",
    ),
    Figure(
        "error_shared.png",
        "the same against effective epochs (the gradients of all replicas counted together)",
        "Thesis §3.3.2 counts effective epochs; Ch. 5 compares at wall-clock time with one replica per GPU.",
    ),
    Figure(
        "wall_clock.png",
        "the same against our wall clock (one process, the replicas one after another)",
        "Thesis Table 5.1, 5.2: error at wall-clock time in minutes (Parle n = 6: 4.24 min on MNIST).",
    ),
)

DIAGNOSTICS = (
    Diagnostic(
        "parle-longer", "parle", ("budget_factor=3", "splits=none"),
        ("parle.lowest-error", "parle.underfits"),
        "With three times the steps per replica (three times Parle's outer steps), is Parle's error the "
        "lowest, and does SGD's training error fall below Parle's?",
    ),
    Diagnostic(
        "parle-authors-code", "parle", ("variant=authors", "splits=none"),
        ("parle.lowest-error", "parle.underfits"),
        "Does the authors' published Parle (new x^a from the last inner iterate, z never reset, couplings "
        "growing to caps) reach the lowest error and under-fit where eq. (5.8) does not?",
    ),
    Diagnostic(
        "parle-split-longer", "parle", ("budget_factor=3", "methods=sgd"),
        ("parle.split-beats-subset", "parle.split-beats-full-sgd"),
        "With three times the steps per replica, do Parle and Elastic-SGD on split data beat SGD on a "
        "subset, and Parle beat SGD on all the data?",
    ),
)  # fmt: skip


EXPERIMENT = Experiment(
    name="parle",
    description="Parle vs Elastic-SGD / Entropy-SGD / SGD, full and split data, each replica the full budget",
    reproduces="Thesis §5.4–5.5, Table 5.1, Table 5.2, Fig. 5.3, Fig. 5.6",
    params=PARAMS,
    units=units,
    run_unit=run_unit,
    finalize=finalize,
    tables=tables,
    figures=FIGURES,
    claims=CLAIMS,
    diagnostics=DIAGNOSTICS,
    order=430,
)


# ---------------------------------------------------------------------------------------------- torchrun


@contextlib.contextmanager
def held_out(out: Path) -> Iterator[Path]:
    """Hold ``out`` (new or empty, :class:`~deeplandscape.rundir.RunDirError` otherwise) for the block,
    checked again once held; on an error inside the block remove what was written (and ``out`` if this
    made it)."""
    check_new_or_empty(out)
    existed = out.exists()
    with hold(out):
        check_new_or_empty(out)
        try:
            yield out
        except BaseException:
            discard(out, ["config.json", "run.json", "master.pt"], created=not existed)
            raise


def check_new_or_empty(out: Path) -> None:
    """:class:`~deeplandscape.rundir.RunDirError` unless ``out`` does not exist or is an empty directory."""
    names = entries(out)
    if names:
        shown = ", ".join(names[:5])
        raise RunDirError(f"Invalid --out: {out} is not empty ({shown}); choose a new or empty directory")


def main(argv: Sequence[str] | None = None) -> None:
    """One replica per process (``torchrun --nproc-per-node n -m deeplandscape.experiments.parle …``).

    Trains one seed of Parle / Elastic-SGD with :class:`~deeplandscape.optim.distributed.DistributedParle`
    (``DistributedElasticSGD``) over gloo, n = the number of processes. Every argument, the configuration and
    ``--out`` (new or empty) are checked on every process before the process group starts; rank 0 then holds
    ``--out`` for the run and writes ``config.json``, ``run.json`` and ``master.pt`` atomically. A bad input
    exits with status 2 and a message, before anything is written.
    """
    parser = argparse.ArgumentParser(
        prog="python -m deeplandscape.experiments.parle", description=main.__doc__
    )
    parser.add_argument("--method", choices=REPLICATED, default="parle")
    parser.add_argument("--model", default="lenet-parle")
    parser.add_argument("--fraction", type=float, default=1.0, help="data per replica (1: full data)")
    parser.add_argument("--seed", type=int, default=0, help="run seed (initialization, data split, batches)")
    parser.add_argument("--factor", type=float, default=1.0, help="step size × the method's default")
    parser.add_argument("--scale", choices=SCALES, default="default")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("overrides", nargs="*", help="KEY=VALUE of the experiment's parameters")
    args = parser.parse_args(argv)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    try:
        config = _check_args(args, world)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    torch.set_num_threads(args.threads)
    try:
        _run_distributed(args, config)
    except RunDirError as error:  # --out taken by another process meanwhile
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def _check_args(args: argparse.Namespace, world: int) -> dict[str, Any]:
    """The configuration, after checking every argument (``ValueError`` naming the bad one)."""
    if args.model not in nets.available():
        raise ValueError(f"Invalid --model: {args.model!r} (known: {', '.join(nets.available())})")
    if args.seed < 0:
        raise ValueError(f"Invalid --seed: {args.seed} (must be ≥ 0)")
    if not (math.isfinite(args.factor) and args.factor > 0):
        raise ValueError(f"Invalid --factor: {args.factor} (must be a finite number > 0)")
    if args.threads < 1:
        raise ValueError(f"Invalid --threads: {args.threads} (must be ≥ 1)")
    try:
        config = resolve_config(EXPERIMENT, args.scale, args.seed, list(args.overrides))
    except ConfigError as error:
        raise ValueError(str(error)) from None
    if args.fraction != 1.0:
        try:
            R.replica_subsets(max(world, 1) * 2, world, args.fraction, 0)
        except ValueError as error:
            raise ValueError(f"Invalid --fraction: {args.fraction} ({error})") from None
    check_new_or_empty(args.out)
    return config


def _run_distributed(args: argparse.Namespace, config: dict[str, Any]) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo")
    try:
        rank, n = dist.get_rank(), dist.get_world_size()
        with held_out(args.out) if rank == 0 else contextlib.nullcontext() as out:
            ok = torch.tensor([1])
            dist.all_reduce(ok)  # every rank past the checks, rank 0 holding --out
            if rank == 0:
                write_json(out / "config.json", with_version({
                    **config, "command": "torchrun parle", "method": args.method, "model": args.model,
                    "fraction": args.fraction, "factor": args.factor, "replicas": n,
                }))  # fmt: skip
            d = C.load_images(config)
            method = method_for(config, args.method, len(d.y), n)
            run = R.train_replicas(
                config, args.model, method, replicas=n, fraction=args.fraction, seed=args.seed,
                factor=args.factor, d=d, milestones=drop_milestones(config, args.method, len(d.y)),
                distributed=True,
            )  # fmt: skip
            run.optimizer.synchronize()
            if rank == 0:
                with C.reference(run.optimizer):
                    top, tr = _hessian(config, run.models[0], d, args.seed)
                master = [t.detach().clone() for t in run.optimizer.master_weights()]
                atomic_write(out / "master.pt", lambda tmp: torch.save(master, tmp))
                curves = {k: getattr(run.curves, k).tolist() for k in C.Curves.__dataclass_fields__}
                write_json(
                    out / "run.json",
                    {"model": args.model, "method": method.label, "replicas": n,
                     "data_fraction": args.fraction, "seed": args.seed, "factor": args.factor,
                     "steps": run.stepper.steps, "curves": curves, "extras": run.extras,
                     "error": curves["test_error"][-1], "train_error": curves["train_error"][-1],
                     "hessian_top": top, "hessian_trace": tr,
                     "config": json.loads(json.dumps(config))},
                )  # fmt: skip
            dist.barrier()
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
