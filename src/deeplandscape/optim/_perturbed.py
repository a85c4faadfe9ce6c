"""A base optimizer fed with perturbed gradients: the machinery of AnnealSGD and GradientNoise.

Both methods replace the mini-batch gradient g by g + δ before an ordinary update (AnnealSGD paper
Alg. 1 line 10, "adapted to the underlying implementation of SGD"): δ is a fixed, annealed field for
AnnealSGD and fresh annealed Gaussian noise for GradientNoise. :class:`PerturbedGradientOptimizer` wraps any
``torch.optim.Optimizer`` class: the wrapper and the base optimizer share the very same param-group dicts,
so every knob (the base optimizer's ``lr``, ``momentum``, … and the wrapper's own) lives in one place and LR
schedulers act on it. ``p.grad`` is handed to the base optimizer as g + δ for the duration of its step and
restored to g afterwards, bit for bit.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from ._common import (
    SeededOptimizer,
    closure_loss,
    collect_grads,
    load_base_state,
    use_foreach,
    with_base_state,
)


class PerturbedGradientOptimizer(SeededOptimizer):
    """Run ``base(params, **base_kwargs)`` on g + δ, where subclasses define δ per step.

    Subclasses implement :meth:`_perturbs` (is δ ≠ 0? otherwise the base optimizer sees g itself) and
    :meth:`_perturbed_grads`, returning g + δ in per-parameter work buffers. The group counter
    ``group["step"]`` (mini-batch steps taken by that group) is saved with the param groups.
    """

    def __init__(
        self,
        params: Iterable[Any],
        defaults: dict[str, Any],
        base: type[Optimizer],
        base_kwargs: dict[str, Any],
        seed: int | None,
    ) -> None:
        if not (isinstance(base, type) and issubclass(base, Optimizer)):
            raise ValueError(f"Invalid base: {base!r} (must be a torch.optim.Optimizer subclass)")
        clash = sorted(set(defaults) & set(inspect.signature(base.__init__).parameters))
        if clash:
            raise ValueError(
                f"Invalid base: {base.__name__} has arguments {clash} that clash with those of "
                f"{type(self).__name__}"
            )
        defaults = {**defaults, "step": 0}
        super().__init__(params, defaults, seed)
        # The base optimizer's add_param_group fills its defaults into our group dicts and keeps them.
        self.base = base(self.param_groups, **base_kwargs)
        for group in self.param_groups:
            self._init_group(group)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a param group to this optimizer and to the wrapped base optimizer (the same dict)."""
        super().add_param_group(param_group)
        if "base" in self.__dict__:
            self.base.add_param_group(param_group)
            self._init_group(param_group)

    def _init_group(self, group: dict[str, Any]) -> None:
        """Validate a group's knobs and create its state (subclasses); run for every group at construction."""

    def _perturbs(self, group: dict[str, Any]) -> bool:
        """Whether δ ≠ 0 for this group at its current step (subclasses)."""
        raise NotImplementedError

    def _perturbed_grads(
        self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor], foreach: bool
    ) -> list[Tensor]:
        """g + δ for ``params`` (group members with a gradient), in work buffers (subclasses)."""
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:  # type: ignore[override]
        """Hand g + δ to the base optimizer's step; return the closure's loss."""
        loss = closure_loss(closure)
        work = collect_grads(self.param_groups)
        originals: list[tuple[Tensor, Tensor]] = []
        try:
            for group, (params, grads) in zip(self.param_groups, work, strict=True):
                if not params or not self._perturbs(group):
                    continue
                outs = self._perturbed_grads(group, params, grads, use_foreach(group.get("foreach"), params))
                for p, g, new in zip(params, grads, outs, strict=True):
                    originals.append((p, g))
                    p.grad = new
            self.base.step()
        finally:
            for p, g in originals:
                p.grad = g
        for group, (params, _) in zip(self.param_groups, work, strict=True):
            if params:
                group["step"] += 1
        return loss

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: own state, the base optimizer's state, param groups, generators."""
        return with_base_state(super().state_dict(), self.base)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state written by :meth:`state_dict` (own state, base state, groups, generators)."""
        load_base_state(self, self.base, state_dict, super().load_state_dict)
