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
    add_shared_group,
    build_base,
    check_steps_without_closure,
    closure_loss,
    collect_grads,
    load_base_state,
    sparse_grads,
    step_base,
    use_foreach,
    with_base_state,
)


def delta_sign(group: dict[str, Any]) -> float:
    """The sign of δ in what the base optimizer sees: −1 when it maximizes (it negates g ± δ, so that the run
    is the one on −f with +δ), else +1."""
    return -1.0 if group.get("maximize", False) else 1.0


class PerturbedGradientOptimizer(SeededOptimizer):
    """Run ``base(params, **base_kwargs)`` on g + δ, where subclasses define δ per step.

    Subclasses implement :meth:`_perturbs` (is δ ≠ 0? otherwise the base optimizer sees g itself) and
    :meth:`_perturbed_grads`, returning g ± δ in per-parameter work buffers. The group counter
    ``group["step"]`` (mini-batch steps taken by that group) is saved with the param groups.

    - ``defaults`` holds the base optimizer's defaults too, so schedulers that look there for ``momentum``
      or ``betas`` (``OneCycleLR``, ``CyclicLR`` with ``cycle_momentum``) act on the shared param groups,
      which the base optimizer reads at every step.
    - Every knob, the base optimizer's included, is validated before a param group is added
      (:func:`check_base_knobs`: torch validates its own in its constructors only, and lets NaN through).
    - ``maximize=True`` (a knob of the base optimizer) maximizes f: the base sees g − δ and negates it, so the
      run is the one on −f with the same δ.
    - A sparse gradient reaches the base optimizer as it is when δ = 0; otherwise g + δ is dense (δ is) and
      the base optimizer gets it as a dense gradient.
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
        check_steps_without_closure(base, "base")
        clash = sorted(set(defaults) & set(inspect.signature(base.__init__).parameters))
        if clash:
            raise ValueError(
                f"Invalid base: {base.__name__} has arguments {clash} that clash with those of "
                f"{type(self).__name__}"
            )
        defaults = {**defaults, "step": 0}
        super().__init__(params, defaults, seed)
        self.base = build_base(self, base, base_kwargs)
        for group in self.param_groups:
            self._init_group(group)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a param group to this optimizer and to the wrapped base optimizer (the same dict).

        Every knob is validated first; if the base optimizer refuses the group, neither keeps it.
        """
        if "base" not in self.__dict__:  # in __init__: the base optimizer is built over every group after
            super().add_param_group(param_group)
            return
        add_shared_group(self, self.base, param_group, super().add_param_group, self._init_group)

    def _init_group(self, group: dict[str, Any]) -> None:
        """Create a group's state (subclasses); run for every group once the base optimizer exists."""

    def _perturbs(self, group: dict[str, Any]) -> bool:
        """Whether δ ≠ 0 for this group at its current step (subclasses)."""
        raise NotImplementedError

    def _perturbed_grads(
        self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor], foreach: bool
    ) -> list[Tensor]:
        """g + δ (g − δ with ``maximize``: :func:`delta_sign`) for ``params``, the group members with a
        gradient (made dense), in work buffers (subclasses)."""
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:  # type: ignore[override]
        """Hand g + δ (g − δ with ``maximize``) to the base optimizer's step; return the closure's loss."""
        loss = closure_loss(closure)
        work = collect_grads(self.param_groups)
        sparse = sparse_grads(self.param_groups)
        originals: list[tuple[Tensor, Tensor]] = []
        try:
            for group, (params, grads) in zip(self.param_groups, work, strict=True):
                if not params or not self._perturbs(group):
                    continue
                dense = [g if g.layout == torch.strided else g.to_dense() for g in grads]
                outs = self._perturbed_grads(group, params, dense, use_foreach(group.get("foreach"), params))
                for p, g, new in zip(params, grads, outs, strict=True):
                    originals.append((p, g))
                    p.grad = new
            step_base(self, self.base, sparse)
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
        """Load a state written by :meth:`state_dict` (own state, base state, groups, generators); a state
        saved by another optimizer or for other parameters is refused before anything is loaded."""
        self._check_loadable(state_dict)
        load_base_state(self, self.base, state_dict, super().load_state_dict)
