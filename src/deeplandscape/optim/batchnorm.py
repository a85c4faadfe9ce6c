"""Recompute BatchNorm running statistics for the weights currently in a model.

The optimizers of :mod:`deeplandscape.optim` move parameters only. BatchNorm running means and variances
are buffers updated by forward passes in train mode, so after training with a two-loop method they describe
the inner iterates (Entropy-SGD/HJ's y, Heat's perturbed points), not the reference weights x. To evaluate at
x, recompute them there::

    with opt.reference_weights():
        recompute_batchnorm(model, train_loader)
        evaluate(model)

(the statistics stay those of x after the block; the next training forward passes update them again).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn


@torch.no_grad()
def recompute_batchnorm(model: nn.Module, data: Iterable[Any], num_batches: int | None = None) -> int:
    """Reset every BatchNorm layer's running statistics and re-estimate them as exact averages over ``data``.

    ``data`` yields input tensors or ``(inputs, targets)`` pairs (the first element is fed to the model).
    Each BatchNorm layer is put in train mode with ``momentum=None`` (cumulative moving average, so the
    running statistics become the plain mean over the batches seen), and restored afterwards; the model's
    other train/eval flags are restored too. Returns the number of batches used; ``ValueError`` if
    ``num_batches`` < 1 or ``data`` is empty while the model has BatchNorm layers.
    """
    if num_batches is not None and (
        isinstance(num_batches, bool) or not isinstance(num_batches, int) or num_batches < 1
    ):
        raise ValueError(f"Invalid num_batches: {num_batches!r} (must be an integer ≥ 1 or None)")
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return 0
    modes = {m: m.training for m in model.modules()}
    momenta = {m: m.momentum for m in bns}
    try:
        model.eval()
        for m in bns:
            m.reset_running_stats()
            m.momentum = None
            m.train()
        used = 0
        for batch in data:
            if num_batches is not None and used >= num_batches:
                break
            inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
            model(inputs)
            used += 1
        if used == 0:
            raise ValueError("Invalid data: no batches to recompute the BatchNorm statistics from")
        return used
    finally:
        for m, mom in momenta.items():
            m.momentum = mom
        for m, training in modes.items():
            m.training = training
