"""The data-set loss of a model as a pure function of its trainable parameters (for ``torch.func``).

The curvature, noise, trajectory, width and slice instruments all differentiate or evaluate

    f(x) = Σ_b n_b ℓ_b(x) / Σ_b n_b,

where ``ℓ_b`` is the (mean-reduced) loss of batch ``b`` with ``n_b`` samples, so that a data set split into
unequal batches gives the same function as one batch holding all samples. ``ℓ_b`` is evaluated with
:func:`torch.func.functional_call`, never writing into the model. Two views of x:

- a flat vector x ∈ R^d (trainable parameters concatenated in ``named_parameters`` order), used by the
  instruments that move a model along directions in weight space: :func:`flatten`, :func:`unflatten`,
  :func:`parameter_vector`, :func:`dataset_loss`;
- a parameter dict, with :class:`FunctionalLoss` snapshotting the trainable parameters and the buffers of a
  model (the curvature and noise instruments).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor, nn
from torch.func import functional_call

from deeplandscape.analysis._model import (
    Batch,
    LossFn,
    Output,
    as_batches,
    check_output,
    select_output,
    trainable_parameters,
)


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


def pure_dataset_loss(
    model: nn.Module, loss_fn: LossFn, batches: list[Batch], vector: Tensor, output: Output = None
) -> Tensor:
    """f(x) = (1/N) Σ_b n_b ℓ_b(x) at the flat vector ``vector``, with no check (safe under ``vmap``).

    ``output`` selects the tensor the loss takes from the model's output (:func:`select_output`)."""
    params = unflatten(vector, trainable_parameters(model))
    n_total = sum(inputs.shape[0] for inputs, _ in batches)
    total = vector.new_zeros(())
    for inputs, targets in batches:
        outputs = select_output(functional_call(model, params, (inputs,)), output)
        total = total + loss_fn(outputs, targets) * inputs.shape[0]
    return total / n_total


def dataset_loss(
    model: nn.Module,
    loss_fn: LossFn,
    batches: list[Batch],
    vector: Tensor,
    *,
    where: str = "loss",
    output: Output = None,
) -> Tensor:
    """f(x) = (1/N) Σ_b n_b ℓ_b(x) at the flat parameter vector ``vector`` (differentiable in it).

    ``loss_fn(outputs, targets)`` must return the batch mean. Raises ``ValueError`` naming ``where`` if the
    loss is not finite.
    """
    loss = pure_dataset_loss(model, loss_fn, batches, vector, output)
    if loss.dim() != 0:
        raise ValueError(
            f"Invalid loss_fn: returned shape {tuple(loss.shape)}; expected a scalar (batch mean)"
        )
    value = float(loss.detach())
    if not math.isfinite(value):
        raise ValueError(f"Non-finite loss ({value}) at {where}")
    return loss


def is_batchnorm(module: nn.Module) -> bool:
    return isinstance(module, nn.modules.batchnorm._BatchNorm)


class FunctionalLoss:
    """``ℓ_b(x)`` for the batches of a data set, as a pure function of a parameter dict ``x``.

    Args:
        model: the network; its trainable parameters (``requires_grad=True``) are the variables, every
            other parameter and every buffer is held fixed at its current value.
        loss_fn: ``loss_fn(outputs, targets)`` returning a scalar with mean reduction over the batch.
        data: a DataLoader, a list of ``(inputs, targets)`` batches, or one batch.
        train: evaluate the model in train mode (BatchNorm batch statistics, active Dropout). Default
            ``False``: eval mode, the deterministic function of the weights measured in Thesis §6.3.1.
        output: which part of the model's output the loss takes (a dict key, a tuple index or a callable;
            :func:`~deeplandscape.analysis._model.select_output`); ``None`` for a model returning a tensor.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        data: Iterable[Batch] | Batch,
        *,
        train: bool = False,
        output: Output = None,
    ) -> None:
        if not callable(loss_fn):
            raise ValueError(f"Invalid loss_fn: {loss_fn!r} is not callable")
        self.model = model
        self.loss_fn = loss_fn
        self.output = check_output(output)
        self.train = bool(train)
        self.batches = as_batches(data)
        params = trainable_parameters(model)
        self.names = list(params)
        self.shapes = [p.shape for p in params.values()]
        self.numels = [p.numel() for p in params.values()]
        self.params = {name: p.detach().clone() for name, p in params.items()}
        first = next(iter(self.params.values()))
        self.dtype = first.dtype
        self.device = first.device
        if any(p.dtype != self.dtype or p.device != self.device for p in self.params.values()):
            raise ValueError("Invalid model: trainable parameters must share one dtype and one device")
        self.fixed = {
            name: t.detach().clone()
            for name, t in [*model.named_parameters(), *model.named_buffers()]
            if name not in self.params
        }
        self.dim = sum(self.numels)
        self.num_samples = sum(int(x.shape[0]) for x, _ in self.batches)
        self.has_batchnorm = any(is_batchnorm(m) for m in model.modules())

    def flatten(self, tensors: dict[str, Tensor] | Iterable[Tensor]) -> Tensor:
        """Concatenate per-parameter tensors (a dict by name, or a sequence in parameter order)."""
        values = [tensors[n] for n in self.names] if isinstance(tensors, dict) else list(tensors)
        return torch.cat([t.reshape(-1) for t in values])

    def unflatten(self, vector: Tensor) -> dict[str, Tensor]:
        """Split a flat vector of length ``dim`` into per-parameter views, by parameter name."""
        self.check_vector(vector, "vector")
        return {
            name: chunk.view(shape)
            for name, chunk, shape in zip(self.names, vector.split(self.numels), self.shapes, strict=True)
        }

    def check_vector(self, vector: Tensor, name: str) -> None:
        """``ValueError`` unless ``vector`` is a 1-D tensor of length ``dim``."""
        if not isinstance(vector, Tensor) or vector.dim() != 1 or vector.shape[0] != self.dim:
            shape = tuple(vector.shape) if isinstance(vector, Tensor) else type(vector).__name__
            raise ValueError(f"Invalid {name}: shape {shape}, expected ({self.dim},) (one entry per weight)")

    def batch_loss(self, params: dict[str, Tensor], inputs: Tensor, targets: Tensor) -> Tensor:
        """``ℓ_b(x)``: the loss of one batch at parameters ``params`` (differentiable by ``torch.func``)."""
        # Fresh buffer copies: in train mode BatchNorm writes running statistics into them, never into
        # the model or into the snapshot.
        state = {**{k: v.clone() for k, v in self.fixed.items()}, **params}
        outputs = select_output(functional_call(self.model, state, (inputs,)), self.output)
        loss = self.loss_fn(outputs, targets)
        if loss.dim() != 0:
            raise ValueError(
                f"Invalid loss_fn: returned shape {tuple(loss.shape)}, expected a scalar (mean reduction)"
            )
        return loss

    def weight(self, index: int) -> float:
        """``n_b / Σ n_b`` for batch ``index``."""
        return self.batches[index][0].shape[0] / self.num_samples


def all_finite(tensor: Tensor) -> bool:
    """Whether every entry of ``tensor`` is finite.

    A sum is finite when every term is; only when it is not (a NaN/Inf, or an overflow of the sum itself)
    is the exact element-wise check run, which avoids a boolean copy of a large tensor in the common case.
    """
    return bool(torch.isfinite(tensor.sum())) or bool(torch.isfinite(tensor).all())


def check_finite(value: Tensor, what: str, where: str) -> None:
    """``ValueError`` saying ``where`` a NaN/Inf appeared in ``what``."""
    if not all_finite(value):
        shown = f" = {value.item()}" if value.numel() == 1 else ""
        raise ValueError(f"Non-finite {what}{shown} on {where}")
