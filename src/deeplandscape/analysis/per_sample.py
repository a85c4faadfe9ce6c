"""Per-sample gradients ``g_k = ∇f_k(x)`` of a model, vectorized with ``torch.func.vmap``.

``f_k(x) = ℓ(model(x; inputs_k), targets_k)`` is the loss of sample ``k`` alone (the loss function applied
to a batch of one). ``vmap(grad(f_·))`` evaluates all ``g_k`` of a batch in one batched forward/backward
pass instead of a Python loop over samples. These are the ``g_k`` of Thesis Lemma 6.3 (the diffusion matrix
``D(x)``) and of the empirical Fisher diagonal (Thesis §3.3.1).

For an ``nn.Sequential`` of linear, convolutional, eval-mode BatchNorm, activation, pooling and flatten
layers, the same ``g_k`` are computed without ``vmap`` from one ordinary backward pass: per layer,
``∇_W f_k = δ_k a_kᵀ`` (summed over positions for a convolution) from the layer's input ``a_k`` and its
back-propagated output gradient ``δ_k``, written straight into the ``(N, d)`` result
(:mod:`deeplandscape.analysis._per_sample_layers`); every other model takes the ``vmap`` path.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import grad_and_value, vmap

from deeplandscape.analysis._functional import FunctionalLoss, all_finite, check_finite
from deeplandscape.analysis._model import Batch, LossFn, preserved
from deeplandscape.analysis._per_sample_layers import plan, try_per_sample


@dataclass(frozen=True)
class PerSampleGradients:
    """Per-sample gradients, flat.

    Attributes:
        gradients: ``(N, d)`` row ``k`` is ``g_k``, parameters flattened in ``named_parameters`` order.
        losses: ``(N,)`` the per-sample losses ``f_k(x)``.
        names: parameter names, in flattening order.
        shapes: their shapes.
    """

    gradients: Tensor
    losses: Tensor
    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]


def _check_mode(loss: FunctionalLoss) -> None:
    if loss.train and loss.has_batchnorm:
        raise ValueError(
            "Invalid train: True with BatchNorm; a per-sample gradient needs a batch of one, which has no "
            "batch statistics (use train=False, the eval mode of Thesis §6.3.1)"
        )


def iter_per_sample_gradients(
    loss: FunctionalLoss, *, chunk_size: int | None = None, out: Tensor | None = None
) -> Iterator[tuple[int, Tensor, Tensor]]:
    """Yield ``(i, gradients (n_b, d), losses (n_b,))`` for each batch ``i`` (caller holds ``preserved``).

    The ``(n_b, d)`` matrix is a view of ``out`` (``(N, d)``, rows in data order) when given, otherwise a
    reused buffer (copy it if it must outlive the next iteration).
    """
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"Invalid chunk_size: {chunk_size}, expected None or >= 1")

    def sample_loss(params: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        return loss.batch_loss(params, x.unsqueeze(0), y.unsqueeze(0))

    per_sample = vmap(
        grad_and_value(sample_loss), in_dims=(None, 0, 0), randomness="different", chunk_size=chunk_size
    )
    if out is None:
        largest = max(int(x.shape[0]) for x, _ in loss.batches)
        buffer = torch.empty(largest, loss.dim, dtype=loss.dtype, device=loss.device)
    layers = plan(loss)
    row = 0
    for i, (inputs, targets) in enumerate(loss.batches):
        n = inputs.shape[0]
        flat = buffer[:n] if out is None else out[row : row + n]
        row += n
        fast = None if layers is None else try_per_sample(loss, layers, inputs, targets, flat, chunk_size)
        if fast is not None:
            values, finite = fast
            check_finite(values, "loss", f"batch {i}")
        else:
            grads, values = per_sample(loss.params, inputs, targets)
            check_finite(values, "loss", f"batch {i}")
            offset = 0
            for name, numel in zip(loss.names, loss.numels, strict=True):
                flat[:, offset : offset + numel] = grads[name].reshape(n, numel)
                offset += numel
            del grads
            finite = all_finite(flat)
        if not finite:
            raise ValueError(f"Non-finite per-sample gradient on batch {i}")
        yield i, flat, values.detach()


def per_sample_gradients(
    model: nn.Module,
    loss_fn: LossFn,
    data: Iterable[Batch] | Batch,
    *,
    train: bool = False,
    chunk_size: int | None = None,
) -> PerSampleGradients:
    """All ``g_k = ∇f_k(x)``, ``k = 1..N``, as an ``(N, d)`` matrix (``O(N·d)`` memory).

    Args:
        model: any ``nn.Module``; restored exactly afterwards.
        loss_fn: ``loss_fn(outputs, targets)`` with mean reduction; applied to one sample at a time.
        data: a DataLoader, a list of ``(inputs, targets)`` batches, or one batch.
        train: train mode (Dropout active, a different mask per sample); not allowed with BatchNorm.
            Default ``False``: eval mode.
        chunk_size: samples per vectorized chunk (``None``: a whole batch at once); lowers peak memory.
    """
    loss = FunctionalLoss(model, loss_fn, data, train=train)
    _check_mode(loss)
    grads = torch.empty(loss.num_samples, loss.dim, dtype=loss.dtype, device=loss.device)
    losses = torch.empty(loss.num_samples, dtype=loss.dtype, device=loss.device)
    row = 0
    with preserved(model, train=loss.train):
        for _, flat, values in iter_per_sample_gradients(loss, chunk_size=chunk_size, out=grads):
            losses[row : row + flat.shape[0]] = values
            row += flat.shape[0]
    return PerSampleGradients(
        gradients=grads, losses=losses, names=tuple(loss.names), shapes=tuple(loss.shapes)
    )
