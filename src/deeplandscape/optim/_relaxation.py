"""Machinery shared by the two-loop relaxation optimizers: Entropy-SGD, Entropy-Adam, HJ and Heat.

These methods (Thesis Ch. 3 Alg. 2, §4.6.1) keep *reference weights* x and move an *inner iterate* (y for
Entropy-SGD/HJ, a Gaussian perturbation x + ε for Heat) for L mini-batches before each update of x. Here
one ``step()`` consumes one mini-batch gradient, as in an ordinary training loop; the model's parameters
hold the inner iterate, where the next gradient must be evaluated, and every L-th step is an outer update
of x. x lives in ``state[p]["reference"]`` and :meth:`RelaxationOptimizer.reference_weights` puts it into
the model for evaluation or checkpointing.

Counters live in each param group (saved with it): ``step`` (mini-batch steps), ``cycle_step`` (position in
the current cycle of L steps) and ``outer_step`` (outer updates done, t in the scoping γ_t = γ0(1 − γ1)^t of
Thesis §3.2.3).

BatchNorm: running statistics are buffers, not parameters, so no optimizer here touches them. During
training they follow the forward passes, i.e. the inner iterates; inside ``reference_weights()`` they are
*not* the statistics of x. Call :func:`deeplandscape.optim.recompute_batchnorm` inside the context before
evaluating (it overwrites the running statistics with those of x).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor

from ._common import SeededOptimizer, check


class RelaxationOptimizer(SeededOptimizer):
    """Base class: reference weights, per-group cycle counters, scoping and the outer update rules."""

    _in_reference = False

    def _check_group(self, g: dict[str, Any]) -> None:
        check("lr", g["lr"], low=0.0)
        check("L", g["L"], low=1, integer=True)
        check("scoping", g["scoping"], low=0.0, high=1.0, high_open=True)
        check("momentum", g["momentum"], low=0.0, high=1.0, high_open=True)
        check("nesterov", g["nesterov"], choices=(False, True))
        check("weight_decay", g["weight_decay"], low=0.0)
        check("foreach", g["foreach"], choices=(None, False, True))

    @staticmethod
    def scope(group: dict[str, Any]) -> float:
        """γ_t = γ0 (1 − γ1)^t with t = ``group["outer_step"]`` (Thesis §3.2.3)."""
        return group["gamma"] * (1.0 - group["scoping"]) ** group["outer_step"]

    @contextmanager
    def reference_weights(self) -> Iterator[None]:
        """Put the reference weights x into the parameters; restore the inner iterate on exit.

        Use it to evaluate or checkpoint the model at x: ``with opt.reference_weights(): evaluate(model)``.
        Parameters without optimizer state (never given a gradient) already hold x. Calling ``step()`` inside
        the block raises ``RuntimeError``.
        """
        saved = []
        with torch.no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    state = self.state.get(p)
                    if state and "reference" in state:
                        saved.append((p, p.detach().clone()))
                        p.copy_(state["reference"])
        self._in_reference = True
        try:
            yield
        finally:
            with torch.no_grad():
                for p, inner in saved:
                    p.copy_(inner)
            self._in_reference = False

    def _refuse_inside_reference(self) -> None:
        if self._in_reference:
            raise RuntimeError("step() called inside reference_weights(); leave the block first")


def zeros_buffer(state: dict[str, Any], key: str, p: Tensor) -> Tensor:
    """``state[key]``, created as zeros shaped like ``p`` on first use."""
    buf = state.get(key)
    if buf is None:
        buf = state[key] = torch.zeros_like(p, memory_format=torch.preserve_format)
    return buf
