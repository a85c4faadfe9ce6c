"""Flat parameter vectors and the data-set loss at a given parameter vector.

The trajectory, width and slice instruments move a model along directions in weight space. They see the
trainable parameters as one flat vector x ∈ R^d (concatenated in ``named_parameters`` order) and evaluate

    f(x) = (1/N) Σ_b n_b ℓ_b(x),

the size-weighted mean of the per-batch mean losses ℓ_b over the whole data set (N = Σ_b n_b), through
:func:`torch.func.functional_call`, so the model's own tensors are never written.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.func import functional_call

from ._model import Batch, LossFn, trainable_parameters


def flatten(tensors: dict[str, Tensor]) -> Tensor:
    """Concatenate the tensors of a name → tensor mapping into one flat vector (mapping order)."""
    return torch.cat([t.detach().reshape(-1) for t in tensors.values()])


def unflatten(vector: Tensor, like: dict[str, Tensor]) -> dict[str, Tensor]:
    """Split a flat vector into tensors shaped like those of ``like`` (the inverse of :func:`flatten`)."""
    out, start = {}, 0
    for name, t in like.items():
        out[name] = vector[start : start + t.numel()].view_as(t)
        start += t.numel()
    return out


def parameter_vector(model: nn.Module) -> Tensor:
    """The trainable parameters of ``model`` as one detached flat vector (a copy)."""
    return flatten(trainable_parameters(model)).clone()


def check_vector(vector: Tensor, model: nn.Module, name: str) -> Tensor:
    """Validate that ``vector`` is a flat finite tensor with one entry per trainable parameter."""
    d = sum(p.numel() for p in trainable_parameters(model).values())
    if not isinstance(vector, Tensor):
        raise ValueError(f"Invalid {name}: expected a torch.Tensor, got {type(vector).__name__}")
    if vector.dim() != 1 or vector.numel() != d:
        raise ValueError(
            f"Invalid {name}: shape {tuple(vector.shape)}; expected a flat vector of length {d} "
            "(one entry per trainable parameter)"
        )
    if not torch.isfinite(vector).all():
        raise ValueError(f"Invalid {name}: contains NaN or Inf")
    return vector


def pure_dataset_loss(model: nn.Module, loss_fn: LossFn, batches: list[Batch], vector: Tensor) -> Tensor:
    """f(x) = (1/N) Σ_b n_b ℓ_b(x) at the flat vector ``vector``, with no check (safe under ``vmap``)."""
    params = unflatten(vector, trainable_parameters(model))
    n_total = sum(inputs.shape[0] for inputs, _ in batches)
    total = vector.new_zeros(())
    for inputs, targets in batches:
        total = total + loss_fn(functional_call(model, params, (inputs,)), targets) * inputs.shape[0]
    return total / n_total


def dataset_loss(
    model: nn.Module, loss_fn: LossFn, batches: list[Batch], vector: Tensor, *, where: str = "loss"
) -> Tensor:
    """f(x) = (1/N) Σ_b n_b ℓ_b(x) at the flat parameter vector ``vector`` (differentiable in it).

    ``loss_fn(outputs, targets)`` must return the batch mean. Raises ``ValueError`` naming ``where`` if the
    loss is not finite.
    """
    loss = pure_dataset_loss(model, loss_fn, batches, vector)
    if loss.dim() != 0:
        raise ValueError(
            f"Invalid loss_fn: returned shape {tuple(loss.shape)}; expected a scalar (batch mean)"
        )
    value = float(loss.detach())
    if not math.isfinite(value):
        raise ValueError(f"Non-finite loss ({value}) at {where}")
    return loss


def dataset_loss_and_grad(
    model: nn.Module, loss_fn: LossFn, batches: list[Batch], vector: Tensor, *, where: str = "loss"
) -> tuple[Tensor, Tensor]:
    """(f(x), ∇f(x)) at the flat vector ``vector``; both detached."""
    x = vector.detach().requires_grad_(True)
    with torch.enable_grad():
        loss = dataset_loss(model, loss_fn, batches, x, where=where)
        (grad,) = torch.autograd.grad(loss, x)
    return loss.detach(), grad.detach()
