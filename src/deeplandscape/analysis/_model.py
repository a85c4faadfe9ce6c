"""Shared plumbing for the instruments: data as a list of batches, and a model left exactly as found.

Every instrument in :mod:`deeplandscape.analysis` reads a model and data; none may change the model.
:func:`preserved` snapshots what an instrument could touch (train/eval mode of every submodule, parameter
and buffer values, ``requires_grad`` flags) and restores it bit for bit on exit, even after an error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

Batch = tuple[Tensor, Tensor]
LossFn = Callable[[Tensor, Tensor], Tensor]
#: Which part of a model's output the loss takes: ``None`` (the output is a tensor), a key of a dict
#: output (or an attribute name), an index of a tuple/list output, or a callable ``output(raw) -> Tensor``.
Output = str | int | Callable[[Any], Tensor] | None


def check_output(output: Output) -> Output:
    """``ValueError`` unless ``output`` is ``None``, a string, an integer or a callable."""
    if output is None or callable(output) or isinstance(output, str):
        return output
    if isinstance(output, int) and not isinstance(output, bool):
        return output
    raise ValueError(
        f"Invalid output: {output!r}; expected None, a key (str), an index (int) or a callable "
        "that returns the tensor the loss takes"
    )


def select_output(raw: Any, output: Output) -> Tensor:
    """The tensor the loss takes from a model's output ``raw`` (see :data:`Output`).

    ``ValueError`` when ``raw`` is not a tensor and ``output`` is ``None`` (the message lists the keys or the
    length, so the caller can say which part is the logits), or when the selection fails or is no tensor.
    """
    if output is None:
        if isinstance(raw, Tensor):
            return raw
        raise ValueError(f"Invalid output: None, but the model returned {_describe(raw)}; {_HOW}")
    if callable(output):
        chosen = output(raw)
    elif isinstance(output, str) and isinstance(raw, Mapping):
        if output not in raw:
            raise ValueError(f"Invalid output: {output!r} is not a key of the model's {_describe(raw)}")
        chosen = raw[output]
    elif isinstance(output, str):
        if not hasattr(raw, output):
            raise ValueError(
                f"Invalid output: {output!r} is not an attribute of the model's {_describe(raw)}"
            )
        chosen = getattr(raw, output)
    elif isinstance(raw, (tuple, list)) and -len(raw) <= output < len(raw):
        chosen = raw[output]
    else:
        raise ValueError(f"Invalid output: index {output} does not select from the model's {_describe(raw)}")
    if not isinstance(chosen, Tensor):
        raise ValueError(
            f"Invalid output: {output!r} selects a {type(chosen).__name__} from the model's "
            f"{_describe(raw)}, expected a tensor"
        )
    return chosen


_HOW = "pass output= a key (str), an index (int) or a callable that returns the tensor the loss takes"


def _describe(raw: Any) -> str:
    if isinstance(raw, Tensor):
        return f"tensor of shape {tuple(raw.shape)}"
    if isinstance(raw, Mapping):
        return f"{type(raw).__name__} with keys {list(raw)}"
    if isinstance(raw, (tuple, list)):
        return f"{type(raw).__name__} of length {len(raw)}"
    return type(raw).__name__


def as_batches(data: Iterable[Batch] | Batch) -> list[Batch]:
    """Materialize ``data`` (a DataLoader, a list of ``(inputs, targets)`` batches, or one batch).

    Returns a list so that an instrument can sweep the data set many times (a DataLoader with shuffling
    would otherwise give a different set of batches on each sweep). Raises ``ValueError`` on empty data, on
    a batch that is not an ``(inputs, targets)`` pair, and on a batch whose inputs and targets disagree in
    their first (batch) dimension.
    """
    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], Tensor):
        data = [data]
    batches = []
    for i, batch in enumerate(data):
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise ValueError(f"Invalid data: batch {i} is not an (inputs, targets) pair")
        inputs, targets = batch
        if inputs.shape[0] != targets.shape[0]:
            raise ValueError(
                f"Invalid data: batch {i} has {inputs.shape[0]} inputs but {targets.shape[0]} targets"
            )
        if inputs.shape[0] == 0:
            raise ValueError(f"Invalid data: batch {i} is empty")
        batches.append((inputs, targets))
    if not batches:
        raise ValueError("Invalid data: no batches (the data set is empty)")
    return batches


def trainable_parameters(model: nn.Module) -> dict[str, Tensor]:
    """The parameters that require a gradient, by name; ``ValueError`` if there are none."""
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    if not params:
        raise ValueError(f"Invalid model: {type(model).__name__} has no trainable parameters")
    return params


@contextmanager
def preserved(model: nn.Module, *, train: bool = False) -> Iterator[nn.Module]:
    """Run a block on ``model`` in eval mode (or train mode if ``train=True``) and restore it exactly.

    On exit, whatever happened inside, the train/eval flag of every submodule, the values of all
    parameters and buffers (e.g. BatchNorm running statistics) and every ``requires_grad`` flag are what
    they were on entry. Parameters' ``.grad`` fields are restored too.
    """
    modes = {name: m.training for name, m in model.named_modules()}
    params = {name: (p.detach().clone(), p.requires_grad, p.grad) for name, p in model.named_parameters()}
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    model.train(train)
    try:
        yield model
    finally:
        with torch.no_grad():
            for name, p in model.named_parameters():
                value, requires_grad, grad = params[name]
                p.copy_(value)
                p.requires_grad_(requires_grad)
                p.grad = grad
            for name, b in model.named_buffers():
                b.copy_(buffers[name])
        for name, m in model.named_modules():
            m.training = modes[name]
