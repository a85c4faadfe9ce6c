"""The machinery shared by the optimizer comparisons (``anneal``, ``entropy-sgd``, ``relaxation``, ``parle``,
``sgld``): one protocol, so that the methods differ only in the optimizer.

Protocol (AnnealSGD paper §5.2, Thesis §3.3.2):

- **Same initialization and batch order.** Run ``s`` of every method starts from the network built with
  seed ``s`` and visits the training set in the order drawn from a generator seeded with ``s``.
- **Same search budget.** Every method tries the same number of values of its step size (``lr_factors``
  times its paper default, the tuned knob being named by :attr:`Method.tune`) on the validation split
  (12% of the data, as the AnnealSGD paper) with the first seed, keeps the value with the lowest final
  validation error, and then runs every seed with it.
- **Effective epochs.** Progress is counted in gradient evaluations: an epoch is as many per-sample
  gradients as there are training samples, ``effective epochs = (samples whose gradient was computed) /
  N`` (Thesis §3.3.2, where one Entropy-SGD outer step of L inner steps costs L). Every method gets the
  same budget; SAM, which evaluates two gradients per step (``gradient_evaluations_per_step``), takes half
  as many steps.
- **Wall clock** counts training only (evaluations excluded), so the curves against time compare the
  optimizers' costs.
- **Evaluation** uses the reference weights where the optimizer has them (``reference_weights()``: the
  x of Entropy-SGD/HJ/Heat, the master of Parle/Elastic-SGD), with batch-norm statistics recomputed on
  the training set for every method alike (:func:`~deeplandscape.optim.batchnorm.recompute_batchnorm`).
- **Width at the solution.** The top Hessian eigenvalue (Lanczos) and the Hessian trace (Hutchinson) of the
  training loss on a fixed subset of the training set, in evaluation mode, at the final weights of every
  seed: "which method finds wider minima" is then measured, not asserted. Experiments that declare the
  width parameters (:func:`width_params`) also measure the Thesis's own measure, Local Entropy over a grid
  of scopes γ and the robust width γ* (Def. 4.20), and a scale-invariant sharpness
  (:mod:`deeplandscape.experiments._flatness`), with batch-norm statistics recomputed at the solution.
- **The authors' step-size drops.** A :class:`Method` may drop its step size (``lr`` of every group:
  Entropy-SGD's outer step η′, SGD's and Adam's step) by ``drop_factor`` at fractions ``drops`` of the
  run's optimizer steps, placed as in the paper's run of that method (``MultiStepLR``).
- **Budgets counted in each algorithm's own updates.** Every run records the number of its own updates
  (outer updates of Entropy-SGD/HJ/Heat/Entropy-Adam, steps otherwise: ``extra_own_updates``) and, for
  AnnealSGD, the field's magnitude relative to its start (``extra_field_fraction``);
  :data:`MINIMUM_UPDATES` declares the least a comparison must give each method.

Data: the embedded 8×8 digits bilinearly up-sampled to 28×28 (so that the papers' MNIST networks run
unchanged), or real MNIST with ``data=mnist mnist_path=…``.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deeplandscape import data as dl_data
from deeplandscape import nets, optim, progress
from deeplandscape.analysis import HessianOperator, hutchinson_trace, lanczos
from deeplandscape.experiments import _flatness
from deeplandscape.experiments._common import table
from deeplandscape.experiments._plot import plt, save
from deeplandscape.experiments.spec import Param, Unit, UnitResult, show, split_names
from deeplandscape.optim.batchnorm import recompute_batchnorm
from deeplandscape.rundir import save_npz

EVAL_BATCH = 1024


def data_params(**overrides: Param) -> dict[str, Param]:
    """Parameters every comparison has: data, budget, batch size, seeds, search, Hessian settings."""
    params = {
        "data": Param("str", "digits", "data set (digits are up-sampled to 28×28)",
                      choices=("digits", "mnist"), paper="mnist"),
        "mnist_path": Param("str", "", "directory or file of MNIST (only for data=mnist)"),
        "train_subset": Param("int", 0, "use only this many training samples (0: all)", quick=256, low=0),
        "epochs": Param("float", 10.0, "budget of effective epochs per run", quick=1.0, paper=100.0,
                        low=0.01),
        "batch_size": Param("int", 32, "mini-batch size", paper=128, low=1),
        "seeds": Param("int", 3, "seeds per method (same initializations and batch orders)", quick=1, paper=5,
                       low=1),
        "lr_factors": Param("floats", [0.5, 1.0, 2.0], "step sizes tried per method (× its default)",
                            quick=[1.0], low=1e-6),
        "evaluations": Param("int", 10, "evaluation points along training", quick=3, low=1),
        "hessian_samples": Param("int", 256, "training samples for the Hessian at the solution", quick=64,
                                 paper=1024, low=1),
        "hessian_probes": Param("int", 20, "Hutchinson probes for the Hessian trace", quick=4, paper=100,
                                low=1),
    }  # fmt: skip
    params.update(overrides)
    return params


def mnist_reference_params(train_subset: int) -> dict[str, Param]:
    """``data``, ``mnist_path`` and ``train_subset`` of :func:`data_params`, with real MNIST and the first
    ``train_subset`` training images at the reference scale."""
    base = data_params()
    return {
        "data": replace(base["data"], reference="mnist"),
        "mnist_path": base["mnist_path"],
        "train_subset": replace(base["train_subset"], reference=train_subset),
    }


def protocol_params(**overrides: Param) -> dict[str, Param]:
    """The parameters of the papers' protocol (the comparisons of AnnealSGD paper §5 and Thesis Ch. 3–4),
    to be given to :func:`data_params` after its own: budgets sized for :data:`MINIMUM_UPDATES` at every
    scale, five seeds, the papers' settings without search, real MNIST at the reference scale, the width at
    the solution as the Thesis measures it (Local Entropy on a grid of scopes, the robust width;
    :mod:`._flatness`) beside a scale-invariant sharpness, a budget multiplier (for the runs that explain a
    claim) and the training samples of the evaluations. An experiment that declares them gets these
    measurements from :func:`run_method` and :func:`search_then_seeds`."""
    params = {
        "width_gammas": Param("floats", [1e-4, 3e-4, 1e-3, 3e-3], "scopes γ of Local Entropy f_γ(x) "
                              "(Thesis eq. (4.11), β = 1: y ~ N(x, γI)), increasing", low=1e-12),
        "width_epsilon": Param("float", 0.1, "tolerance ε (nats) of the robust width γ* (Thesis Def. 4.20)",
                               low=1e-9),
        "width_samples": Param("int", 128, "training samples of the width measurements (Local Entropy, "
                               "adaptive sharpness)", quick=32, paper=1024, low=1),
        "width_chains": Param("int", 2, "independent Langevin replicates per scope γ", paper=4, low=2),
        "width_steps": Param("int", 10, "Langevin steps averaged per chain (after the burn-in)", quick=4,
                             paper=100, low=1),
        "width_burnin": Param("int", 5, "Langevin burn-in steps per chain", quick=2, paper=50, low=0),
        "data": Param("str", "digits", "data set (digits are up-sampled to 28×28)",
                      choices=("digits", "mnist"), reference="mnist", paper="mnist"),
        # Sized so that the two-loop methods complete MINIMUM_UPDATES: 27 epochs of the 1,221 training digits
        # in batches of 16 (2,079 steps) and 1.5 of MNIST's 50,000 images in batches of 32 (2,345 steps).
        "epochs": Param("float", 27.0, "budget of effective epochs per run", quick=1.0, reference=1.5,
                        paper=100.0, low=0.01),
        "batch_size": Param("int", 16, "mini-batch size", reference=32, paper=128, low=1),
        "seeds": Param("int", 5, "seeds per method (same initializations and batch orders)", quick=1, low=1),
        "lr_factors": Param("floats", [1.0], "step sizes tried per method (× its default; 1: the papers' "
                            "settings, no search)", low=1e-6),
        "budget_scale": Param("float", 1.0, "multiplies every budget of effective epochs (1: the scale's)",
                              low=0.01),
        "eval_samples": Param("int", 0, "training samples of the training loss/error and of the batch-norm "
                              "statistics at the evaluation points (0: all)", reference=5_000, low=0),
        "evaluations": Param("int", 10, "evaluation points along training", quick=3, reference=4, low=1),
    }  # fmt: skip
    params.update(overrides)
    return params


def measures_width(config: dict[str, Any]) -> bool:
    """Whether the experiment of ``config`` declares :func:`protocol_params`."""
    return "width_gammas" in config


def width_settings(config: dict[str, Any]) -> _flatness.WidthSettings:
    gammas = [float(g) for g in config["width_gammas"]]
    if gammas != sorted(gammas):
        raise ValueError(f"Invalid width_gammas: {show(gammas)} (must increase)")
    return _flatness.WidthSettings(
        tuple(gammas), config["width_epsilon"], chains=config["width_chains"], steps=config["width_steps"],
        burnin=config["width_burnin"],
    )  # fmt: skip


def budget(config: dict[str, Any], key: str = "epochs") -> float:
    """``config[key]`` effective epochs times ``budget_scale`` (where the experiment declares it)."""
    return config[key] * config.get("budget_scale", 1.0)


# ---------------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Tensors:
    """Train, validation and test tensors of an image classification task."""

    x: Tensor
    y: Tensor
    x_val: Tensor
    y_val: Tensor
    x_test: Tensor
    y_test: Tensor


def load_images(config: dict[str, Any]) -> Tensors:
    """Digits up-sampled to 28×28 (12% validation, 20% test) or MNIST; ``train_subset`` trims training."""
    if config["data"] == "digits":
        splits = dl_data.load("digits", val_fraction=0.12, seed=0)

        def prepare(x: Tensor) -> Tensor:
            return F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)
    else:
        splits = dl_data.load("mnist", config["mnist_path"] or None, seed=0)

        def prepare(x: Tensor) -> Tensor:
            return x

    x, y = prepare(splits.train.x), splits.train.y
    if config["train_subset"]:
        if config["train_subset"] > len(y):
            raise ValueError(
                f"Invalid train_subset: {config['train_subset']} (the training set has {len(y)})"
            )
        x, y = x[: config["train_subset"]], y[: config["train_subset"]]
    return Tensors(x, y, prepare(splits.val.x), splits.val.y, prepare(splits.test.x), splits.test.y)


# ---------------------------------------------------------------------------------------------- methods


@dataclass(frozen=True)
class Method:
    """A method of a comparison: a label, a registered optimizer with its hyperparameters, the tuned knob.

    ``base`` names the base optimizer of wrapping optimizers (AnnealSGD, GradientNoise, SAM) and
    ``base_kwargs`` its arguments; ``tune`` is the hyperparameter that the search scales (``lr`` for
    SGD/Adam/SAM, ``inner_lr`` for the Langevin step of Entropy-SGD and HJ). ``drops`` are the authors'
    step-size drops as fractions of the run (:meth:`scheduler`): e.g. ``drops=(0.4,)`` with
    ``drop_factor=0.1`` is Thesis §3.3.2's η′ ÷ 10 after the second of five epochs.
    """

    label: str
    optimizer: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    tune: str = "lr"
    base: str | None = None
    base_kwargs: dict[str, Any] = field(default_factory=dict)
    drops: tuple[float, ...] = ()
    drop_factor: float = 0.1

    def __post_init__(self) -> None:
        if any(not 0 < f < 1 for f in self.drops) or list(self.drops) != sorted(set(self.drops)):
            raise ValueError(f"Invalid drops: {self.drops} (increasing fractions of the run in (0, 1))")
        if not 0 < self.drop_factor < 1:
            raise ValueError(f"Invalid drop_factor: {self.drop_factor} (must be in (0, 1))")

    def scheduler(
        self, optimizer: torch.optim.Optimizer, total_steps: int
    ) -> torch.optim.lr_scheduler.LRScheduler | None:
        """``MultiStepLR`` multiplying every group's ``lr`` by ``drop_factor`` after each fraction ``drops``
        of ``total_steps`` optimizer steps (stepped once per step); ``None`` without drops."""
        if not self.drops:
            return None
        milestones = sorted({max(1, round(f * total_steps)) for f in self.drops})
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=self.drop_factor)

    def tuned_kwargs(self, factor: float) -> tuple[dict[str, Any], dict[str, Any]]:
        """The optimizer's and the base optimizer's arguments with the tuned knob times ``factor``.

        A knob given in neither takes the default of the optimizer's (or its base's) constructor, so that a
        method may run with the optimizer's own defaults (e.g. the authors' Entropy-SGD settings).
        """
        kwargs, base_kwargs = dict(self.kwargs), dict(self.base_kwargs)
        target = base_kwargs if self.tune in base_kwargs else kwargs
        if self.tune not in target:
            cls = optim.get(self.base or self.optimizer)
            default = inspect.signature(cls.__init__).parameters.get(self.tune)
            if default is None or not isinstance(default.default, (int, float)):
                raise ValueError(
                    f"Invalid method {self.label!r}: the tuned knob {self.tune!r} has no default"
                )
            target = base_kwargs if self.base is not None else kwargs
            target[self.tune] = default.default
        target[self.tune] = target[self.tune] * factor
        return kwargs, base_kwargs

    def build(self, params: Any, factor: float, seed: int) -> torch.optim.Optimizer:
        """The optimizer over ``params`` with the tuned knob multiplied by ``factor``; its generators (if
        it has any) are seeded with :func:`optimizer_seed` of the run's ``seed``."""
        cls = optim.get(self.optimizer)
        kwargs, base_kwargs = self.tuned_kwargs(factor)
        if "seed" in _signature(cls):
            kwargs["seed"] = optimizer_seed(seed)
        if self.base is not None:
            return cls(params, optim.get(self.base), **kwargs, **base_kwargs)
        return cls(params, **kwargs)


def optimizer_seed(seed: int) -> int:
    """The seed of a run's optimizer generators, derived from the run's seed ``seed``.

    The network of run ``seed`` is initialized from ``torch.manual_seed(seed)``; a generator seeded with the
    same integer would replay the same Mersenne-Twister stream, so AnnealSGD's field h would be correlated
    with the initial weights (|ξᵀw₀|/‖w₀‖ ≈ 195 on mnistfc-deep instead of ≈ 0.8). A hash of ``seed`` gives an
    independent stream that is still the same for every method of a run.
    """
    return int(np.random.SeedSequence([seed, 0xA22EA1]).generate_state(1)[0])


def _signature(cls: type) -> set[str]:
    return set(inspect.signature(cls.__init__).parameters)


# ---------------------------------------------------------------------------------------------- budgets


@dataclass(frozen=True)
class UpdateBudget:
    """The least number of its own updates (``unit``) a comparison must give a method, and why."""

    minimum: int
    unit: str
    why: str


TWO_LOOP_MINIMUM = 100
# Thesis Table 4.1: HEAT at 75 effective epochs on lenet, i.e. 75 passes over MNIST's 60,000 training images
# in mini-batches of 128 (the authors' code: ``-b 128``), L = 20 gradients per update.
HEAT_THESIS_UPDATES = round(75 * 60_000 / (128 * 20))
_TWO_LOOP = UpdateBudget(
    TWO_LOOP_MINIMUM,
    "outer updates",
    f"{TWO_LOOP_MINIMUM} outer updates: the scope γ_t = γ0(1 − γ1)^t has shrunk by 1 − 0.999^100 ≈ 10% "
    "(scoping acts; 85–94% in the Thesis's runs of ~1,900–2,800 outer updates), and the 60 outer updates "
    "after a step-size drop at 40% of the run bring x to within 0.9^60 < 0.2% of the inner average",
)
_ONE_LOOP = UpdateBudget(
    TWO_LOOP_MINIMUM,
    "steps",
    f"{TWO_LOOP_MINIMUM} steps, as many as the two-loop methods' outer updates (a single-loop method gets L "
    "times more at the same budget of effective epochs)",
)
MINIMUM_UPDATES: dict[str, UpdateBudget] = {
    "entropy-sgd": _TWO_LOOP,
    "entropy-adam": _TWO_LOOP,
    "hj": _TWO_LOOP,
    "heat": UpdateBudget(
        HEAT_THESIS_UPDATES,
        "updates",
        f"the Thesis's {HEAT_THESIS_UPDATES:,} updates of HEAT on lenet (Table 4.1: 75 effective epochs of "
        "MNIST's 60,000 images in batches of 128, L = 20)",
    ),
}
FIELD_LIMIT = 0.01  # AnnealSGD: the field's magnitude relative to its start at the end of a run


def minimum_updates(optimizer: str) -> UpdateBudget:
    """The least number of its own updates a comparison must give a method with the registered
    ``optimizer`` (:data:`MINIMUM_UPDATES`; single-loop methods: :data:`TWO_LOOP_MINIMUM` steps)."""
    return MINIMUM_UPDATES.get(optimizer, _ONE_LOOP)


def planned_steps(epochs: float, n: int, batch_size: int, evaluations_per_step: int = 1) -> int:
    """The optimizer steps of a run of ``epochs`` effective epochs over ``n`` samples: every pass over the
    data is ⌈n / batch_size⌉ batches (:func:`batch_order`), each step takes ``evaluations_per_step`` of them
    worth of gradients."""
    return math.ceil(epochs * math.ceil(n / batch_size) / evaluations_per_step)


def own_updates(optimizer: torch.optim.Optimizer, steps: int) -> int:
    """The updates of ``optimizer`` itself after ``steps`` calls of ``step()``: the outer updates of the
    two-loop methods (``outer_step`` of the first param group), else ``steps``."""
    group = optimizer.param_groups[0]
    return int(group["outer_step"]) if "outer_step" in group else int(steps)


def field_fraction(optimizer: torch.optim.Optimizer) -> float | None:
    """AnnealSGD: the magnitude of the field of its next step relative to the first, s_i / s_0 (AnnealSGD
    paper eq. (12)–(13)); ``None`` for other optimizers."""
    if not isinstance(optimizer, optim.AnnealSGD):
        return None
    group = optimizer.param_groups[0]
    start = optim.field_scale(
        0, tau0=group["tau0"], schedule=group["schedule"], scaling=group["scaling"], n=group["n"],
        kappa=group["kappa"],
    )  # fmt: skip
    return optimizer.scale(group) / start


# The former settings of Entropy-SGD and HJ in the comparisons: the same (Nesterov) momentum on both loops,
# 0.9 at the paper scale and none below it (with η′ = 1, outer momentum 0.9 overshoots at a dozen outer
# steps). The comparisons of the AnnealSGD paper and Thesis Ch. 3–4 (`anneal`, `entropy-sgd`, `relaxation`,
# `sgld`) run the authors' settings instead: the optimizers' defaults (inner Nesterov momentum restarted
# each cycle, none on the outer step; see `deeplandscape.optim.EntropySGD`).
ENTROPY_MOMENTUM = Param(
    "float",
    0.0,
    "momentum of both loops of Entropy-SGD and HJ (Thesis: 0.9 with Nesterov)",
    paper=0.9,
    low=0.0,
    high=0.999,
)
ENTROPY_OPTIMIZERS = ("entropy-sgd", "hj")


def with_entropy_momentum(method: Method, config: dict[str, Any]) -> Method:
    """``method`` with ``config['entropy_momentum']`` as the (Nesterov) momentum of both loops if it is
    Entropy-SGD or HJ, else itself."""
    if method.optimizer not in ENTROPY_OPTIMIZERS:
        return method
    mu = config["entropy_momentum"]
    return replace(
        method, kwargs={**method.kwargs, "momentum": mu, "outer_momentum": mu, "outer_nesterov": True}
    )


# ---------------------------------------------------------------------------------------------- training


@dataclass(frozen=True)
class Curves:
    """Measurements at the evaluation points of one run (arrays of equal length)."""

    effective_epochs: np.ndarray
    wall_seconds: np.ndarray
    train_loss: np.ndarray
    train_error: np.ndarray
    val_error: np.ndarray
    test_error: np.ndarray
    test_per_sample: np.ndarray  # at the last point: 1.0 where a test sample is misclassified (images), or
    # each test window's cross-entropy per character (sequences): what paired comparisons of two methods use


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


@contextlib.contextmanager
def reference(optimizer: torch.optim.Optimizer) -> Iterator[None]:
    """The optimizer's reference weights in the model, where it has them (else the weights as they are)."""
    if hasattr(optimizer, "reference_weights"):
        with optimizer.reference_weights():
            yield
    else:
        yield


@torch.no_grad()
def evaluate(model: nn.Module, d: Tensors) -> dict[str, Any]:
    """Training loss and error, validation and test error (%) of ``model`` in evaluation mode, and which
    test samples it misclassifies (``test_per_sample``, 1.0 where wrong).

    Batch-norm statistics are first recomputed on the training set, since the running averages of an inner
    iterate do not belong to the reference weights.
    """
    if has_batchnorm(model):
        recompute_batchnorm(model, list(zip(d.x.split(EVAL_BATCH), d.y.split(EVAL_BATCH), strict=True)))
    was_training = model.training
    model.eval()
    try:

        def loss_and_wrong(x: Tensor, y: Tensor) -> tuple[float, np.ndarray]:
            loss, wrong = 0.0, []
            for xb, yb in zip(x.split(EVAL_BATCH), y.split(EVAL_BATCH), strict=True):
                out = model(xb)
                loss += float(F.cross_entropy(out, yb, reduction="sum"))
                wrong.append((out.argmax(1) != yb).numpy())
            return loss / len(y), np.concatenate(wrong).astype(np.float64)

        train_loss, train_wrong = loss_and_wrong(d.x, d.y)
        test_wrong = loss_and_wrong(d.x_test, d.y_test)[1]
        return {
            "train_loss": train_loss,
            "train_error": 100.0 * float(train_wrong.mean()),
            "val_error": 100.0 * float(loss_and_wrong(d.x_val, d.y_val)[1].mean()),
            "test_error": 100.0 * float(test_wrong.mean()),
            "test_per_sample": test_wrong,
        }
    finally:
        model.train(was_training)


def batch_order(n: int, batch_size: int, seed: int) -> Iterator[Tensor]:
    """Index batches of successive seeded permutations of ``range(n)``: the same for every method."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        perm = torch.randperm(n, generator=generator)
        yield from perm.split(batch_size)


Step = Callable[[Tensor, Tensor], int]


def single_model_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> Step:
    """One optimizer step of ``loss_fn`` on a mini-batch (then one ``scheduler.step()``, if given); returns
    how many per-sample gradients it computed.

    Optimizers that evaluate more than one gradient per step (``gradient_evaluations_per_step`` > 1, e.g.
    SAM) get a closure that recomputes the mini-batch gradient at the point they choose.
    """
    evaluations = getattr(optimizer, "gradient_evaluations_per_step", 1)

    def closure(x: Tensor, y: Tensor) -> Tensor:
        optimizer.zero_grad(set_to_none=True)
        with torch.enable_grad():
            loss = loss_fn(model(x), y)
            loss.backward()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(f"the training loss became {value} ({type(optimizer).__name__})")
        return loss

    def step(x: Tensor, y: Tensor) -> int:
        closure(x, y)
        if evaluations > 1:
            optimizer.step(lambda: closure(x, y))
        else:
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        return evaluations * len(y)

    return step


def train(
    step: Step,
    measure: Callable[[], dict[str, Any]],
    d: Tensors,
    *,
    epochs: float,
    batch_size: int,
    seed: int,
    evaluations: int,
) -> Curves:
    """Run ``step`` over the seeded batch order until ``epochs`` effective epochs, measuring at
    ``evaluations + 1`` evenly spaced points (including the start)."""
    n = len(d.y)
    budget = epochs * n
    marks = [budget * i / evaluations for i in range(evaluations + 1)]
    rows: list[tuple[float, float, dict[str, Any]]] = []
    done, seconds = 0, 0.0
    batches = batch_order(n, batch_size, seed)
    for mark in marks:
        start = time.perf_counter()
        while done < mark:
            idx = next(batches)
            done += step(d.x[idx], d.y[idx])
        seconds += time.perf_counter() - start
        rows.append((done / n, seconds, measure()))
        progress.advance(len(rows) - 1, evaluations, "evaluation intervals")
    return Curves(
        effective_epochs=np.array([r[0] for r in rows]),
        wall_seconds=np.array([r[1] for r in rows]),
        **{
            k: np.array([r[2][k] for r in rows])
            for k in ("train_loss", "train_error", "val_error", "test_error")
        },
        test_per_sample=np.asarray(rows[-1][2]["test_per_sample"]),
    )


def hessian_at_solution(
    model: nn.Module,
    d: Tensors,
    *,
    samples: int,
    probes: int,
    seed: int,
    loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
    mode: str = "forward",
) -> tuple[float, float]:
    """Top eigenvalue (Lanczos, relative residual ≤ 1e-3) and trace (Hutchinson) of the Hessian of
    ``loss_fn`` on the first ``samples`` training samples, in evaluation mode (``mode`` is that of
    :class:`~deeplandscape.analysis.HessianOperator`).

    The probes are drawn from :func:`optimizer_seed` of ``seed``: drawn from ``seed`` itself, Lanczos's start
    vector would replay the random stream that initialized the network and lie along the initial weights,
    which with batch norm (a loss invariant to the scale of the weights before it) is close to the Hessian's
    null space, and 80 Lanczos steps may not leave it (a top eigenvalue of 1e-5 instead of 20 was seen).
    """
    batch = (d.x[:samples], d.y[:samples])
    op = HessianOperator(model, loss_fn, [batch], mode=mode)
    probe_seed = optimizer_seed(seed)
    top = lanczos(op, 1, which="LA", tol=1e-3, max_basis=min(op.dim, 80), seed=probe_seed)
    trace = hutchinson_trace(op, num_probes=probes, seed=probe_seed)
    return float(top.eigenvalues[0]), trace.trace


def evaluation_data(d: Tensors, config: dict[str, Any]) -> Tensors:
    """``d`` with the training set cut to ``config['eval_samples']`` (where declared and non-zero) for the
    training loss and the batch-norm statistics of the evaluations."""
    n = config.get("eval_samples", 0)
    return d if not n or n >= len(d.y) else replace(d, x=d.x[:n], y=d.y[:n])


def measure_solution(
    model: nn.Module, d: Tensors, config: dict[str, Any], *, seed: int, task: Task | None = None
) -> dict[str, Any]:
    """The width of the solution the model holds (the reference weights x, for the two-loop methods).

    Always the top eigenvalue and the trace of the Hessian (:func:`hessian_at_solution`). Where the
    experiment declares :func:`protocol_params`, first the batch-norm statistics are recomputed at x on the
    training samples of the evaluations, then on the first ``width_samples`` training samples, in
    evaluation mode: the adaptive sharpness λ_max(T H T) and Local Entropy f_γ(x) on the grid
    ``width_gammas`` with its excess f_γ(x) − f(x), Monte-Carlo standard errors, f(x) and the robust width
    γ* (:mod:`._flatness`). Random numbers come from :func:`optimizer_seed` of ``seed``.
    """
    task = IMAGES if task is None else task
    if measures_width(config) and has_batchnorm(model):
        e = evaluation_data(d, config)
        recompute_batchnorm(model, list(zip(e.x.split(EVAL_BATCH), e.y.split(EVAL_BATCH), strict=True)))
    top, trace = hessian_at_solution(
        model, d, samples=config["hessian_samples"], probes=config["hessian_probes"], seed=seed,
        loss_fn=task.loss, mode=task.hessian_mode,
    )  # fmt: skip
    out: dict[str, Any] = {"hessian_top": top, "hessian_trace": trace}
    if not measures_width(config):
        return out
    n = config["width_samples"]
    if n > len(d.y):
        raise ValueError(f"Invalid width_samples: {n} (the training set has {len(d.y)})")
    batch = (d.x[:n], d.y[:n])
    hessian = HessianOperator(model, task.loss, [batch], mode=task.hessian_mode)
    out["adaptive_top"] = _flatness.adaptive_sharpness(hessian, seed=optimizer_seed(seed))
    w = _flatness.width(model, batch, task.loss, width_settings(config), seed=optimizer_seed(seed))
    out.update(
        local_entropy=list(w.local_entropy), local_entropy_excess=list(w.excess),
        local_entropy_se=list(w.standard_error), gamma_star=w.gamma_star, width_loss=w.loss,
    )  # fmt: skip
    return out


@dataclass(frozen=True)
class Task:
    """What is learnt: the training loss, the evaluation (the keys of :func:`evaluate`), the name of the
    score held in the ``*_error`` fields, and how Hessian–vector products are taken (``hessian_mode`` of
    :class:`~deeplandscape.analysis.HessianOperator`: ``"reverse"`` for the LSTMs, whose fused CPU kernel
    has no forward-mode derivative)."""

    metric: str
    loss: Callable[[Tensor, Tensor], Tensor]
    evaluate: Callable[[nn.Module, Tensors], dict[str, float]]
    hessian_mode: str = "forward"


IMAGES = Task("error %", F.cross_entropy, evaluate, "forward")

Schedule = Callable[[torch.optim.Optimizer], torch.optim.lr_scheduler.LRScheduler]


# ---------------------------------------------------------------------------------------------- units


def names(config: dict[str, Any], key: str, known: Sequence[str] | None = None) -> list[str]:
    """The comma-separated names of ``config[key]``; ``ValueError`` if one is empty, repeated or (given
    ``known``) unknown."""
    return split_names(config, key, known)


def method_units(config: dict[str, Any], methods: dict[str, Method]) -> list[Unit]:
    """One unit per (model, method) of ``config['models']`` × ``config['methods']``."""
    return [
        Unit(f"{model}-{key}", {"model": model, "method": key})
        for model in names(config, "models", nets.available())
        for key in names(config, "methods", list(methods))
    ]


Run = tuple[Curves, nn.Module, torch.optim.Optimizer, dict[str, list[float]]]


def search_then_seeds(
    config: dict[str, Any],
    one_run: Callable[[int, float], Run],
    d: Tensors,
    *,
    task: Task = IMAGES,
    factors: Sequence[float] | None = None,
) -> tuple[dict[str, np.ndarray], float, nn.Module]:
    """The protocol's loop over runs: ``one_run(seed, factor)`` for every factor (default
    ``config['lr_factors']``) with seed 0, the best by final validation error, then ``config['seeds']``
    seeds with it (the search's seed-0 run is kept as the first), each measured at its solution (at the
    reference weights; :func:`measure_solution`). Returns the arrays (curves, ``extra_*``, ``hessian_top``,
    ``hessian_trace``, the width measurements where declared, ``search_val_error``; one row per seed), the
    best factor and the last run's model."""
    factors = list(config["lr_factors"] if factors is None else factors)
    search: list[float] = []
    best_run = None
    for f in factors:
        run = one_run(0, f)
        search.append(float(run[0].val_error[-1]) if len(factors) > 1 else 0.0)
        if search[-1] == min(search):
            best_run = run
    best = factors[int(np.argmin(search))]
    runs, measures, extras_all = [], [], []
    for seed in range(config["seeds"]):
        curves, model, optimizer, extras = best_run if seed == 0 else one_run(seed, best)
        with reference(optimizer):
            measures.append(measure_solution(model, d, config, seed=seed, task=task))
        runs.append(curves)
        extras_all.append(extras)
    arrays = {k: np.stack([getattr(c, k) for c in runs]) for k in Curves.__dataclass_fields__}
    for k in extras_all[0]:
        arrays[f"extra_{k}"] = np.array([e[k] for e in extras_all])
    for k in measures[0]:
        arrays[k] = np.array([m[k] for m in measures], dtype=float)
    arrays["search_val_error"] = np.array(search, dtype=float)
    return arrays, best, model


def run_method(
    config: dict[str, Any],
    model_name: str,
    method: Method,
    *,
    d: Tensors | None = None,
    task: Task = IMAGES,
    net_kwargs: dict[str, Any] | None = None,
    extra: Callable[[nn.Module, torch.optim.Optimizer], dict[str, float]] | None = None,
    schedule: Schedule | None = None,
    epochs: float | None = None,
    batch_size: int | None = None,
) -> UnitResult:
    """Search the step size on the validation split with seed 0, then train ``config['seeds']`` seeds.

    The search tries every factor of ``config['lr_factors']``; the seed-0 run of the best factor is kept as
    the first seed (runs are deterministic: each starts from ``torch.manual_seed(seed)`` in a forked RNG
    state, so dropout draws are the same on a rerun). ``extra(model, optimizer)`` adds method-specific
    measurements to every evaluation point (e.g. the alignment of AnnealSGD), returned as arrays
    ``extra_<name>`` of shape (seeds, points); every run also records ``extra_own_updates`` (the method's
    own updates so far, :func:`own_updates`) and, for AnnealSGD, ``extra_field_fraction``
    (:func:`field_fraction`). ``schedule(optimizer)`` is an LR scheduler stepped after every optimizer
    step; without it, the method's own step-size drops (:meth:`Method.scheduler`) are. ``epochs`` and
    ``batch_size`` default to the config's; the budget is multiplied by ``budget_scale`` where the
    experiment declares it, and the evaluations use :func:`evaluation_data`.
    """
    d = load_images(config) if d is None else d
    d_eval = evaluation_data(d, config)
    net_kwargs = net_kwargs or {}
    epochs = budget(config) if epochs is None else epochs * config.get("budget_scale", 1.0)
    batch_size = config["batch_size"] if batch_size is None else batch_size

    def one_run(seed: int, factor: float) -> Run:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = nets.get(model_name, seed=seed, **net_kwargs)
            optimizer = method.build(model.parameters(), factor, seed)
            k = getattr(optimizer, "gradient_evaluations_per_step", 1)
            total = planned_steps(epochs, len(d.y), batch_size, k)
            scheduler = schedule(optimizer) if schedule is not None else method.scheduler(optimizer, total)
            steps = [0]
            optimizer.register_step_post_hook(lambda *_: steps.__setitem__(0, steps[0] + 1))
            extras: dict[str, list[float]] = {}

            def measure() -> dict[str, Any]:
                with reference(optimizer):
                    values = task.evaluate(model, d_eval)
                found = dict(extra(model, optimizer)) if extra else {}
                found["own_updates"] = own_updates(optimizer, steps[0])
                if (fraction := field_fraction(optimizer)) is not None:
                    found["field_fraction"] = fraction
                for key, v in found.items():
                    extras.setdefault(key, []).append(v)
                return values

            curves = train(
                single_model_step(model, optimizer, task.loss, scheduler), measure, d, epochs=epochs,
                batch_size=batch_size, seed=seed, evaluations=config["evaluations"],
            )  # fmt: skip
        return curves, model, optimizer, extras

    arrays, best, model = search_then_seeds(config, one_run, d, task=task)
    return UnitResult(
        values={
            "model": model_name,
            "method": method.label,
            "tuned": method.tune,
            "factor": best,
            "parameters": nets.parameter_count(model),
            "metric": task.metric,
            "optimizer": method.optimizer,
        },
        arrays=arrays,
    )


# ---------------------------------------------------------------------------------------------- results


def _std(a: np.ndarray) -> float:
    return float(a.std(ddof=1)) if a.size > 1 else 0.0


def run_rows(results: Sequence[UnitResult]) -> list[dict[str, Any]]:
    """The ``runs`` list of a comparison's ``results.json`` (errors in %, final evaluation point)."""
    rows = []
    for r in results:
        a = r.arrays
        rows.append(
            {
                "model": r.values["model"],
                "method": r.values["method"],
                "metric": r.values.get("metric", "error %"),
                "seeds": int(a["test_error"].shape[0]),
                "error_mean": float(a["test_error"][:, -1].mean()),
                "error_std": _std(a["test_error"][:, -1]),
                "val_error_mean": float(a["val_error"][:, -1].mean()),
                "val_error_std": _std(a["val_error"][:, -1]),
                "train_error_mean": float(a["train_error"][:, -1].mean()),
                "train_loss_mean": float(a["train_loss"][:, -1].mean()),
                "effective_epochs": float(a["effective_epochs"][:, -1].mean()),
                "wall_seconds": float(a["wall_seconds"][:, -1].mean()),
                "hessian_top": float(a["hessian_top"].mean()),
                "hessian_top_std": _std(a["hessian_top"]),
                "hessian_trace": float(a["hessian_trace"].mean()),
                "hessian_trace_std": _std(a["hessian_trace"]),
                "tuned": r.values["tuned"],
                "factor": r.values["factor"],
                **({"optimizer": r.values["optimizer"]} if "optimizer" in r.values else {}),
                **_protocol_row(a),
            }
        )
    return rows


def _protocol_row(a: dict[str, np.ndarray]) -> dict[str, Any]:
    """The row's keys of the protocol's own measurements, where the run has them: the fewest own updates
    over seeds (``own_updates``), the largest final field fraction of AnnealSGD, and the width at the
    solutions (means over seeds; per γ for Local Entropy; the median robust width)."""
    row: dict[str, Any] = {}
    if "extra_own_updates" in a:
        row["own_updates"] = int(a["extra_own_updates"][:, -1].min())
    if "extra_field_fraction" in a:
        row["field_fraction_end"] = float(a["extra_field_fraction"][:, -1].max())
    if "adaptive_top" in a:
        row.update(
            adaptive_top=float(a["adaptive_top"].mean()), adaptive_top_std=_std(a["adaptive_top"]),
            local_entropy=[float(v) for v in a["local_entropy"].mean(0)],
            local_entropy_excess=[float(v) for v in a["local_entropy_excess"].mean(0)],
            gamma_star=float(np.median(a["gamma_star"])), width_loss=float(a["width_loss"].mean()),
        )  # fmt: skip
    return row


def runs_table(rows: Sequence[dict[str, Any]]) -> str:
    """The Markdown table of a comparison's runs."""
    return table(
        ["model", "method", "seeds", "test error %", "± std", "val error %", "train error %", "train loss",
         "effective epochs", "wall s", "Hessian top", "Hessian trace", "tuned knob × default"],
        [[r["model"], r["method"], r["seeds"], r["error_mean"], r["error_std"], r["val_error_mean"],
          r["train_error_mean"], r["train_loss_mean"], r["effective_epochs"], r["wall_seconds"],
          r["hessian_top"], r["hessian_trace"], f"{r['tuned']} × {r['factor']:g}"] for r in rows],
    )  # fmt: skip


def protocol_text(config: dict[str, Any]) -> str:
    """One paragraph stating how the numbers were obtained."""
    if config["data"] == "digits":
        data = "the 8×8 digits up-sampled to 28×28"
    else:
        subset = f"the first {config['train_subset']:,} of " if config["train_subset"] else ""
        data = f"MNIST ({subset}the 50,000 training images; the 10,000 test images)"
    factors = [float(f) for f in config["lr_factors"]]
    search = (
        "no step-size search: every method at its paper's settings"
        if factors == [1.0]
        else f"step size searched over × {{{', '.join(f'{f:g}' for f in factors)}}} of each method's default "
        "on the validation split (seed 0)"
    )
    return (
        f"Data: {data}; {config['seeds']} seed(s) per method, the same initializations and batch orders for "
        f"every method; a budget of {budget(config):g} effective epochs (gradient evaluations / training "
        f"set size) with mini-batches of {config['batch_size']}; {search}. Errors are of the final weights "
        f"(reference weights where the method has them) in %; Hessian top eigenvalue and trace of the "
        f"training loss on {config['hessian_samples']} training samples at the final weights, mean over "
        f"seeds."
    )


def plot_curves(results: Sequence[UnitResult], key: str = "val_error", ylabel: str = "validation error %"):
    """``key`` against effective epochs and against wall-clock seconds, one row per model, mean ± std."""
    models = list(dict.fromkeys(r.values["model"] for r in results))
    fig, axes = plt.subplots(len(models), 2, figsize=(11, 3.6 * len(models)), squeeze=False)
    for row, model in zip(axes, models, strict=True):
        for r in (r for r in results if r.values["model"] == model):
            y = r.arrays[key]
            mean, std = y.mean(0), (y.std(0, ddof=1) if y.shape[0] > 1 else np.zeros(y.shape[1]))
            for ax, x in zip(
                row, (r.arrays["effective_epochs"].mean(0), r.arrays["wall_seconds"].mean(0)), strict=True
            ):
                (line,) = ax.plot(x, mean, label=r.values["method"])
                ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2)
        row[0].set_xlabel("effective epochs")
        row[1].set_xlabel("wall-clock seconds (training only)")
        for ax in row:
            ax.set_ylabel(ylabel)
            ax.set_title(model)
            if key.endswith("loss"):
                ax.set_yscale("log")
        row[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def save_comparison(name: str, results: Sequence[UnitResult], out: Path) -> str:
    """Write the arrays of every unit to ``<name>.npz`` (keys ``<model>_<method>_<key>``) and return the
    file name (``results.json``'s ``npz``, which the claims read)."""
    filename = f"{name.replace('-', '_')}.npz"
    save_npz(
        out / filename,
        **{f"{r.values['model']}_{r.values['method']}_{k}": a for r in results for k, a in r.arrays.items()},
    )
    return filename


def plot_width(results: Sequence[UnitResult], gammas: Sequence[float]):
    """Local Entropy's excess f_γ(x) − f(x) against γ at every seed's solution (one panel per model) and
    the adaptive sharpness per seed: the width of the solutions (Thesis Def. 4.20, eq. (4.38))."""
    measured = [r for r in results if "local_entropy_excess" in r.arrays]
    models = list(dict.fromkeys(r.values["model"] for r in measured))
    fig, axes = plt.subplots(len(models), 2, figsize=(11, 3.6 * len(models)), squeeze=False)
    for row, model in zip(axes, models, strict=True):
        runs = [r for r in measured if r.values["model"] == model]
        for k, r in enumerate(runs):
            excess = np.maximum(r.arrays["local_entropy_excess"], 1e-6)  # ≥ 0 up to Monte-Carlo error
            (line,) = row[0].plot(gammas, np.exp(np.log(excess).mean(0)), "o-", label=r.values["method"])
            for seed_excess in excess:
                row[0].plot(gammas, seed_excess, color=line.get_color(), alpha=0.25, lw=0.8)
            top = r.arrays["adaptive_top"]
            row[1].plot(np.full(top.shape, k), top, "o", color=line.get_color(), alpha=0.6)
        row[0].set(xscale="log", yscale="log", xlabel="scope γ", ylabel="f_γ(x) − f(x) (nats)", title=model)
        row[1].set(yscale="log", ylabel="adaptive sharpness λ_max(THT)", title=f"{model}: every seed")
        row[1].set_xticks(range(len(runs)), [r.values["method"] for r in runs], rotation=20)
        row[1].set_xlim(-0.5, len(runs) - 0.5)
        row[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def finalize_comparison(
    name: str, config: dict[str, Any], results: Sequence[UnitResult], out: Path, paper: str
) -> tuple[dict[str, Any], str]:
    """``results.json`` (``runs``), the arrays, the two standard figures and the report body."""
    rows = run_rows(results)
    save_npz(
        out / f"{name.replace('-', '_')}.npz",
        **{f"{r.values['model']}_{r.values['method']}_{k}": a for r in results for k, a in r.arrays.items()},
    )
    save(plot_curves(results, "val_error", "validation error %"), out / "val_error.png")
    save(plot_curves(results, "train_loss", "training loss"), out / "train_loss.png")
    body = [
        protocol_text(config),
        runs_table(rows),
        paper,
        "![validation error](val_error.png)",
        "![training loss](train_loss.png)",
    ]
    return {"data": config["data"], "runs": rows}, "\n\n".join(body)
