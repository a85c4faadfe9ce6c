"""``anneal``: AnnealSGD against Adam, resampled gradient noise and SAM (AnnealSGD paper §5.3–5.6).

AnnealSGD (AnnealSGD paper Alg. 1, Thesis Alg. 1 "Trivialized-SGD") feeds its base optimizer the gradient
∇f(w) + h_i, with a fixed random field h ∼ J√(p(p−2))·N(0, I) annealed by h_i = (2e^{−i/τ0})^{1/2} h
(eq. (12)–(13)). The paper's claims, on MNIST:

- §5.3, Fig. 3a/3b: on the thin, very deep "mnistfc" (16 hidden layers of 128 ReLU units,
  ``nets.get("mnistfc-deep")``), Adam (lr 1e-3, ℓ2 1e-5, 50 epochs) against AnnealSGD with Adam as base
  (J = 1e-3, τ0 = 500): "dramatically faster training in the beginning when the external field is
  stronger" (training loss averaged over 10 runs), "the minimum of the absolute value of the
  back-propagated gradient with AnnealSGD [...] is significantly larger than the original gradient", and a
  final validation error of 2.48% against 2.92%;
- §5.4, Fig. 3c: LeNet (``lenet-anneal``; Adam lr 1e-4, batch 256, ℓ2 1e-3, 100 epochs) against AnnealSGD
  (J = 1e-4, τ0 = 1000): validation error 0.55 ± 0.03% against 0.61 ± 0.04% (10 runs);
- §5.6, Fig. 4, Table 1 (All-CNN-BN on CIFAR-10): annealed *resampled* gradient noise (Neelakantan et al.
  2015, ``gradient-noise``) improves on the baseline less than AnnealSGD (8.16 ± 0.07% vs 7.95 ± 0.04%,
  baseline 8.42 ± 0.08%), because the weights align with a new random direction at every step instead of
  one fixed direction (Fig. 4: the alignment |hᵀw| over training).

Here every method runs with the comparison protocol of :mod:`deeplandscape.experiments._compare` (same
initializations, batch orders, step-size search budget, effective epochs; the width of every seed's
solution; SAM as the modern baseline on request) with the paper's per-network settings (learning rate, ℓ2
regularization as the base optimizer's ``weight_decay``, J, τ0). Measurement choices (the paper states
none of them):

- **Minimum absolute back-propagated gradient (Fig. 3b).** The paper plots one curve per optimizer without
  saying over what the minimum runs. The minimum over single weights is an extreme order statistic that is
  exactly 0 as soon as one ReLU unit is dead, so here it runs over *layers*: with W_ℓ the kernel of weight
  layer ℓ (a parameter tensor with ≥ 2 dimensions, the layers p of §5.2) and g the gradient the base
  optimizer is fed,

      G_ℓ = mean_{w ∈ W_ℓ} |g_w|,        min|grad| = min_ℓ G_ℓ,

  the gradient magnitude of the layer where it has vanished most. g = ∇f(w) + δ, with δ the perturbation
  the method adds at its next step: s_i h for AnnealSGD ("the external magnetic field results in a gradient
  bias and thus artificially boosts the magnitude of the gradient", §5.3), σ_t ε_t for gradient noise (the
  very draw of its next step), 0 for Adam and SAM. The loss gradient alone, ∇f(w), is reported too
  (``min_abs_loss_grad``). ∇f is the mean cross entropy of a fixed batch (the first ``grad_samples``
  training samples) in evaluation mode, so that the measurement neither consumes random numbers nor
  changes batch-norm statistics (mnistfc-deep has neither dropout nor batch norm, so there it is the
  training-mode gradient). ``min_abs_grad_early`` is its mean over the evaluation points after the start
  up to the first at or beyond ``early_epochs`` effective epochs, while the field is strong.
- **Alignment (Fig. 4).** For a perturbation direction ξ with unit-variance entries (ξ = h/(J√(p(p−2))) for
  AnnealSGD; the standard-normal ε of the latest step for gradient noise) the alignment is reported as
  z = |ξᵀw| / ‖w‖, which is |N(0, 1)| (mean (2/π)^{1/2} ≈ 0.80) when w is independent of ξ and grows like
  √D·|cos(ξ, w)| as the weights align with it; |hᵀw| itself (``AnnealSGD.alignment``, the paper's ordinate)
  is kept in the arrays.
- **Gradient noise** gets the same Adam base and an initial standard deviation equal to the field's,
  √η = √2·J√(p(p−2)) (η = 2J²p(p−2)), with Neelakantan et al.'s decay σ_t² = η/(1 + t)^{0.55}; the two
  then differ in the resampling (and in the decay law).
- **τ0** is ``tau0_scale`` × the paper's value: the budgets here (2,079 steps at the default scale, 2,345
  at the reference scale) are much shorter than the paper's (≈ 20,000 steps), and the field must have
  decayed before the end for the final errors to mean anything. With ``tau0_scale`` = 0.2 (τ0 = 100 and
  200) the field ends at e^{−T/2τ0} ≤ 0.6% of its start (the paper's runs end at T/τ0 ≈ 40 and 20); a run
  whose field is still above 1% at the end (:data:`._compare.FIELD_LIMIT`) decides no claim on final
  errors. ``j_scale`` multiplies J (and the noise's initial magnitude with it).
- **Claims and guards** (:mod:`._verdicts`): a method at chance level (Adam on the 16-layer thin net at
  small budgets) makes an error comparison not decidable; every method must complete 100 steps.
- **Seeds.** The optimizers' generators (the field, the noise) are seeded with a hash of the run's seed
  (:func:`~deeplandscape.experiments._compare.optimizer_seed`), not with the seed that initialized the
  network: the same integer would replay the same random stream and correlate h with the initial weights.
- The mini-batch size and the budget of effective epochs are the same for both networks (the paper used
  batch 256 and 100 epochs for LeNet, 50 epochs for mnistfc); SAM (not in the paper) uses SGD with
  Nesterov momentum 0.9 and step 0.05 as base, with the network's ℓ2 regularization.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.ticker import MaxNLocator
from torch import Tensor, nn

from deeplandscape import nets, optim
from deeplandscape.experiments import _compare as C
from deeplandscape.experiments import _verdicts as V
from deeplandscape.experiments._plot import plt, save
from deeplandscape.experiments.claims import (
    Claim,
    PaperNumber,
    RunData,
    Verdict,
    all_of,
    decide,
    fmt,
    paired_difference,
)
from deeplandscape.experiments.spec import Diagnostic, Experiment, Figure, Param, Table, Unit, UnitResult
from deeplandscape.optim import AnnealSGD, GradientNoise, estimate_network_size, noise_std

CHANCE_ALIGNMENT = math.sqrt(2.0 / math.pi)  # E|N(0, 1)|: z of a direction independent of the weights
COLORS = {"Adam": "tab:blue", "AnnealSGD": "tab:red", "GradientNoise": "tab:green", "SAM": "tab:purple"}


@dataclass(frozen=True)
class PaperSettings:
    """The paper's settings for one network (AnnealSGD paper §5.3, §5.4)."""

    lr: float  #: Adam learning rate
    weight_decay: float  #: ℓ2 regularization
    J: float  #: coupling of the field
    tau0: float  #: annealing time constant (iterations)
    sam_lr: float  #: SGD step of SAM's base (not in the paper)


SETTINGS = {
    "mnistfc-deep": PaperSettings(lr=1e-3, weight_decay=1e-5, J=1e-3, tau0=500.0, sam_lr=0.05),
    "lenet-anneal": PaperSettings(lr=1e-4, weight_decay=1e-3, J=1e-4, tau0=1000.0, sam_lr=0.05),
}
METHOD_KEYS = ("adam", "anneal", "noise", "sam")
NOISE_GAMMA = 0.55  # Neelakantan et al. 2015
PAPER = (
    "Paper (AnnealSGD paper §5.3–5.6): on the thin, very deep mnistfc AnnealSGD trains dramatically faster "
    "early (Fig. 3a), its minimum absolute back-propagated gradient is significantly larger (Fig. 3b) and "
    "its final validation error is lower (2.48% vs 2.92%); on LeNet 0.55 ± 0.03% vs 0.61 ± 0.04% (Fig. 3c); "
    "resampled annealed noise helps less than the fixed field (Table 1) because the weights do not stay "
    "aligned with one direction (Fig. 4). Panels: Fig. 3a is the training loss of mnistfc-deep, Fig. 3c the "
    "validation error of lenet-anneal, Fig. 3b the minimum absolute gradient, Fig. 4 the alignment."
)


# ---------------------------------------------------------------------------------------------- methods


class RecordedGradientNoise(GradientNoise):
    """:class:`~deeplandscape.optim.GradientNoise` that remembers where its latest ε was drawn from.

    Its steps are those of ``GradientNoise`` exactly; before each draw it keeps the generators' states, so
    that :meth:`last_noise` can redraw that ε (for the alignment of AnnealSGD paper Fig. 4) without storing
    a parameter-sized copy.
    """

    def _perturbed_grads(
        self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor], foreach: bool
    ) -> list[Tensor]:
        records = self.__dict__.setdefault("_records", {})
        index = next(i for i, g in enumerate(self.param_groups) if g is group)
        states = {str(p.device): self.generator(p.device).get_state() for p in params}
        records[index] = (list(params), states)
        return super()._perturbed_grads(group, params, grads, foreach)

    def last_noise(self) -> dict[Tensor, Tensor]:
        """The standard-normal ε of the latest step, per parameter ({} before the first step)."""
        out: dict[Tensor, Tensor] = {}
        for params, states in self.__dict__.get("_records", {}).values():
            out.update(_draw(params, _generators(states)))
        return out


def _generators(states: dict[str, Tensor]) -> dict[str, torch.Generator]:
    """Fresh generators (one per device) set to ``states``."""
    out = {}
    for key, state in states.items():
        out[key] = torch.Generator(device=key)
        out[key].set_state(state)
    return out


def _draw(params: list[Tensor], generators: dict[str, torch.Generator]) -> dict[Tensor, Tensor]:
    """Standard normals shaped like ``params``, drawn in order from ``generators`` (by device)."""
    return {p: torch.empty_like(p).normal_(generator=generators[str(p.device)]) for p in params}


@dataclass(frozen=True)
class AnnealMethod(C.Method):
    """A :class:`~deeplandscape.experiments._compare.Method` whose optimizer is a
    :class:`RecordedGradientNoise` when ``recorded_noise``."""

    recorded_noise: bool = False

    def build(self, params: Any, factor: float, seed: int) -> torch.optim.Optimizer:
        if not self.recorded_noise:
            return super().build(params, factor, seed)
        kwargs, base_kwargs = self.tuned_kwargs(factor)
        base = optim.get(self.base or "sgd")
        return RecordedGradientNoise(params, base, seed=C.optimizer_seed(seed), **kwargs, **base_kwargs)


def network_field_std(model_name: str, J: float) -> float:
    """v_c = J√(p(p−2)) of the network (AnnealSGD paper Alg. 1 line 4, p from §5.2)."""
    p = estimate_network_size(nets.get(model_name, seed=0)).p
    return J * math.sqrt(p * (p - 2))


def methods(model_name: str, config: dict[str, Any]) -> dict[str, C.Method]:
    """Adam, AnnealSGD (Adam base), gradient noise (Adam base) and SAM (SGD base) with the paper's settings
    for ``model_name`` (§5.3–5.4); τ0 is scaled by ``config['tau0_scale']``, J (and with it the noise's
    initial magnitude) by ``config['j_scale']`` where given."""
    if model_name not in SETTINGS:
        raise ValueError(f"Invalid model: {model_name!r} (known: {', '.join(SETTINGS)})")
    s = SETTINGS[model_name]
    adam = {"lr": s.lr, "weight_decay": s.weight_decay}
    J = s.J * config.get("j_scale", 1.0)
    eta = 2.0 * network_field_std(model_name, J) ** 2
    return {
        "adam": AnnealMethod("Adam", "adam", adam),
        "anneal": AnnealMethod("AnnealSGD", "anneal-sgd", {"J": J, "tau0": s.tau0 * config["tau0_scale"]},
                               base="adam", base_kwargs=adam),
        "noise": AnnealMethod("GradientNoise", "gradient-noise", {"eta": eta, "gamma": NOISE_GAMMA},
                              base="adam", base_kwargs=adam, recorded_noise=True),
        "sam": AnnealMethod("SAM", "sam", {"rho": 0.05}, base="sgd",
                            base_kwargs={"lr": s.sam_lr, "momentum": 0.9, "nesterov": True,
                                         "weight_decay": s.weight_decay}),
    }  # fmt: skip


# ---------------------------------------------------------------------------------------------- measurements


def weight_layers(model: nn.Module) -> list[tuple[str, Tensor]]:
    """The kernels of the weight layers (parameters with ≥ 2 dimensions; AnnealSGD paper §5.2), in order."""
    return [(name, p) for name, p in model.named_parameters() if p.dim() >= 2]


def next_perturbation(optimizer: torch.optim.Optimizer) -> dict[Tensor, Tensor]:
    """δ that ``optimizer`` adds to the gradient at its next step, per parameter ({} when it adds none).

    AnnealSGD: s_i h (eq. (12)); gradient noise: σ_t ε_t, ε_t drawn from copies of the optimizer's
    generators (the very numbers its next step will draw when every parameter that requires a gradient
    gets one; the optimizer is left untouched).
    """
    out: dict[Tensor, Tensor] = {}
    if isinstance(optimizer, AnnealSGD):
        for group in optimizer.param_groups:
            if group["J"] != 0:
                s = optimizer.scale(group)
                out.update({p: s * optimizer.state[p]["field"] for p in group["params"]})
    elif isinstance(optimizer, GradientNoise):
        devices = {str(p.device): p.device for g in optimizer.param_groups for p in g["params"]}
        generators = _generators({k: optimizer.generator(d).get_state() for k, d in devices.items()})
        for group in optimizer.param_groups:  # the groups draw one after the other, as in step()
            if group["eta"] != 0:
                params = [p for p in group["params"] if p.requires_grad]
                std = noise_std(group["step"], group["eta"], group["gamma"])
                out.update({p: std * e for p, e in _draw(params, generators).items()})
    return out


def layer_abs_grads(
    model: nn.Module, x: Tensor, y: Tensor, perturbation: dict[Tensor, Tensor] | None = None
) -> Tensor:
    """G_ℓ = mean over the kernel W_ℓ of |∂f/∂w + δ_w| for every weight layer ℓ (float64 vector).

    f is the mean cross entropy of ``(x, y)`` in evaluation mode (no batch-norm statistics are updated and
    no random numbers drawn); δ is ``perturbation`` (0 where absent). ``p.grad`` is left untouched.
    """
    layers = weight_layers(model)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            loss = F.cross_entropy(model(x), y)
            grads = torch.autograd.grad(loss, [p for _, p in layers])
    finally:
        model.train(was_training)
    perturbation = perturbation or {}
    out = []
    for (_, p), g in zip(layers, grads, strict=True):
        if p in perturbation:
            g = g + perturbation[p]
        out.append(g.detach().abs().double().mean())
    return torch.stack(out)


def alignment_z(weights: list[Tensor], directions: list[Tensor]) -> float:
    """z = |ξᵀw| / ‖w‖ over all the given tensors (|N(0, 1)| for a standard-normal ξ independent of w)."""
    dot = sum(float(torch.dot(d.flatten().double(), w.detach().flatten().double()))
              for w, d in zip(weights, directions, strict=True))  # fmt: skip
    norm = math.sqrt(sum(float(w.detach().double().pow(2).sum()) for w in weights))
    return abs(dot) / norm


def _alignments(optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """``alignment`` (z) and ``alignment_raw`` (|hᵀw|) of AnnealSGD's field or of the latest noise."""
    if isinstance(optimizer, AnnealSGD):
        params, xi = [], []
        for group in optimizer.param_groups:
            v_c = group["J"] * math.sqrt(group["p"] * (group["p"] - 2))
            params += group["params"]
            xi += [optimizer.state[p]["field"] / v_c for p in group["params"]]
        return {"alignment": alignment_z(params, xi), "alignment_raw": optimizer.alignment()}
    if isinstance(optimizer, RecordedGradientNoise):
        noise = optimizer.last_noise()
        if not noise:
            return {"alignment": math.nan, "alignment_raw": math.nan}
        group = optimizer.param_groups[0]
        std = noise_std(group["step"] - 1, group["eta"], group["gamma"])  # σ of the latest step
        params = list(noise)
        z = alignment_z(params, [noise[p] for p in params])
        norm = math.sqrt(sum(float(p.detach().double().pow(2).sum()) for p in params))
        return {"alignment": z, "alignment_raw": std * z * norm}
    return {}


def measurement(x: Tensor, y: Tensor) -> Callable[[nn.Module, torch.optim.Optimizer], dict[str, float]]:
    """The ``extra(model, optimizer)`` of :func:`~deeplandscape.experiments._compare.run_method`.

    Keys: ``min_abs_grad`` (min_ℓ G_ℓ of ∇f + δ), ``min_abs_loss_grad`` (of ∇f), ``abs_grad_layer_<ℓ>``
    (G_ℓ of ∇f + δ), and for AnnealSGD / gradient noise ``alignment`` (z of the field or of the latest
    noise; NaN before the first draw) and ``alignment_raw`` (|hᵀw| of AnnealSGD's h, |δᵀw| of the latest
    noise δ).
    """

    def extra(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, float]:
        plain = layer_abs_grads(model, x, y)
        delta = next_perturbation(optimizer)
        fed = layer_abs_grads(model, x, y, delta) if delta else plain
        values = {"min_abs_grad": float(fed.min()), "min_abs_loss_grad": float(plain.min())}
        values.update({f"abs_grad_layer_{i:02d}": float(v) for i, v in enumerate(fed)})
        values.update(_alignments(optimizer))
        return values

    return extra


# ---------------------------------------------------------------------------------------------- experiment

PARAMS = C.data_params(
    **C.protocol_params(
        epochs=Param("float", 27.0, "budget of effective epochs per run", quick=1.0, reference=1.5,
                     paper=50.0, low=0.01),
        seeds=Param("int", 5, "seeds per method (same initializations and batch orders)", quick=1, paper=10,
                    low=1),
        evaluations=Param("int", 9, "evaluation points along training", quick=3, reference=5, paper=50,
                          low=1),
    ),
    models=Param("str", "mnistfc-deep,lenet-anneal", "networks, comma-separated (mnistfc-deep, lenet-anneal)",
                 quick="mnistfc-deep"),
    methods=Param("str", "adam,anneal,noise", "methods, comma-separated (adam: Adam; anneal: AnnealSGD; "
                  "noise: resampled annealed gradient noise; sam: SAM)"),
    hessian_samples=Param("int", 128, "training samples for the Hessian at the solution", quick=64,
                          paper=1024, low=1),
    tau0_scale=Param("float", 0.2, "τ0 = tau0_scale × the paper's τ0 (500 for mnistfc-deep, 1000 for "
                     "lenet-anneal): the field must decay below 1% of its start within the run", paper=1.0,
                     low=1e-6),
    j_scale=Param("float", 1.0, "J = j_scale × the paper's J (1e-3 for mnistfc-deep, 1e-4 for lenet-anneal)",
                  low=0.0),
    grad_samples=Param("int", 256, "fixed training samples of the gradient measurement", quick=64, low=1),
    early_epochs=Param("float", 3.0, "early in training: the evaluation points after the start up to the "
                       "first at or beyond early_epochs effective epochs", quick=1.0, reference=0.5,
                       paper=10.0, low=0.0),
)  # fmt: skip


def units(config: dict[str, Any]) -> list[Unit]:
    C.width_settings(config)
    C.names(config, "models", list(SETTINGS))
    return C.method_units(config, dict.fromkeys(METHOD_KEYS))


def run_unit(config: dict[str, Any], unit: Unit, seed: int) -> UnitResult:
    model_name = unit.params["model"]
    d = C.load_images(config)
    n = config["grad_samples"]
    if n > len(d.y):
        raise ValueError(f"Invalid grad_samples: {n} (the training set has {len(d.y)})")
    method = methods(model_name, config)[unit.params["method"]]
    return C.run_method(config, model_name, method, d=d, extra=measurement(d.x[:n], d.y[:n]))


# ---------------------------------------------------------------------------------------------- results

# The paper's numbers (MNIST: final validation error %, 10 runs; Table 1: All-CNN-BN on CIFAR-10, test %).
PAPER = {
    ("mnistfc-deep", "Adam"): PaperNumber(2.92, "AnnealSGD paper §5.3", "validation, MNIST"),
    ("mnistfc-deep", "AnnealSGD"): PaperNumber(2.48, "AnnealSGD paper §5.3", "validation, MNIST"),
    ("lenet-anneal", "Adam"): PaperNumber((0.61, 0.04), "AnnealSGD paper §5.4", "validation, MNIST"),
    ("lenet-anneal", "AnnealSGD"): PaperNumber((0.55, 0.03), "AnnealSGD paper §5.4", "validation, MNIST"),
}
TABLE1 = {
    "Adam": PaperNumber((8.42, 0.08), "AnnealSGD paper Table 1", "baseline (SGD), CIFAR-10"),
    "GradientNoise": PaperNumber((8.16, 0.07), "AnnealSGD paper Table 1", "resampled, annealed noise"),
    "AnnealSGD": PaperNumber((7.95, 0.04), "AnnealSGD paper Table 1", "with topology trivialization"),
}


def _nan_to_none(values: np.ndarray) -> list[float | None]:
    return [None if not math.isfinite(v) else float(v) for v in values]


def early_points(effective_epochs: np.ndarray, early_epochs: float) -> np.ndarray:
    """Mask of the evaluation points after the start up to the first one at or beyond ``early_epochs``."""
    after = effective_epochs > 0
    beyond = np.flatnonzero(after & (effective_epochs >= early_epochs))
    last = beyond[0] if beyond.size else len(effective_epochs) - 1
    return after & (np.arange(len(effective_epochs)) <= last)


def early_per_seed(epochs: np.ndarray, values: np.ndarray, early_epochs: float) -> np.ndarray:
    """Each seed's mean of ``values`` over its early evaluation points (:func:`early_points`)."""
    return np.array([v[early_points(e, early_epochs)].mean() for e, v in zip(epochs, values, strict=True)])


def _early(r: UnitResult, key: str, early_epochs: float) -> tuple[float, float]:
    """Mean over seeds (and its std) of the mean of ``key`` over the early points of each seed."""
    per_seed = early_per_seed(r.arrays["effective_epochs"], r.arrays[key], early_epochs)
    return float(per_seed.mean()), C._std(per_seed)


def _alignment_summary(results: list[UnitResult]) -> dict[str, Any]:
    curves = []
    for r in results:
        if "extra_alignment" not in r.arrays:
            continue
        z, raw = r.arrays["extra_alignment"], r.arrays["extra_alignment_raw"]
        curves.append(
            {
                "model": r.values["model"],
                "method": r.values["method"],
                "effective_epochs": [float(e) for e in r.arrays["effective_epochs"].mean(0)],
                "z_mean": _nan_to_none(z.mean(0)),
                "z_final": float(z[:, -1].mean()),
                "z_max": float(np.nanmax(z, axis=1).mean()),
                "raw_final": float(raw[:, -1].mean()),
            }
        )
    return {
        "definition": "z = |xi^T w| / ||w||, xi the unit-variance perturbation direction (the fixed field of "
        "AnnealSGD, the latest noise draw of gradient noise); E z = sqrt(2/pi) for xi independent of w",
        "chance": CHANCE_ALIGNMENT,
        "curves": curves,
    }


def _band(ax, x: np.ndarray, y: np.ndarray, label: str, **kw) -> None:
    """Mean over seeds with a min–max band; points where no seed has a value are left out."""
    keep = np.isfinite(y).any(0)
    x, y = x[keep], y[:, keep]
    (line,) = ax.plot(x, np.nanmean(y, 0), label=label, **kw)
    if y.shape[0] > 1:
        ax.fill_between(x, np.nanmin(y, 0), np.nanmax(y, 0), color=line.get_color(), alpha=0.15)


def plot_min_abs_grad(results: list[UnitResult], early_epochs: float):
    """Fig. 3b: min_ℓ G_ℓ against effective epochs (solid: fed gradient ∇f + δ, dashed: ∇f), and the
    per-layer G_ℓ at the first evaluation point after the start."""
    models = list(dict.fromkeys(r.values["model"] for r in results))
    fig, axes = plt.subplots(len(models), 2, figsize=(11, 3.6 * len(models)), squeeze=False)
    for row, model in zip(axes, models, strict=True):
        for r in (r for r in results if r.values["model"] == model):
            x = r.arrays["effective_epochs"].mean(0)
            color = COLORS.get(r.values["method"])
            _band(row[0], x, r.arrays["extra_min_abs_grad"], r.values["method"], color=color)
            if not np.array_equal(r.arrays["extra_min_abs_grad"], r.arrays["extra_min_abs_loss_grad"]):
                row[0].plot(x, r.arrays["extra_min_abs_loss_grad"].mean(0), "--", color=color,
                            label=f"{r.values['method']} (∇f only)")  # fmt: skip
            keys = sorted(k for k in r.arrays if k.startswith("extra_abs_grad_layer_"))
            profile = np.array([r.arrays[k][:, 1].mean() for k in keys])
            row[1].plot(np.arange(len(keys)), profile, "o-", color=color, label=r.values["method"])
        row[0].axvline(early_epochs, color="gray", lw=0.8, ls=":")
        row[0].set_xlabel("effective epochs")
        row[0].set_ylabel("min over layers of mean |grad|")
        row[1].set_xlabel("weight layer (input → output)")
        row[1].xaxis.set_major_locator(MaxNLocator(integer=True))
        row[1].set_ylabel("mean |grad| of the layer (1st point)")
        for ax in row:
            ax.set_yscale("log")
            ax.set_title(model)
        row[0].legend(fontsize=7)
        row[1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_alignment(results: list[UnitResult]):
    """Fig. 4: z = |ξᵀw|/‖w‖ against effective epochs, with the level of an independent direction."""
    aligned = [r for r in results if "extra_alignment" in r.arrays]
    models = list(dict.fromkeys(r.values["model"] for r in aligned))
    fig, axes = plt.subplots(1, max(len(models), 1), figsize=(5.5 * max(len(models), 1), 3.8), squeeze=False)
    for ax, model in zip(axes[0], models, strict=False):
        for r in (r for r in aligned if r.values["model"] == model):
            x, method = r.arrays["effective_epochs"].mean(0), r.values["method"]
            _band(ax, x, r.arrays["extra_alignment"], method, color=COLORS.get(method))
        ax.axhline(CHANCE_ALIGNMENT, color="gray", ls=":", label="independent direction")
        ax.set_yscale("log")
        ax.set_xlabel("effective epochs")
        ax.set_ylabel("|ξᵀw| / ‖w‖")
        ax.set_title(model)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def finalize(config: dict[str, Any], results: list[UnitResult], out: Path) -> dict[str, Any]:
    npz = C.save_comparison("anneal", results, out)
    rows = C.run_rows(results)
    early = config["early_epochs"]
    for row, r in zip(rows, results, strict=True):
        row["min_abs_grad_early"], row["min_abs_grad_early_std"] = _early(r, "extra_min_abs_grad", early)
        row["min_abs_loss_grad_early"], _ = _early(r, "extra_min_abs_loss_grad", early)
        row["train_loss_early"], _ = _early(r, "train_loss", early)
    save(C.plot_curves(results, "train_loss", "training loss"), out / "train_loss.png")
    save(C.plot_curves(results, "val_error", "validation error %"), out / "val_error.png")
    save(plot_min_abs_grad(results, early), out / "min_abs_grad.png")
    alignment = _alignment_summary(results)
    if alignment["curves"]:
        save(plot_alignment(results), out / "alignment.png")
    save(C.plot_width(results, config["width_gammas"]), out / "width.png")
    return {"data": config["data"], "npz": npz, "runs": rows, "alignment": alignment,
            "width": V.width_summary(config), "early_epochs": early}  # fmt: skip


def tables(results: dict[str, Any], config: dict[str, Any]) -> list[Table]:
    paper = {key: f"{number} ({number.note})" for key, number in PAPER.items()}
    for r in results["runs"]:
        if r["method"] == "GradientNoise":
            number = TABLE1["GradientNoise"]
            paper[r["model"], r["method"]] = f"{number} (Table 1: All-CNN-BN, CIFAR-10 test)"
    errors = V.runs_table(results, config, paper, "AnnealSGD paper (error %)")
    note = (
        f"{errors.note} AnnealSGD: J = {config['j_scale']:g} × and τ0 = {config['tau0_scale']:g} × the "
        "paper's; Table 1 (All-CNN-BN on CIFAR-10, SGD base): "
        f"{', '.join(f'{k} {v}' for k, v in TABLE1.items())}."
    )
    z = {(c["model"], c["method"]): c for c in results["alignment"]["curves"]}
    early = f"≤ {results['early_epochs']:g} effective epochs"
    gradients = Table(
        "gradients", "Fig. 3a–b and Fig. 4: early training and the alignment with the perturbation",
        ("model", "method", f"training loss, early ({early})", "min_ℓ mean|∇f + δ|, early",
         "min_ℓ mean|∇f|, early", "alignment z, final", "paper"),
        tuple(
            (r["model"], r["method"], fmt(r["train_loss_early"]), fmt(r["min_abs_grad_early"]),
             fmt(r["min_abs_loss_grad_early"]),
             fmt(z[r["model"], r["method"]]["z_final"]) if (r["model"], r["method"]) in z else "–",
             PAPER_SHAPES.get(r["method"], "–") if r["model"] == "mnistfc-deep" else "–")
            for r in results["runs"]
        ),
        "Means over seeds of each seed's mean over the early evaluation points. min_ℓ mean|·| is the mean "
        "absolute gradient of the layer where it is smallest (δ: the perturbation the method adds, s_i h for "
        "AnnealSGD, σ_t ε_t for gradient noise). z = |ξᵀw|/‖w‖ with ξ the unit-variance perturbation "
        f"direction (≈ {CHANCE_ALIGNMENT:.2f} for a direction independent of w). The paper shows curves, "
        "no numbers (Fig. 3a, 3b; Fig. 4 on CIFAR-10).",
    )  # fmt: skip
    return [
        Table(errors.id, errors.title, errors.header, errors.rows, note),
        gradients,
        V.width_table(results),
    ]


PAPER_SHAPES = {
    "AnnealSGD": "Fig. 3a: trains dramatically faster early; Fig. 3b: larger min |grad|",
    "Adam": "Fig. 3a–b: slower early, smaller min |grad|",
}

# ---------------------------------------------------------------------------------------------- claims

DEEP = "mnistfc-deep"


def _early_values(run: RunData, model: str, method: str, key: str) -> np.ndarray:
    a = V.arrays(run, model, method)
    return early_per_seed(a["effective_epochs"], a[key], run.results["early_epochs"])


def _decide_faster_early(run: RunData) -> Verdict:
    for method in ("AnnealSGD", "Adam"):
        V.guard(run, DEEP, method, classifier=False, field=False)
    stat = paired_difference(
        _early_values(run, DEEP, "AnnealSGD", "train_loss"), _early_values(run, DEEP, "Adam", "train_loss"),
        f"early training loss AnnealSGD − Adam on {DEEP}",
    )  # fmt: skip
    return decide(stat, below=0.0)


def _decide_min_grad(run: RunData) -> Verdict:
    for method in ("AnnealSGD", "Adam"):
        V.guard(run, DEEP, method, classifier=False, field=False)
    tiny = np.finfo(np.float32).tiny  # Adam's smallest layer gradient can vanish to 0 in float32
    a, b = (np.log10(np.maximum(_early_values(run, DEEP, k, "extra_min_abs_grad"), tiny))
            for k in ("AnnealSGD", "Adam"))  # fmt: skip
    plain = np.log10(np.maximum(_early_values(run, DEEP, "AnnealSGD", "extra_min_abs_loss_grad"), tiny))
    stat = paired_difference(a, b, f"log10 early min|grad| AnnealSGD / Adam on {DEEP}")
    alone = f"AnnealSGD's ∇f alone: log10 ratio to Adam {float((plain - b).mean()):.3g} (mean over seeds)"
    return decide(stat, above=0.0, evidence=alone)


def _per_model(run: RunData, compare, a: str, b: str) -> Verdict:
    return all_of([
        (model, V.case_verdict(lambda _, m=model: compare(run, m, a, b))) for model in V.models(run, a, b)
    ])  # fmt: skip


def _higher_alignment(run: RunData, model: str, a: str, b: str) -> Verdict:
    V.guard(run, model, a, classifier=False, field=False)
    V.guard(run, model, b, classifier=False, field=False)
    level = {
        k: np.log10(np.nanmean(V.arrays(run, model, k)["extra_alignment"][:, 1:], axis=1)) for k in (a, b)
    }
    stat = paired_difference(level[a], level[b], f"log10 mean alignment z {a} / {b} on {model}")
    return decide(stat, above=0.0)


GUARDS = (
    "Guards (not decidable): fewer than 100 steps; AnnealSGD's field not below 1% of its start at the end; "
    "a classifier not shown to exceed twice chance on every seed (Adam on the 16-layer mnistfc stays at "
    "chance "
    "at small budgets, and “AnnealSGD is better than Adam” would then be vacuous)."
)
CLAIMS = (
    Claim(
        "anneal.faster-early",
        "“As Fig. 3a shows, averaged over 10 runs, AnnealSGD results in dramatically faster training in the "
        "beginning when the external field is stronger”",
        "AnnealSGD paper §5.3, Fig. 3a",
        f"On {DEEP}, AnnealSGD's training loss averaged over the early evaluation points (after the "
        "start, up "
        "to early_epochs) minus Adam's is below 0 (paired t interval over seeds; the paper gives no number "
        "for “dramatically”). Guard: fewer than 100 steps.",
        _decide_faster_early,
        shown_in="gradients",
    ),
    Claim(
        "anneal.min-grad",
        "“Moreover, as predicted, the minimum of the absolute value of the back-propagated gradient with "
        "AnnealSGD in Fig. 3b is significantly larger than the original gradient”",
        "AnnealSGD paper §5.3, Fig. 3b",
        f"On {DEEP}, log10 of AnnealSGD's early minimum over layers of the mean absolute back-propagated "
        "gradient (∇f + s_i h, the gradient its base optimizer is fed) minus Adam's is above 0 (paired t "
        "interval over seeds). Guard: fewer than 100 steps.",
        _decide_min_grad,
        shown_in="min_abs_grad.png",
    ),
    Claim(
        "anneal.error",
        "mnistfc: “The final validation error for annealing is also slightly smaller "
        f"({PAPER[DEEP, 'AnnealSGD']}"
        f"%) as compared to the error without it ({PAPER[DEEP, 'Adam']}%)”; LeNet: “we still have an "
        f"improvement in generalization error: {PAPER['lenet-anneal', 'AnnealSGD']}% final validation error "
        f"with annealing compared to {PAPER['lenet-anneal', 'Adam']}% without it”",
        "AnnealSGD paper §5.3–5.4, Fig. 3c",
        "On every network, AnnealSGD's test error minus Adam's (same seeds) is below 0 (the union of the t "
        "interval over seeds and the bootstrap interval over the test images). " + GUARDS,
        lambda run: _per_model(run, V.lower_error, "AnnealSGD", "Adam"),
        shown_in="errors",
    ),
    Claim(
        "anneal.fixed-field",
        "“although resampled noise improves slightly upon the baseline, fixing the direction of the additive "
        f"term works better” (All-CNN-BN on CIFAR-10: {TABLE1['AnnealSGD']}% against "
        f"{TABLE1['GradientNoise']}%)",
        "AnnealSGD paper §5.6, Table 1",
        "On every network, AnnealSGD's test error minus that of resampled annealed gradient noise (the same "
        "Adam base and initial magnitude) is below 0. The paper's comparison is on CIFAR-10; ours on "
        "its MNIST "
        "networks. " + GUARDS,
        lambda run: _per_model(run, V.lower_error, "AnnealSGD", "GradientNoise"),
        shown_in="errors",
    ),
    Claim(
        "anneal.noise-helps",
        "“although resampled noise improves slightly upon the baseline” (All-CNN-BN on CIFAR-10: "
        f"{TABLE1['GradientNoise']}% against the baseline's {TABLE1['Adam']}%)",
        "AnnealSGD paper §5.6, Table 1",
        "On every network, the test error of resampled annealed gradient noise minus Adam's is below 0. The "
        "paper's comparison is on CIFAR-10; ours on its MNIST networks. " + GUARDS,
        lambda run: _per_model(run, V.lower_error, "GradientNoise", "Adam"),
        shown_in="errors",
    ),
    Claim(
        "anneal.alignment",
        "“resampling is detrimental because it forces the weights to align in different uncorrelated "
        "directions at each iteration whereas the annealing scheme simply introduces a (modulated) bias in a "
        "fixed direction” (Fig. 4: the alignment |hᵀσ| of the weights with the perturbation)",
        "AnnealSGD paper §5.6, Fig. 4",
        "On every network, log10 of the alignment z = |ξᵀw|/‖w‖ of the weights with AnnealSGD's field, "
        "averaged over the evaluation points after the start, minus that with the latest resampled noise is "
        "above 0 (paired t interval over seeds). Guard: fewer than 100 steps.",
        lambda run: _per_model(run, _higher_alignment, "AnnealSGD", "GradientNoise"),
        shown_in="alignment.png",
    ),
    Claim(
        "anneal.wider",
        "Beyond the papers: AnnealSGD's solutions are wider than Adam's",
        "ours (the AnnealSGD paper makes no claim of flatness)",
        "In the Thesis's measure (Def. 4.20), AnnealSGD's solutions have a lower Local Entropy f_γ(x) than "
        "Adam's at every scope γ of the grid, on every network (paired t interval over seeds below 0). "
        + GUARDS,
        lambda run: _per_model(run, V.wider, "AnnealSGD", "Adam"),
        beyond_papers=True,
        shown_in="width",
    ),
)

DIAGNOSTICS = (
    V.longer_run("anneal", (), ("anneal.error", "anneal.fixed-field", "anneal.noise-helps",
                                "anneal.alignment"), factor=3),
    V.search_run("anneal", (), ("anneal.error", "anneal.fixed-field", "anneal.noise-helps")),
    Diagnostic(
        "anneal-strong-field", "anneal", ("models=mnistfc-deep", "methods=adam,anneal", "j_scale=10"),
        ("anneal.faster-early", "anneal.min-grad"),
        "With a ten times stronger field (J × 10), does AnnealSGD train faster early and carry a larger "
        "gradient than Adam? A change points at the field's magnitude at these budgets.",
    ),
)  # fmt: skip

FIGURES = (
    Figure(
        "train_loss.png",
        "training loss against effective epochs and wall-clock seconds (mean ± std over seeds)",
        "AnnealSGD paper Fig. 3a: mnistfc (16 × 128) trained with Adam against AnnealSGD (J = 1e-3, τ0 "
        "= 500): "
        f"AnnealSGD trains much faster early; validation error {PAPER[DEEP, 'AnnealSGD']}% against "
        f"{PAPER[DEEP, 'Adam']}%.",
    ),
    Figure(
        "val_error.png", "validation error against effective epochs and wall-clock seconds",
        "AnnealSGD paper Fig. 3c: validation error of LeNet, AnnealSGD "
        f"{PAPER['lenet-anneal', 'AnnealSGD']}% "
        f"against Adam {PAPER['lenet-anneal', 'Adam']}% (10 runs).",
    ),
    Figure(
        "min_abs_grad.png", "minimum over layers of the mean absolute gradient, and the per-layer profile",
        "AnnealSGD paper Fig. 3b: the minimum absolute back-propagated gradient is significantly larger with "
        "AnnealSGD than with Adam early in training.",
    ),
    Figure(
        "alignment.png", "alignment z = |ξᵀw|/‖w‖ of the weights with the perturbation direction",
        "AnnealSGD paper Fig. 4, Table 1: the weights stay aligned with the fixed field h (|hᵀw|) but "
        "not with "
        f"resampled noise; test error {TABLE1['AnnealSGD']}% (AnnealSGD), {TABLE1['GradientNoise']}% "
        f"(resampled noise), {TABLE1['Adam']}% (baseline) on CIFAR-10.",
    ),
    Figure(
        "width.png",
        "Local Entropy's excess f_γ(x) − f(x) against γ at every seed's solution, and the adaptive sharpness",
        "The AnnealSGD paper measures no width (our question, beyond the paper).",
    ),
)  # fmt: skip


EXPERIMENT = Experiment(
    name="anneal",
    description="AnnealSGD vs Adam, resampled gradient noise and SAM; min |grad| and alignment",
    reproduces="AnnealSGD paper §5.3–5.6, Fig. 3–4, Table 1 (Thesis §2.4.3)",
    params=PARAMS,
    units=units,
    run_unit=run_unit,
    finalize=finalize,
    tables=tables,
    figures=FIGURES,
    claims=CLAIMS,
    diagnostics=DIAGNOSTICS,
    order=400,
)
