"""Shared plumbing for the instruments: data as a list of batches, and a model left exactly as found.

Every instrument in :mod:`deeplandscape.analysis` reads a model and data; none may change the model.
:func:`preserved` snapshots what an instrument could touch (train/eval mode of every submodule, parameter
and buffer values, ``requires_grad`` flags) and restores it bit for bit on exit, even after an error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

Batch = tuple[Tensor, Tensor]
LossFn = Callable[[Tensor, Tensor], Tensor]


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
