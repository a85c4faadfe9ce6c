"""Training n coupled replicas (Parle, Elastic-SGD) or one model, every replica for the whole budget, as
the ``parle`` experiment does it (Thesis Ch. 5).

Replicas in one process: :class:`ReplicaStepper` gives every replica its own mini-batch gradient per step;
replica a draws its batches from its own data Ξ^a (:func:`replica_subsets`, Thesis §5.5) in the order of a
generator seeded ``seed + 1000·a`` and its dropout masks from its own random state (replica 0 on the full
data thus visits the batches of a single-model run of the same seed). With ``distributed=True`` this process
is one replica of a ``torch.distributed`` process group and gives the numbers of the single-process run.
:func:`train_replicas` measures the master (``reference_weights()``) at :func:`measured_marks`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deeplandscape import nets, optim
from deeplandscape.experiments import _compare as C
from deeplandscape.optim.parle import split_dataset

REPLICA_SEED_STRIDE = 1000


def build_optimizer(
    method: C.Method, params: Any, factor: float, seed: int, *, distributed: bool = False
) -> torch.optim.Optimizer:
    """The method's optimizer over ``params`` (a list of n replicas' parameters for Parle/Elastic-SGD in
    one process, else one model's) with the tuned knob × ``factor``; Parle's noise seed is ``seed``."""
    name = ("distributed-" if distributed else "") + method.optimizer
    kwargs, _ = method.tuned_kwargs(factor)
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


def random_subset(n_samples: int, fraction: float, seed: int) -> Tensor:
    """The first ⌈fraction·N⌉ indices of a permutation seeded ``seed`` (Table 5.2's SGD on a subset)."""
    perm = torch.randperm(n_samples, generator=torch.Generator().manual_seed(seed))
    return perm[: math.ceil(fraction * n_samples)]


def replica_seed(seed: int, replica: int) -> int:
    """The batch-order and dropout seed of replica a: ``seed + 1000·a`` (replica 0 shares the run's)."""
    return seed + REPLICA_SEED_STRIDE * replica


class ReplicaStepper:
    """One step of a method: a mini-batch gradient for every local replica, then ``step()`` (and the
    learning-rate ``scheduler``'s, if any).

    Replica a (global index ``local[i]`` for local model i) draws batches of ``batch_size`` from its indices
    ``subsets[a]`` in the seeded order of :func:`~deeplandscape.experiments._compare.batch_order` (seed
    :func:`replica_seed`), and its dropout masks from its own random state, so that the replicas' batches and
    masks do not depend on how the replicas are spread over processes. A call returns the per-sample
    gradients computed over **all** n replicas, Σ_a |batch_a| (n × batch except at the end of a pass):
    in a distributed run every process counts the same total without communicating, since batch sizes
    depend only on |Ξ^a|. The batch passed by :func:`~deeplandscape.experiments._compare.train` is not used.
    A single-model method is the case n = 1 (any ``torch.optim`` optimizer).

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
        scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    ) -> None:
        if len(models) != len(local):
            raise ValueError(f"Invalid models: {len(models)} models for {len(local)} local replicas")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"Invalid batch_size: {batch_size} (must be an integer ≥ 1)")
        self.models, self.optimizer, self.d, self.scheduler = list(models), optimizer, d, scheduler
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
        if self.scheduler is not None:
            self.scheduler.step()
        count = sum(self.batch_length(a, self.steps) for a in range(len(self.sizes)))
        self.steps += 1
        return count


# ---------------------------------------------------------------------------------------------- training


@dataclass(frozen=True)
class ReplicaRun:
    """One training run: curves of the (master) weights at the measured points, the local models, the
    optimizer, the stepper, per-point scalars (``extras``: steps, outer steps, γ_k, ρ_k) and which training
    samples the final weights get wrong (``train_wrong``, 1.0 where wrong)."""

    curves: C.Curves
    models: list[nn.Module]
    optimizer: torch.optim.Optimizer
    stepper: ReplicaStepper
    extras: dict[str, list[float]]
    train_wrong: np.ndarray


def measured_marks(evaluations: int, replicas: int) -> tuple[int, list[int]]:
    """``(grid, marks)``: :func:`~deeplandscape.experiments._compare.train` evaluates at ``grid + 1`` evenly
    spaced points; the run is measured at ``marks`` of them: ``evaluations`` evenly spaced ones ending with
    the last, and 1/n of the budget (the shared-budget view), never at the start."""
    grid = math.lcm(evaluations, replicas)
    every = grid // evaluations
    return grid, sorted({i for i in range(every, grid + 1, every)} | {grid // replicas})


def _skipped() -> dict[str, Any]:
    nan = float("nan")
    return {"train_loss": nan, "train_error": nan, "val_error": nan, "test_error": nan,
            "test_per_sample": np.zeros(0)}  # fmt: skip


@torch.no_grad()
def wrong_on(model: nn.Module, x: Tensor, y: Tensor) -> np.ndarray:
    """1.0 where ``model`` (in evaluation mode, its batch-norm statistics as they are) misclassifies."""
    was_training = model.training
    model.eval()
    try:
        out = [
            (model(xb).argmax(1) != yb).numpy()
            for xb, yb in zip(x.split(C.EVAL_BATCH), y.split(C.EVAL_BATCH), strict=True)
        ]
    finally:
        model.train(was_training)
    return np.concatenate(out).astype(np.float64)


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
    milestones: Sequence[int] = (),
    distributed: bool = False,
) -> ReplicaRun:
    """Train ``method`` over n replicas (n = 1 for the single-model methods), all starting from the network
    of ``seed``, every replica for the whole budget, measuring the master (:func:`measured_marks`).

    With ``fraction`` < 1 a replicated method splits the data (:func:`replica_subsets`) and a single-model
    one trains on :func:`random_subset`. In one process (default) the n replicas are n models of this
    process; with ``distributed=True`` this process is replica ``rank`` of a process group of n processes.
    The learning rate drops ÷10 after each step of ``milestones``.
    """
    if distributed:
        import torch.distributed as dist

        world, rank = dist.get_world_size(), dist.get_rank()
        if world != replicas:
            raise ValueError(f"Invalid replicas: {replicas} (the process group has {world} processes)")
        local = [rank]
    else:
        local = list(range(replicas))
    n_train = len(d.y)
    replicated = method.optimizer in ("parle", "elastic-sgd") and (replicas > 1 or distributed)
    if fraction == 1.0 or replicated:
        subsets = replica_subsets(n_train, replicas, fraction, seed)
    else:
        subsets = [random_subset(n_train, fraction, seed)]
    models = [nets.get(model_name, seed=seed) for _ in local]
    params = [m.parameters() for m in models] if replicated and not distributed else models[0].parameters()
    optimizer = build_optimizer(method, params, factor, seed, distributed=distributed)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=0.1) if milestones else None
    stepper = ReplicaStepper(models, optimizer, d, subsets, local, batch_size=config["batch_size"], seed=seed,
                             scheduler=scheduler)  # fmt: skip
    grid, marks = measured_marks(config["evaluations"], replicas)
    extras: dict[str, list[float]] = {}
    point = [0]
    final: list[np.ndarray] = []

    def measure() -> dict[str, Any]:
        i, point[0] = point[0], point[0] + 1
        if i not in marks:
            return _skipped()
        with C.reference(optimizer):
            values = C.evaluate(models[0], d)
            if i == grid:
                final.append(wrong_on(models[0], d.x, d.y))
        for name, value in _progress(optimizer, stepper).items():
            extras.setdefault(name, []).append(value)
        return values

    epochs = config["epochs"] * config["budget_factor"] * replicas
    curves = C.train(
        stepper, measure, d, epochs=epochs, batch_size=config["batch_size"], seed=seed, evaluations=grid
    )
    kept = np.array(marks)
    curves = C.Curves(
        **{k: getattr(curves, k)[kept] for k in C.Curves.__dataclass_fields__ if k != "test_per_sample"},
        test_per_sample=curves.test_per_sample,
    )
    return ReplicaRun(curves, models, optimizer, stepper, extras, final[0])


def _progress(optimizer: torch.optim.Optimizer, stepper: ReplicaStepper) -> dict[str, float]:
    """The method's own updates so far: steps per replica, outer steps (Parle, Entropy-SGD: steps // L; the
    other methods update at every step), and the current γ_k, ρ_k (NaN where the method has none)."""
    nan = float("nan")
    if hasattr(optimizer, "gamma_at"):
        k = optimizer.steps
        return {"steps": float(k), "outer_steps": float(k // optimizer.L), "gamma": optimizer.gamma_at(k),
                "rho": optimizer.rho_at(k)}  # fmt: skip
    rho = optimizer.rho_at(optimizer.steps) if hasattr(optimizer, "rho_at") else nan
    return {"steps": float(stepper.steps), "outer_steps": float(stepper.steps), "gamma": nan, "rho": rho}
