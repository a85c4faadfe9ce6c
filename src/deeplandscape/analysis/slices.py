"""Loss slices: the loss along lines and planes in weight space (Li et al. 2018, "Visualizing the Loss
Landscape of Neural Nets", §4 filter normalization).

A slice through the trained weights x* along directions δ (and η) is

    line:   L(α)    = f(x* + α δ),
    plane:  L(α, β) = f(x* + α δ + β η),
    interpolation between two models a, b:  L(α) = f((1 − α) x_a + α x_b),

with f the size-weighted mean loss over the data set. Random directions are *filter-normalized*
(Li et al. 2018 §4): draw d ~ N(0, I) with the shape of every parameter tensor, then rescale each filter
(the slice along the first, output dimension of a weight tensor: a row of a Linear weight, an output
channel of a Conv weight)

    d_{i,j} ← d_{i,j} / ‖d_{i,j}‖ · ‖θ_{i,j}‖,

so the slice is comparable across networks with different weight scales. Biases and normalization-layer
parameters (one-dimensional tensors) get a zero direction by default, as in the reference code's
``ignore='biasbn'``; ``bias_bn="weight"`` copies the parameter itself instead (its ``else`` branch).

Any flat vector can be used as a direction, e.g. a Hessian eigenvector (:func:`loss_line` with
``direction=v``). The model is evaluated in eval mode by default and is left bitwise unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import vmap

from ._functional import check_vector, dataset_loss, flatten, pure_dataset_loss, unflatten
from ._model import (
    Batch,
    LossFn,
    Output,
    as_batches,
    check_output,
    preserved,
    select_output,
    trainable_parameters,
)

_NORM_LAYERS = (
    nn.modules.batchnorm._BatchNorm,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.modules.instancenorm._InstanceNorm,
)


@dataclass(frozen=True)
class LossLine:
    """A one-dimensional slice L(α) = f(x₀ + α δ) (or an interpolation between two models).

    ``alphas`` and ``losses`` are arrays of equal length; ``direction_norm`` is ‖δ‖ (for an
    interpolation, ‖x_b − x_a‖); the evaluation is exact up to floating point, ``n_evaluations`` counts the
    full passes over the data set.
    """

    alphas: np.ndarray
    losses: np.ndarray
    direction_norm: float
    n_evaluations: int


@dataclass(frozen=True)
class LossPlane:
    """A two-dimensional slice L(α, β) = f(x₀ + α δ + β η); ``losses[i, j]`` is at (alphas[i], betas[j])."""

    alphas: np.ndarray
    betas: np.ndarray
    losses: np.ndarray
    direction_norms: tuple[float, float]
    n_evaluations: int


def _normalization_parameter_names(model: nn.Module) -> set[str]:
    names = set()
    for module_name, module in model.named_modules():
        if isinstance(module, _NORM_LAYERS):
            for pname, _ in module.named_parameters(recurse=False):
                names.add(f"{module_name}.{pname}" if module_name else pname)
    return names


def filter_normalize(model: nn.Module, direction: Tensor, *, bias_bn: str = "zero") -> Tensor:
    """Rescale a flat direction filter by filter to the norms of the model's filters (Li et al. 2018 §4).

    For every weight tensor θ_i with ≥ 2 dimensions and every filter j (index along dimension 0):
    d_{i,j} ← d_{i,j} · ‖θ_{i,j}‖ / ‖d_{i,j}‖ (a zero filter of d stays zero). One-dimensional parameters
    (biases) and the parameters of normalization layers are set to zero (``bias_bn="zero"``) or to the
    parameter itself (``bias_bn="weight"``). Returns a new flat vector; ``direction`` is not modified.
    """
    if bias_bn not in ("zero", "weight"):
        raise ValueError(f"Invalid bias_bn: {bias_bn!r}; allowed values are 'zero' and 'weight'")
    check_vector(direction, model, "direction")
    params = trainable_parameters(model)
    norm_names = _normalization_parameter_names(model)
    parts = unflatten(direction.detach(), params)
    out = {}
    for name, theta in params.items():
        d = parts[name].to(theta.dtype)
        if theta.dim() <= 1 or name in norm_names:
            out[name] = torch.zeros_like(theta) if bias_bn == "zero" else theta.detach().clone()
            continue
        d_norm = d.reshape(d.shape[0], -1).norm(dim=1)
        t_norm = theta.detach().reshape(theta.shape[0], -1).norm(dim=1)
        scale = torch.where(d_norm > 0, t_norm / torch.where(d_norm > 0, d_norm, 1), 0)
        out[name] = d * scale.view(-1, *([1] * (d.dim() - 1)))
    return flatten(out)


def random_direction(
    model: nn.Module,
    *,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    bias_bn: str = "zero",
) -> Tensor:
    """A filter-normalized Gaussian direction for ``model`` as a flat vector (Li et al. 2018 §4).

    d ~ N(0, I) (drawn on the CPU with ``seed`` or ``generator``, so the same seed gives the same
    direction on every device), then :func:`filter_normalize`. Exactly one of ``seed``/``generator``
    should be given; with neither the seed is 0.
    """
    if seed is not None and generator is not None:
        raise ValueError("Invalid arguments: give seed or generator, not both")
    if generator is None:
        generator = torch.Generator().manual_seed(0 if seed is None else int(seed))
    params = trainable_parameters(model)
    d = sum(p.numel() for p in params.values())
    first = next(iter(params.values()))
    gaussian = torch.randn(d, generator=generator, dtype=torch.float64).to(first.device, first.dtype)
    return filter_normalize(model, gaussian, bias_bn=bias_bn)


def _grid(values: Sequence[float] | Tensor | np.ndarray, name: str) -> np.ndarray:
    grid = np.asarray(values, dtype=np.float64).reshape(-1)
    if grid.size == 0:
        raise ValueError(f"Invalid {name}: empty grid")
    if not np.isfinite(grid).all():
        raise ValueError(f"Invalid {name}: contains NaN or Inf")
    return grid


def _loss_in_place(
    model: nn.Module,
    loss_fn: LossFn,
    batches: list[Batch],
    params: list[Tensor],
    vector: Tensor,
    output: Output,
) -> Tensor:
    """f at ``vector`` written into the parameters (callers hold :func:`preserved`, which restores them)."""
    start = 0
    for p in params:
        p.copy_(vector[start : start + p.numel()].view_as(p))
        start += p.numel()
    n_total = sum(inputs.shape[0] for inputs, _ in batches)
    total = sum(
        loss_fn(select_output(model(inputs), output), targets) * inputs.shape[0]
        for inputs, targets in batches
    )
    return total / n_total


def _evaluate(
    model: nn.Module,
    loss_fn: LossFn,
    batches: list[Batch],
    x0: Tensor,
    directions: list[Tensor],
    coefficients: np.ndarray,
    labels: list[str],
    *,
    vectorize: bool,
    chunk_size: int,
    output: Output,
) -> np.ndarray:
    """f(x₀ + Σ_k c_{mk} δ_k) for every row c_m of ``coefficients``, ``chunk_size`` points at a time.

    By default each point is written into the model's parameters (under :func:`preserved`, so they are
    restored bit for bit) and the model runs as it is. With ``vectorize`` a chunk is one
    :func:`torch.func.vmap` call of :func:`torch.func.functional_call` over the points (a model that vmap
    cannot handle falls back to the loop, which gives the same numbers up to rounding).
    """
    basis = torch.stack(directions)
    params = list(trainable_parameters(model).values())
    out = np.empty(len(coefficients))
    for start in range(0, len(coefficients), chunk_size):
        c = torch.as_tensor(coefficients[start : start + chunk_size], dtype=x0.dtype, device=x0.device)
        points = x0 + c @ basis
        values = None
        if vectorize:
            try:
                values = vmap(lambda v: pure_dataset_loss(model, loss_fn, batches, v, output))(points)
            except (RuntimeError, NotImplementedError, ValueError):
                vectorize = False
        if values is None:
            values = torch.stack([_loss_in_place(model, loss_fn, batches, params, v, output) for v in points])
        out[start : start + len(points)] = values.detach().cpu().to(torch.float64).numpy()
    bad = np.flatnonzero(~np.isfinite(out))
    if bad.size:
        raise ValueError(f"Non-finite loss ({out[bad[0]]}) at {labels[bad[0]]}")
    return out


def _check_chunk_size(chunk_size: int) -> int:
    if not (isinstance(chunk_size, int) and chunk_size >= 1):
        raise ValueError(f"Invalid chunk_size: {chunk_size!r}; must be an integer >= 1")
    return chunk_size


def loss_line(
    model: nn.Module,
    loss_fn: LossFn,
    data: Iterable[Batch] | Batch,
    direction: Tensor,
    alphas: Sequence[float] | Tensor | np.ndarray | None = None,
    *,
    train: bool = False,
    vectorize: bool = False,
    chunk_size: int = 16,
    output: Output = None,
) -> LossLine:
    """L(α) = f(x₀ + α δ) on a grid of α (Li et al. 2018 §3, 1-D linear interpolation plot).

    ``direction`` is any flat vector with one entry per trainable parameter: a filter-normalized random
    direction (:func:`random_direction`), a Hessian eigenvector, a gradient. ``alphas`` defaults to 21
    points on [−1, 1]. The model is evaluated in eval mode unless ``train=True`` and is left bitwise
    unchanged (each grid point is written into its parameters, which are restored bit for bit afterwards).
    With ``vectorize=True`` ``chunk_size`` grid points are evaluated at once with ``torch.func.vmap`` over
    ``functional_call`` instead (eval mode only; not faster on CPU in benchmarks/instruments.md).
    ``output`` selects the logits of a model with dict or tuple outputs (a key, an index or a callable).
    """
    batches = as_batches(data)
    grid = _grid(np.linspace(-1.0, 1.0, 21) if alphas is None else alphas, "alphas")
    check_vector(direction, model, "direction")
    _check_chunk_size(chunk_size)
    with preserved(model, train=train), torch.no_grad():
        x0 = flatten(trainable_parameters(model))
        delta = direction.detach().to(x0.device, x0.dtype)
        losses = _evaluate(
            model,
            loss_fn,
            batches,
            x0,
            [delta],
            grid[:, None],
            [f"alpha={a:g}" for a in grid],
            vectorize=vectorize and not train,
            chunk_size=chunk_size,
            output=check_output(output),
        )
    return LossLine(grid, losses, float(delta.norm()), len(grid))


def loss_plane(
    model: nn.Module,
    loss_fn: LossFn,
    data: Iterable[Batch] | Batch,
    direction1: Tensor,
    direction2: Tensor,
    alphas: Sequence[float] | Tensor | np.ndarray | None = None,
    betas: Sequence[float] | Tensor | np.ndarray | None = None,
    *,
    train: bool = False,
    vectorize: bool = False,
    chunk_size: int = 16,
    output: Output = None,
) -> LossPlane:
    """L(α, β) = f(x₀ + α δ + β η) on a grid (Li et al. 2018 §4, 2-D contour plots).

    ``alphas`` defaults to 11 points on [−1, 1], ``betas`` to ``alphas``. The model is evaluated in eval
    mode unless ``train=True`` and is left bitwise unchanged; ``vectorize``, ``chunk_size`` and ``output``
    as in :func:`loss_line`.
    """
    batches = as_batches(data)
    grid_a = _grid(np.linspace(-1.0, 1.0, 11) if alphas is None else alphas, "alphas")
    grid_b = grid_a if betas is None else _grid(betas, "betas")
    check_vector(direction1, model, "direction1")
    check_vector(direction2, model, "direction2")
    _check_chunk_size(chunk_size)
    coefficients = np.stack(np.meshgrid(grid_a, grid_b, indexing="ij"), axis=-1).reshape(-1, 2)
    labels = [f"(alpha, beta)=({a:g}, {b:g})" for a, b in coefficients]
    with preserved(model, train=train), torch.no_grad():
        x0 = flatten(trainable_parameters(model))
        d1 = direction1.detach().to(x0.device, x0.dtype)
        d2 = direction2.detach().to(x0.device, x0.dtype)
        losses = _evaluate(
            model,
            loss_fn,
            batches,
            x0,
            [d1, d2],
            coefficients,
            labels,
            vectorize=vectorize and not train,
            chunk_size=chunk_size,
            output=check_output(output),
        )
    losses = losses.reshape(grid_a.size, grid_b.size)
    return LossPlane(grid_a, grid_b, losses, (float(d1.norm()), float(d2.norm())), losses.size)


def _check_same_architecture(model_a: nn.Module, model_b: nn.Module) -> None:
    shapes_a = {k: tuple(v.shape) for k, v in model_a.state_dict().items()}
    shapes_b = {k: tuple(v.shape) for k, v in model_b.state_dict().items()}
    if shapes_a != shapes_b:
        raise ValueError(
            "Invalid models: model_a and model_b differ in their parameter/buffer names or shapes"
        )


def interpolate(
    model_a: nn.Module,
    model_b: nn.Module,
    loss_fn: LossFn,
    data: Iterable[Batch] | Batch,
    alphas: Sequence[float] | Tensor | np.ndarray | None = None,
    *,
    interpolate_buffers: bool = True,
    train: bool = False,
    output: Output = None,
) -> LossLine:
    """L(α) = f((1 − α) x_a + α x_b): the linear path between two models (Goodfellow et al. 2015, as used
    in Li et al. 2018 §3).

    With ``interpolate_buffers=True`` floating-point buffers (BatchNorm running statistics) and frozen
    parameters are interpolated the same way, so α = 0 and α = 1 give exactly the two models' losses in
    eval mode; otherwise model_a's are used all along. ``alphas`` defaults to 11 points on [0, 1]. Both
    models are left bitwise unchanged; ``output`` as in :func:`loss_line`.
    """
    batches = as_batches(data)
    grid = _grid(np.linspace(0.0, 1.0, 11) if alphas is None else alphas, "alphas")
    _check_same_architecture(model_a, model_b)
    params_a = trainable_parameters(model_a)
    params_b = {k: v for k, v in model_b.named_parameters() if k in params_a}
    if params_b.keys() != params_a.keys():
        raise ValueError("Invalid models: model_a and model_b differ in which parameters are trainable")
    state_b = dict(model_b.named_buffers()) | dict(model_b.named_parameters())
    losses = []
    with preserved(model_a, train=train), torch.no_grad():
        xa = flatten(params_a)
        xb = flatten(params_b).to(xa.device, xa.dtype)
        frozen = {k: p for k, p in model_a.named_parameters() if k not in params_a}
        live = {k: b for k, b in (dict(model_a.named_buffers()) | frozen).items() if b.is_floating_point()}
        start = {k: b.clone() for k, b in live.items()}
        for a in grid:
            if interpolate_buffers:
                for name, buf in live.items():
                    buf.copy_((1 - float(a)) * start[name] + float(a) * state_b[name].detach().to(buf))
            x = (1 - float(a)) * xa + float(a) * xb
            value = dataset_loss(model_a, loss_fn, batches, x, where=f"alpha={a:g}", output=output)
            losses.append(float(value))
    return LossLine(grid, np.asarray(losses), float((xb - xa).norm()), len(grid))
