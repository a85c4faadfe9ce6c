"""Per-sample gradients ``g_k = ∇f_k(x)`` of a model: exact for any model, vectorized where possible.

``f_k(x) = ℓ(model(x; inputs_k), targets_k)`` is the loss of sample ``k`` alone (the loss function applied
to a batch of one). These are the ``g_k`` of Thesis Lemma 6.3 (the diffusion matrix ``D(x)``) and of the
empirical Fisher diagonal (Thesis §3.3.1). Three ways to compute them, all giving these same numbers:

- the layer path (:mod:`deeplandscape.analysis._per_sample_layers`): for an ``nn.Sequential`` of linear,
  convolutional, eval-mode BatchNorm, activation, pooling and flatten layers, one ordinary batched backward
  pass gives every layer's output gradient ``δ_k``, and ``∇_W f_k = δ_k a_kᵀ`` (summed over positions for a
  convolution) is written straight into the ``(N, d)`` result;
- the ``vmap`` path, for every other model: ``vmap(grad(f_·))`` evaluates all ``g_k`` of a batch in one
  batched forward/backward pass;
- a loop over samples, one ``torch.autograd.grad`` of ``f_k`` each, for a model that ``vmap`` cannot run
  (an LSTM or GRU, whose kernels have no batching rule; modules with data-dependent control flow). It is
  taken when ``vmap`` raises, and a model that fails there too reports its own error.

``method`` of the result says which one ran. A BatchNorm that normalizes with batch statistics (train
mode, or no running statistics) is refused: a batch of one has no batch statistics.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import grad_and_value, vmap

from deeplandscape.analysis._functional import FunctionalLoss, all_finite, check_finite, is_batchnorm
from deeplandscape.analysis._model import Batch, LossFn, Output, preserved
from deeplandscape.analysis._per_sample_layers import plan, try_per_sample


@dataclass(frozen=True)
class PerSampleGradients:
    """Per-sample gradients, flat.

    Attributes:
        gradients: ``(N, d)`` row ``k`` is ``g_k``, parameters flattened in ``named_parameters`` order.
        losses: ``(N,)`` the per-sample losses ``f_k(x)``.
        names: parameter names, in flattening order.
        shapes: their shapes.
        method: how they were computed: ``"layers"``, ``"vmap"`` or ``"loop"`` (module docstring); the
            first batch's method when batches differ.
    """

    gradients: Tensor
    losses: Tensor
    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]
    method: str


def _check_mode(loss: FunctionalLoss) -> None:
    """A BatchNorm that normalizes with batch statistics (train mode, or no running statistics) couples the
    samples of a batch: a batch of one has no batch statistics, so ``g_k`` is undefined."""
    if loss.train and loss.has_batchnorm:
        raise ValueError(
            "Invalid train: True with BatchNorm; a per-sample gradient needs a batch of one, which has no "
            "batch statistics (use train=False, the eval mode of Thesis §6.3.1)"
        )
    for name, m in loss.model.named_modules():
        if is_batchnorm(m) and (m.running_mean is None or m.running_var is None):
            raise ValueError(
                f"Invalid model: BatchNorm module {name} has no running statistics "
                "(track_running_stats=False), so it normalizes with batch statistics even in eval mode; "
                "a per-sample gradient needs a batch of one, which has none"
            )


class PerSampleGradientIterator:
    """Per-sample gradients batch by batch: iterate to get ``(i, gradients (n_b, d), losses (n_b,))``.

    The caller holds :func:`~deeplandscape.analysis._model.preserved`. The ``(n_b, d)`` matrix is a view of
    ``out`` (``(N, d)``, rows in data order) when given, otherwise a reused buffer (copy it if it must
    outlive the next iteration). ``methods`` lists the method of each batch done so far.
    """

    def __init__(self, loss: FunctionalLoss, *, chunk_size: int | None = None, out: Tensor | None = None):
        if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
            raise ValueError(f"Invalid chunk_size: {chunk_size}, expected None or an integer >= 1")
        _check_mode(loss)
        self.loss, self.chunk_size, self.out = loss, chunk_size, out
        self.methods: list[str] = []

    def __iter__(self) -> Iterator[tuple[int, Tensor, Tensor]]:
        loss = self.loss

        def sample_loss(params: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
            return loss.batch_loss(params, x.unsqueeze(0), y.unsqueeze(0))

        per_sample = vmap(
            grad_and_value(sample_loss),
            in_dims=(None, 0, 0),
            randomness="different",
            chunk_size=self.chunk_size,
        )
        if self.out is None:
            largest = max(int(x.shape[0]) for x, _ in loss.batches)
            buffer = torch.empty(largest, loss.dim, dtype=loss.dtype, device=loss.device)
        layers = plan(loss)
        use_vmap = True
        row = 0
        for i, (inputs, targets) in enumerate(loss.batches):
            n = inputs.shape[0]
            flat = buffer[:n] if self.out is None else self.out[row : row + n]
            row += n
            fast = None
            if layers is not None:
                fast = try_per_sample(loss, layers, inputs, targets, flat, self.chunk_size)
            if fast is not None:
                values, finite = fast
                method = "layers"
            else:
                values = None
                if use_vmap:
                    try:
                        grads, values = per_sample(loss.params, inputs, targets)
                    except Exception:  # no batching rule (LSTM, GRU, ...): the loop is exact everywhere
                        use_vmap = False
                if values is not None:
                    _write_flat(loss, grads, flat)
                    del grads
                    method = "vmap"
                else:
                    values = _loop(loss, inputs, targets, flat)
                    method = "loop"
                finite = all_finite(flat)
            check_finite(values, "loss", f"batch {i}")
            if not finite:
                raise ValueError(f"Non-finite per-sample gradient on batch {i}")
            self.methods.append(method)
            yield i, flat, values.detach()


def _write_flat(loss: FunctionalLoss, grads: dict[str, Tensor], flat: Tensor) -> None:
    n, offset = flat.shape[0], 0
    for name, numel in zip(loss.names, loss.numels, strict=True):
        flat[:, offset : offset + numel] = grads[name].reshape(n, numel)
        offset += numel


def _loop(loss: FunctionalLoss, inputs: Tensor, targets: Tensor, flat: Tensor) -> Tensor:
    """``g_k`` one sample at a time (``torch.autograd.grad`` of the loss of a batch of one), into ``flat``."""
    params = {name: p.detach().requires_grad_(True) for name, p in loss.params.items()}
    leaves = list(params.values())
    values = torch.empty(inputs.shape[0], dtype=loss.dtype, device=loss.device)
    with torch.enable_grad():
        for k in range(inputs.shape[0]):
            value = loss.batch_loss(params, inputs[k : k + 1], targets[k : k + 1])
            grads = torch.autograd.grad(value, leaves, allow_unused=True)
            offset = 0
            for g, numel in zip(grads, loss.numels, strict=True):
                if g is None:  # a parameter this sample's loss does not use
                    flat[k, offset : offset + numel] = 0
                else:
                    flat[k, offset : offset + numel] = g.reshape(-1)
                offset += numel
            values[k] = value.detach()
    return values


def _check_out(out: Tensor, loss: FunctionalLoss) -> Tensor:
    shape = (loss.num_samples, loss.dim)
    if (
        not isinstance(out, Tensor)
        or tuple(out.shape) != shape
        or out.dtype != loss.dtype
        or out.device != loss.device
        or not out.is_contiguous()
    ):
        got = f"{tuple(out.shape)} {out.dtype} on {out.device}" if isinstance(out, Tensor) else type(out)
        raise ValueError(
            f"Invalid out: {got}; expected a contiguous {shape} tensor of {loss.dtype} on {loss.device}"
        )
    return out


def per_sample_gradients(
    model: nn.Module,
    loss_fn: LossFn,
    data: Iterable[Batch] | Batch,
    *,
    train: bool = False,
    chunk_size: int | None = None,
    output: Output = None,
    out: Tensor | None = None,
) -> PerSampleGradients:
    """All ``g_k = ∇f_k(x)``, ``k = 1..N``, as an ``(N, d)`` matrix (``O(N·d)`` memory).

    Args:
        model: any ``nn.Module``; restored exactly afterwards.
        loss_fn: ``loss_fn(outputs, targets)`` with mean reduction; applied to one sample at a time.
        data: a DataLoader, a list of ``(inputs, targets)`` batches, or one batch.
        train: train mode (Dropout active, a different mask per sample); not allowed with BatchNorm.
            Default ``False``: eval mode.
        chunk_size: samples per vectorized chunk (``None``: a whole batch at once); lowers peak memory.
        output: the part of the model's output the loss takes (a dict key, a tuple index or a callable);
            ``None`` for a model that returns a tensor.
        out: an ``(N, d)`` tensor to write the gradients into (e.g. reused between calls: fresh memory
            costs a page fault per page on first touch); by default a new one.
    """
    loss = FunctionalLoss(model, loss_fn, data, train=train, output=output)
    _check_mode(loss)
    grads = (
        torch.empty(loss.num_samples, loss.dim, dtype=loss.dtype, device=loss.device)
        if out is None
        else _check_out(out, loss)
    )
    losses = torch.empty(loss.num_samples, dtype=loss.dtype, device=loss.device)
    row = 0
    batches = PerSampleGradientIterator(loss, chunk_size=chunk_size, out=grads)
    with preserved(model, train=loss.train):
        for _, flat, values in batches:
            losses[row : row + flat.shape[0]] = values
            row += flat.shape[0]
    return PerSampleGradients(
        gradients=grads,
        losses=losses,
        names=tuple(loss.names),
        shapes=tuple(loss.shapes),
        method=batches.methods[0],
    )
