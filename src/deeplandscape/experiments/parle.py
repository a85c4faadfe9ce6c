"""``parle``: Parle against Elastic-SGD, Entropy-SGD, SGD (and SAM) on lenet, with full and split data.

Thesis Ch. 5. Parle (eq. (5.8)) runs n replicas of Entropy-SGD coupled elastically to a master; Table 5.1
reports, on MNIST with lenet (§5.4.2, n = 6), validation errors of 0.44 ± 0.01% for Parle against
0.48–0.50% for Elastic-SGD, Entropy-SGD and SGD; §5.4.5 / Fig. 5.6: SGD and Elastic-SGD reach near-zero
training error while Parle (and Entropy-SGD) stay well above it and generalize better. §5.5 / Table 5.2:
with the training set split between the replicas (n = 3 replicas with 50% each, n = 6 with 25% each;
:func:`~deeplandscape.optim.parle.split_dataset`), Parle is still better than SGD on the full data, and
SGD on a random subset of the same size is much worse.

Methods (hyperparameters of Thesis §5.3.2, §5.4: η = 0.1, Nesterov momentum 0.9, γ0 = 100, ρ0 = 1, scoping
s = 1/(2B) with B mini-batches per epoch of the whole training set, eq. (5.10)):

- **Parle** (registry ``parle``) over n replicas, L inner steps per outer step;
- **Elastic-SGD** (``elastic-sgd``, eq. (5.4)) over the same n replicas, scoping of ρ (§5.4.3);
- **Entropy-SGD** in the normalization of Thesis eq. (5.5): Parle with n = 1 (§5.3.1: the degenerate case
  n = 1 of Parle is Entropy-SGD), same η, γ, L, scoping;
- **SGD** with Nesterov momentum, and **SAM** (ρ = 0.05 around the same SGD) as the modern flat-minimum
  baseline;
- with split data, **SGD on a random subset** of the replicas' size (Table 5.2's starred column).

Replicas in one process. Parle and Elastic-SGD take a list of n parameter iterables, one per model
replica; :class:`ReplicaStepper` gives every replica its own mini-batch gradient per ``step()``: replica a
draws its batches from its own data Ξ^a in the order of a generator seeded ``seed + 1000·a`` (replica 0 on
the full data thus visits the batches of every single-model method) and draws its dropout masks from its
own random state. A step costs n × batch per-sample gradients, and that is what it counts: **effective
epochs count the work of all replicas** (Thesis §3.3.2), so with ``replica_budget=shared`` (default) the
replicated methods take n times fewer steps than SGD at the same budget; ``replica_budget=each`` gives
every replica the whole budget (the paper's comparison, where the replicas run on n devices at once and
curves are plotted against wall-clock time). ``epochs_per_replica`` is the number of passes each replica
made over its own data Ξ^a. The master (``reference_weights()``) is what is evaluated.

One replica per process: ``torchrun`` runs the same training with
:class:`~deeplandscape.optim.distributed.DistributedParle` / ``DistributedElasticSGD``, process a being
replica a (same initialization, data, batch order, dropout masks), and gives the numbers of the
single-process run (to the rounding of the ``all_reduce``)::

    torchrun --standalone --nproc-per-node 3 -m deeplandscape.experiments.parle --method parle \\
        --fraction 0.5 --seed 0 --out /tmp/parle-n3 [--scale quick|default|paper] [KEY=VALUE ...]

writes ``run.json`` (curves, final errors, Hessian at the master) and ``master.pt`` (the master weights) on
rank 0; the replicas are as many as the processes.

The rest of the protocol (initializations, search budget, evaluation with batch-norm statistics recomputed,
Hessian top eigenvalue and trace at the solution) is :mod:`deeplandscape.experiments._compare`. The split
settings use each method's default step size (Thesis §5.5 keeps the hyperparameters of the full-data runs).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deeplandscape import nets, optim
from deeplandscape.experiments import _compare as C
from deeplandscape.experiments._common import table
from deeplandscape.experiments._plot import plt, save
from deeplandscape.experiments.spec import SCALES, Experiment, Param, Unit, UnitResult, resolve_config
from deeplandscape.optim.parle import split_dataset
from deeplandscape.rundir import save_npz, write_json

METHODS = {
    "parle": C.Method("Parle", "parle", {"lr": 0.1, "gamma": 100.0, "rho": 1.0}),
    "elastic-sgd": C.Method("Elastic-SGD", "elastic-sgd", {"lr": 0.1, "rho": 1.0}),
    "entropy-sgd": C.Method("Entropy-SGD", "parle", {"lr": 0.1, "gamma": 100.0, "rho": math.inf}),
    "sgd": C.Method("SGD", "sgd", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    "sam": C.Method("SAM", "sam", {"rho": 0.05}, base="sgd",
                    base_kwargs={"lr": 0.1, "momentum": 0.9, "nesterov": True}),
}  # fmt: skip
REPLICATED = ("parle", "elastic-sgd")
SPLIT_METHODS = ("parle", "elastic-sgd", "sgd")
SUBSET_LABEL = "SGD (random subset)"
REPLICA_SEED_STRIDE = 1000

# Thesis Table 5.1 (lenet on MNIST, n = 6) and Table 5.2 (allcnn on CIFAR-10): validation error %, minutes.
PAPER_TABLE_5_1 = {"Parle": (0.44, 0.01, 4.24), "Elastic-SGD": (0.48, 0.01, 5.0),
                   "Entropy-SGD": (0.49, 0.01, 6.5), "SGD": (0.5, 0.01, 5.6)}  # fmt: skip
PAPER_TABLE_5_2 = {
    "full data": {"Parle": (5.18, 0.06, 75), "Elastic-SGD": (5.76, 0.07, 44), "SGD": (6.15, 0.05, 37)},
    "n = 3, 50% each": {"Parle": (5.89, 0.01, 34), "Elastic-SGD": (6.51, 0.09, 36), "SGD": (7.86, 0.12, 20)},
    "n = 6, 25% each": {"Parle": (6.08, 0.05, 19), "Elastic-SGD": (6.8, 0.05, 20), "SGD": (10.96, 0.17, 10)},
}

PARAMS = C.data_params(
    models=Param("str", "lenet-parle", "networks, comma-separated (lenet-parle: Thesis §5.4.2)"),
    methods=Param("str", ",".join(METHODS), "full-data methods (" + ", ".join(METHODS) + ")"),
    replicas=Param("int", 3, "replicas n of Parle and Elastic-SGD on the full data", paper=6, low=2),
    splits=Param("str", "3:0.5,6:0.25", "split-data settings n:fraction, comma-separated (none: skip; "
                 "fraction 1/n: a disjoint partition)"),
    split_methods=Param("str", ",".join(SPLIT_METHODS), "methods of the split settings (sgd: SGD on a "
                        "random subset of one replica's size)"),
    L=Param("int", 10, "inner steps per outer step of Parle and Entropy-SGD", quick=2, paper=25, low=1),
    replica_budget=Param("str", "shared", "shared: the effective-epoch budget counts all replicas' "
                         "gradients; each: every replica gets the whole budget", choices=("shared", "each"),
                         paper="each"),
    seeds=Param("int", 2, "seeds per method (same initializations, batch orders)", quick=1, paper=3, low=1),
    lr_factors=Param("floats", [1.0], "step sizes tried per method on the full data (× its default)",
                     paper=[0.5, 1.0, 2.0], low=1e-6),
    evaluations=Param("int", 4, "evaluation points along training", quick=3, paper=10, low=1),
    hessian_samples=Param("int", 64, "training samples for the Hessian at the solution", paper=1024, low=1),
    hessian_probes=Param("int", 5, "Hutchinson probes for the Hessian trace", quick=4, paper=100, low=1),
)  # fmt: skip


# ---------------------------------------------------------------------------------------------- methods


def method_for(config: dict[str, Any], key: str, n_train: int) -> C.Method:
    """``METHODS[key]`` with the run's L and scoping s = 1/(2B), B = ⌈N / batch⌉ (Thesis eq. (5.10))."""
    if key not in METHODS:
        raise ValueError(f"Invalid method: {key!r} (known: {', '.join(METHODS)})")
    method = METHODS[key]
    kwargs = dict(method.kwargs)
    if method.optimizer in ("parle", "elastic-sgd"):
        kwargs["batches_per_epoch"] = math.ceil(n_train / config["batch_size"])
    if method.optimizer == "parle":
        kwargs["L"] = config["L"]
    return dataclasses.replace(method, kwargs=kwargs)


def build_replicated(
    method: C.Method, params: Any, factor: float, seed: int, *, distributed: bool = False
) -> torch.optim.Optimizer:
    """Parle / Elastic-SGD over ``params`` (a list of n replicas' parameters, or the one replica of this
    process with ``distributed=True``) with the tuned knob × ``factor``; Parle's noise seed is ``seed``."""
    name = ("distributed-" if distributed else "") + method.optimizer
    kwargs = dict(method.kwargs)
    if method.tune not in kwargs:
        raise ValueError(f"Invalid method {method.label!r}: the tuned knob {method.tune!r} has no default")
    kwargs[method.tune] = kwargs[method.tune] * factor
    if method.optimizer == "parle":
        kwargs["seed"] = seed
    return optim.get(name)(params, **kwargs)


# ---------------------------------------------------------------------------------------------- data


def replica_subsets(n_samples: int, replicas: int, fraction: float, seed: int) -> list[Tensor]:
    """The training indices Ξ^a of each replica (Thesis §5.5).

    ``fraction`` 1: every replica has the whole set; 1/n (to 1e-9): a disjoint partition; in between: the
    overlapping windows of :func:`~deeplandscape.optim.parle.split_dataset` (each of ⌈fraction·N⌉
    samples, covering the set), cut from a permutation seeded ``seed``.
    """
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
        raise ValueError(f"Invalid replicas: {replicas} (must be an integer ≥ 1)")
    if fraction == 1.0:
        return [torch.arange(n_samples) for _ in range(replicas)]
    disjoint = math.isclose(fraction * replicas, 1.0, rel_tol=1e-9)
    if not disjoint and not 1.0 / replicas <= fraction <= 1.0:
        raise ValueError(f"Invalid fraction: {fraction} (allowed range [1/n, 1] = [{1 / replicas:g}, 1])")
    subsets = split_dataset(
        torch.utils.data.TensorDataset(torch.arange(n_samples)),
        replicas,
        fraction=None if disjoint else fraction,
        seed=seed,
    )
    return [torch.tensor(s.indices, dtype=torch.long) for s in subsets]


def replica_seed(seed: int, replica: int) -> int:
    """The batch-order and dropout seed of replica a: ``seed + 1000·a`` (replica 0 shares the run's)."""
    return seed + REPLICA_SEED_STRIDE * replica


class ReplicaStepper:
    """One step of a replicated optimizer: a mini-batch gradient for every local replica, then ``step()``.

    Replica a (global index ``local[i]`` for local model i) draws batches of ``batch_size`` from its indices
    ``subsets[a]`` in the seeded order of :func:`~deeplandscape.experiments._compare.batch_order` (seed
    :func:`replica_seed`), and its dropout masks from its own random state, so that the replicas' batches and
    masks do not depend on how the replicas are spread over processes. A call returns the per-sample
    gradients computed over **all** n replicas, Σ_a |batch_a| (n × batch except at the end of a pass):
    in a distributed run every process counts the same total without communicating, since batch sizes
    depend only on |Ξ^a|. The batch passed by :func:`~deeplandscape.experiments._compare.train` is not used.

    ``seen[i]`` marks the training samples local replica i has drawn so far.
    """

    def __init__(
        self,
        models: Sequence[nn.Module],
        optimizer: torch.optim.Optimizer,
        d: C.Tensors,
        subsets: Sequence[Tensor],
        local: Sequence[int],
        *,
        batch_size: int,
        seed: int,
    ) -> None:
        if len(models) != len(local):
            raise ValueError(f"Invalid models: {len(models)} models for {len(local)} local replicas")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"Invalid batch_size: {batch_size} (must be an integer ≥ 1)")
        self.models, self.optimizer, self.d = list(models), optimizer, d
        self.sizes = [len(s) for s in subsets]
        self.batch_size = batch_size
        self.subsets = [subsets[a] for a in local]
        self.orders = [C.batch_order(len(subsets[a]), batch_size, replica_seed(seed, a)) for a in local]
        self.rng = [torch.Generator().manual_seed(replica_seed(seed, a)).get_state() for a in local]
        self.seen = [torch.zeros(len(d.y), dtype=torch.bool) for _ in local]
        self.steps = 0

    def batch_length(self, replica: int, step: int) -> int:
        """|batch| of replica a at step t: ``batch_size`` but for the last batch of a pass over Ξ^a."""
        size = self.sizes[replica]
        per_pass = math.ceil(size / self.batch_size)
        return self.batch_size if step % per_pass < per_pass - 1 else size - self.batch_size * (per_pass - 1)

    def __call__(self, x: Tensor, y: Tensor) -> int:
        outer = torch.get_rng_state()
        try:
            self.optimizer.zero_grad(set_to_none=True)
            replicas = zip(self.models, self.subsets, self.orders, strict=True)
            for i, (model, subset, order) in enumerate(replicas):
                idx = subset[next(order)]
                self.seen[i][idx] = True
                torch.set_rng_state(self.rng[i])
                loss = F.cross_entropy(model(self.d.x[idx]), self.d.y[idx])
                loss.backward()
                self.rng[i] = torch.get_rng_state()
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise FloatingPointError(
                        f"the training loss of replica {i} became {value} ({type(self.optimizer).__name__})"
                    )
        finally:
            torch.set_rng_state(outer)
        self.optimizer.step()
        count = sum(self.batch_length(a, self.steps) for a in range(len(self.sizes)))
        self.steps += 1
        return count


# ---------------------------------------------------------------------------------------------- training


@dataclass(frozen=True)
class ReplicaRun:
    """One replicated training run: curves of the master, the local models, the optimizer, the stepper."""

    curves: C.Curves
    models: list[nn.Module]
    optimizer: torch.optim.Optimizer
    stepper: ReplicaStepper


def train_replicas(
    config: dict[str, Any],
    model_name: str,
    method: C.Method,
    *,
    replicas: int,
    fraction: float,
    seed: int,
    factor: float,
    d: C.Tensors,
    distributed: bool = False,
) -> ReplicaRun:
    """Train ``method`` over n replicas, all starting from the network of ``seed``, measuring the master.

    In one process (default) the n replicas are n models of this process; with ``distributed=True`` this
    process is replica ``rank`` of an initialized process group of n processes.
    """
    if distributed:
        import torch.distributed as dist

        world, rank = dist.get_world_size(), dist.get_rank()
        if world != replicas:
            raise ValueError(f"Invalid replicas: {replicas} (the process group has {world} processes)")
        local = [rank]
    else:
        local = list(range(replicas))
    subsets = replica_subsets(len(d.y), replicas, fraction, seed)
    models = [nets.get(model_name, seed=seed) for _ in local]
    params = models[0].parameters() if distributed else [m.parameters() for m in models]
    optimizer = build_replicated(method, params, factor, seed, distributed=distributed)
    stepper = ReplicaStepper(models, optimizer, d, subsets, local, batch_size=config["batch_size"], seed=seed)

    def measure() -> dict[str, float]:
        with C.reference(optimizer):
            return C.evaluate(models[0], d)

    epochs = config["epochs"] * (replicas if config["replica_budget"] == "each" else 1)
    curves = C.train(
        stepper, measure, d, epochs=epochs, batch_size=config["batch_size"], seed=seed,
        evaluations=config["evaluations"],
    )  # fmt: skip
    return ReplicaRun(curves, models, optimizer, stepper)


def _curve_arrays(runs: Sequence[C.Curves]) -> dict[str, np.ndarray]:
    return {k: np.stack([getattr(c, k) for c in runs]) for k in C.Curves.__dataclass_fields__}


def _hessian(config: dict[str, Any], model: nn.Module, d: C.Tensors, seed: int) -> tuple[float, float]:
    return C.hessian_at_solution(
        model, d, samples=config["hessian_samples"], probes=config["hessian_probes"], seed=seed
    )


def setting_name(replicas: int, fraction: float) -> str:
    """ "full data" or "n = 3, 50% each"."""
    return "full data" if fraction == 1.0 else f"n = {replicas}, {100 * fraction:g}% each"


def run_replicated(
    config: dict[str, Any],
    model_name: str,
    method: C.Method,
    *,
    replicas: int,
    fraction: float,
    d: C.Tensors,
    search: bool,
) -> UnitResult:
    """Like :func:`~deeplandscape.experiments._compare.run_method` for n replicas: step-size search on the
    validation split with seed 0 (if ``search``), then ``config['seeds']`` seeds, measured at the master."""

    def one(seed: int, factor: float) -> C.Run:
        run = train_replicas(
            config, model_name, method, replicas=replicas, fraction=fraction, seed=seed, factor=factor, d=d
        )
        return run.curves, run.models[0], run.optimizer, {}

    factors = None if search else [1.0]
    arrays, best, model = C.search_then_seeds(config, one, d, factors=factors)
    sizes = sum(len(s) for s in replica_subsets(len(d.y), replicas, fraction, 0))
    arrays["epochs_per_replica"] = arrays["effective_epochs"] * len(d.y) / sizes
    return UnitResult(
        values={
            "model": model_name, "method": method.label, "tuned": method.tune, "factor": best,
            "parameters": nets.parameter_count(model), "replicas": replicas,
            "data_fraction": fraction, "setting": setting_name(replicas, fraction),
        },
        arrays=arrays,
    )  # fmt: skip


def random_subset(d: C.Tensors, fraction: float, seed: int) -> C.Tensors:
    """The first ⌈fraction·N⌉ samples of a permutation seeded ``seed`` (validation and test unchanged)."""
    n = len(d.y)
    idx = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[: math.ceil(fraction * n)]
    return dataclasses.replace(d, x=d.x[idx], y=d.y[idx])


def run_subset(
    config: dict[str, Any], model_name: str, method: C.Method, *, replicas: int, fraction: float, d: C.Tensors
) -> UnitResult:
    """SGD on a random subset of one replica's size (Thesis Table 5.2), a new subset per seed.

    It gets the same number of per-sample gradients as the other methods (``epochs`` × N, N the whole
    training set), i.e. ``epochs``·N/m passes over its m samples; its training error is on its subset.
    """
    runs, tops, traces = [], [], []
    for seed in range(config["seeds"]):
        sub = random_subset(d, fraction, seed)
        scale = len(sub.y) / len(d.y)
        model = nets.get(model_name, seed=seed)
        optimizer = method.build(model.parameters(), 1.0, seed)
        curves = C.train(
            C.single_model_step(model, optimizer), lambda m=model, s=sub: C.evaluate(m, s), sub,
            epochs=config["epochs"] / scale, batch_size=config["batch_size"], seed=seed,
            evaluations=config["evaluations"],
        )  # fmt: skip
        runs.append(dataclasses.replace(curves, effective_epochs=curves.effective_epochs * scale))
        top, tr = _hessian(config, model, sub, seed)
        tops.append(top)
        traces.append(tr)
    arrays = _curve_arrays(runs)
    arrays["epochs_per_replica"] = arrays["effective_epochs"] * len(d.y) / len(sub.y)
    arrays.update(hessian_top=np.array(tops), hessian_trace=np.array(traces),
                  search_val_error=np.zeros(1))  # fmt: skip
    return UnitResult(
        values={
            "model": model_name, "method": SUBSET_LABEL, "tuned": method.tune, "factor": 1.0,
            "parameters": nets.parameter_count(model), "replicas": 1, "data_fraction": fraction,
            "setting": setting_name(replicas, fraction),
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
            params = {"model": model, "method": key, "replicas": n, "fraction": 1.0}
            out.append(Unit(f"{model}-{key}", params))
        for n, f in splits:
            for key in split_methods:
                out.append(Unit(f"{model}-{key}-n{n}-{100 * f:g}pct",
                                {"model": model, "method": key, "replicas": n, "fraction": f}))  # fmt: skip
    return out


def run_unit(config: dict[str, Any], unit: Unit, seed: int) -> UnitResult:
    with torch.random.fork_rng():
        torch.manual_seed(seed)  # the single-model methods' dropout masks: a function of the unit alone
        return _run_unit(config, unit)


def _run_unit(config: dict[str, Any], unit: Unit) -> UnitResult:
    p = unit.params
    d = C.load_images(config)
    method = method_for(config, p["method"], len(d.y))
    if p["method"] in REPLICATED:
        return run_replicated(
            config, p["model"], method, replicas=p["replicas"], fraction=p["fraction"], d=d,
            search=p["fraction"] == 1.0,
        )  # fmt: skip
    if p["fraction"] != 1.0:
        return run_subset(config, p["model"], method, replicas=p["replicas"], fraction=p["fraction"], d=d)
    r = C.run_method(config, p["model"], method, d=d)
    values = dict(r.values, replicas=1, data_fraction=1.0, setting=setting_name(1, 1.0))
    return UnitResult(values, dict(r.arrays, epochs_per_replica=r.arrays["effective_epochs"]))


# ---------------------------------------------------------------------------------------------- results


def run_rows(results: Sequence[UnitResult]) -> list[dict[str, Any]]:
    """:func:`~deeplandscape.experiments._compare.run_rows` plus replicas, data fraction, setting, the final
    training error (mean, std; on the data the method trained on) and passes per replica over its data."""
    rows = []
    for row, r in zip(C.run_rows(results), results, strict=True):
        a = r.arrays
        rows.append(
            dict(
                row,
                replicas=int(r.values["replicas"]),
                data_fraction=float(r.values["data_fraction"]),
                setting=r.values["setting"],
                train_error=float(a["train_error"][:, -1].mean()),
                train_error_std=C._std(a["train_error"][:, -1]),
                epochs_per_replica=float(a["epochs_per_replica"][:, -1].mean()),
            )
        )
    return rows


def _settings(results: Sequence[UnitResult]) -> list[str]:
    return list(dict.fromkeys(r.values["setting"] for r in results))


def _band(ax, x: np.ndarray, y: np.ndarray, label: str) -> None:
    mean = y.mean(0)
    std = y.std(0, ddof=1) if y.shape[0] > 1 else np.zeros_like(mean)
    (line,) = ax.plot(x, mean, label=label, marker=".")
    ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2)


def plot_settings(results: Sequence[UnitResult], xkey: str, xlabel: str):
    """Validation error (top) and training error (bottom, Fig. 5.6) against ``xkey``, one column per
    data setting, one line per (model, method)."""
    settings = _settings(results)
    fig, axes = plt.subplots(2, len(settings), figsize=(4.6 * len(settings), 7), squeeze=False)
    for col, setting in enumerate(settings):
        for r in (r for r in results if r.values["setting"] == setting):
            label = f"{r.values['method']}" + (f" ({r.values['model']})" if len(_models(results)) > 1 else "")
            x = r.arrays[xkey].mean(0)
            _band(axes[0, col], x, r.arrays["val_error"], label)
            _band(axes[1, col], x, r.arrays["train_error"], label)
        axes[0, col].set_title(setting)
        for row, ylabel in enumerate(("validation error %", "training error %")):
            axes[row, col].set_ylabel(ylabel)
            axes[row, col].set_xlabel(xlabel)
            axes[row, col].set_yscale("symlog", linthresh=1.0)
        axes[0, col].legend(fontsize=7)
    fig.tight_layout()
    return fig


def _models(results: Sequence[UnitResult]) -> list[str]:
    return list(dict.fromkeys(r.values["model"] for r in results))


def _paper_text(rows: Sequence[dict[str, Any]]) -> str:
    ours = {(r["setting"], r["method"]): r for r in rows}

    def cell(setting: str, method: str) -> str:
        r = ours.get((setting, method))
        return "—" if r is None else f"{r['error_mean']:.2f} ± {r['error_std']:.2f}"

    t51 = table(
        ["method", "paper: val. error % (lenet, MNIST, n = 6)", "paper: minutes", "ours: test error %"],
        [[m, f"{e:g} ± {s:g}", t, cell("full data", m)] for m, (e, s, t) in PAPER_TABLE_5_1.items()],
    )
    split_rows = [
        [setting, m, f"{e:g} ± {s:g}", t,
         cell(setting, SUBSET_LABEL if (m == "SGD" and setting != "full data") else m)]
        for setting, entries in PAPER_TABLE_5_2.items()
        for m, (e, s, t) in entries.items()
    ]  # fmt: skip
    t52 = table(["setting", "method", "paper: val. error % (allcnn, CIFAR-10)", "paper: minutes",
                 "ours: test error %"], split_rows)  # fmt: skip
    return (
        "**Thesis Table 5.1** (MNIST, lenet; ours: same network on the data above, n = replicas of the "
        "full-data setting):\n\n" + t51 + "\n\n**Thesis Table 5.2** (data split between replicas; the "
        "paper's network is allcnn on CIFAR-10, ours lenet; SGD with split data is SGD on a random subset "
        "of one replica's size):\n\n" + t52 + "\n\nThe claims: Parle reaches a lower error than the other "
        "methods, and (§5.4.5, Fig. 5.6) a *higher* training error than SGD and Elastic-SGD — it under-fits "
        "and generalizes better; with split data Parle and Elastic-SGD stay close to the full-data errors "
        "while SGD on a subset is much worse."
    )


def finalize(config: dict[str, Any], results: list[UnitResult], out: Path) -> tuple[dict, str]:
    rows = run_rows(results)
    save_npz(
        out / "parle.npz",
        **{
            f"{r.values['model']}_{r.values['method']}_{r.values['setting']}_{k}".replace(" ", ""): a
            for r in results
            for k, a in r.arrays.items()
        },
    )
    save(plot_settings(results, "effective_epochs", "effective epochs (all replicas)"), out / "error.png")
    save(plot_settings(results, "epochs_per_replica", "epochs per replica (passes over its data)"),
         out / "error_per_replica.png")  # fmt: skip
    save(plot_settings(results, "wall_seconds", "wall-clock seconds (training only, one process)"),
         out / "wall_clock.png")  # fmt: skip
    budget = (
        "the budget counts the per-sample gradients of all replicas (a step of n replicas costs n × batch)"
        if config["replica_budget"] == "shared"
        else "every replica gets the whole budget (as on n devices at once; effective epochs count all "
        "replicas, so the replicated methods show n × the budget)"
    )
    protocol = (
        C.protocol_text(config) + f" Parle and Elastic-SGD: n = {config['replicas']} replicas on the full "
        f"data, and the split settings {config['splits']!r} (n:fraction, default step sizes); {budget}; "
        f"Parle and Entropy-SGD (= Parle with n = 1) take L = {config['L']} inner steps per outer step. "
        "Errors are the master's. Wall clock: all replicas run in one process, one after the other. Same "
        "numbers with one replica per process: `torchrun --standalone --nproc-per-node N -m "
        "deeplandscape.experiments.parle --method parle --fraction F --out DIR`."
    )
    runs = table(
        ["model", "method", "setting", "replicas", "data fraction", "seeds", "test error %", "± std",
         "val error %", "train error %", "± std", "effective epochs", "epochs per replica", "wall s",
         "Hessian top", "Hessian trace", "tuned knob × default"],
        [[r["model"], r["method"], r["setting"], r["replicas"], r["data_fraction"], r["seeds"],
          r["error_mean"], r["error_std"], r["val_error_mean"], r["train_error"], r["train_error_std"],
          r["effective_epochs"], r["epochs_per_replica"], r["wall_seconds"], r["hessian_top"],
          r["hessian_trace"], f"{r['tuned']} × {r['factor']:g}"] for r in rows],
    )  # fmt: skip
    body = [
        protocol,
        runs,
        _paper_text(rows),
        "![error against effective epochs](error.png)",
        "![error against epochs per replica](error_per_replica.png)",
        "![error against wall-clock time](wall_clock.png)",
    ]
    return {"data": config["data"], "runs": rows}, "\n\n".join(body)


EXPERIMENT = Experiment(
    name="parle",
    description="Parle vs Elastic-SGD / Entropy-SGD / SGD / SAM, full and split data, training error",
    reproduces="Thesis §5.4–5.5, Table 5.1, Table 5.2, Fig. 5.6",
    params=PARAMS,
    units=units,
    run_unit=run_unit,
    finalize=finalize,
    order=430,
)


# ---------------------------------------------------------------------------------------------- torchrun


def main(argv: Sequence[str] | None = None) -> None:
    """One replica per process (``torchrun --nproc-per-node n -m deeplandscape.experiments.parle …``).

    Trains one seed of Parle / Elastic-SGD with :class:`~deeplandscape.optim.distributed.DistributedParle`
    (``DistributedElasticSGD``) over gloo, n = the number of processes; rank 0 writes ``run.json`` and
    ``master.pt`` into ``--out``.
    """
    import torch.distributed as dist

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
    torch.set_num_threads(args.threads)
    config = resolve_config(EXPERIMENT, args.scale, 0, list(args.overrides))
    dist.init_process_group("gloo")
    try:
        d = C.load_images(config)
        n = dist.get_world_size()
        method = method_for(config, args.method, len(d.y))
        run = train_replicas(
            config, args.model, method, replicas=n, fraction=args.fraction, seed=args.seed,
            factor=args.factor, d=d, distributed=True,
        )  # fmt: skip
        run.optimizer.synchronize()
        if dist.get_rank() == 0:
            with C.reference(run.optimizer):
                top, tr = _hessian(config, run.models[0], d, args.seed)
            args.out.mkdir(parents=True, exist_ok=True)
            torch.save([t.detach().clone() for t in run.optimizer.master_weights()], args.out / "master.pt")
            curves = {k: getattr(run.curves, k).tolist() for k in C.Curves.__dataclass_fields__}
            write_json(
                args.out / "run.json",
                {"model": args.model, "method": method.label, "replicas": n, "data_fraction": args.fraction,
                 "seed": args.seed, "factor": args.factor, "steps": run.stepper.steps, "curves": curves,
                 "error": curves["test_error"][-1], "train_error": curves["train_error"][-1],
                 "hessian_top": top, "hessian_trace": tr, "config": json.loads(json.dumps(config))},
            )  # fmt: skip
        dist.barrier()
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
