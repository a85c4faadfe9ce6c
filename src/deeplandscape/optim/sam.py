"""Sharpness-aware minimization: SAM (Foret et al. 2021) and its adaptive variant ASAM (Kwon et al. 2021).

SAM minimizes max_{‖ε‖ ≤ ρ} f(w + ε). To first order the inner maximizer is (SAM paper eq. (2))

    ε̂(w) = ρ g / ‖g‖,                    g = ∇f(w),

and the update is the base optimizer's step with the gradient at the perturbed point (SAM paper eq. (3),
Alg. 1):

    w ← base_step(w, ∇f(w + ε̂(w))).

ASAM (Kwon et al. 2021, §3, with the element-wise normalization operator T_w = |w|) measures the
neighbourhood in the coordinates w / |w|:

    ε̂(w) = ρ T_w² g / ‖T_w g‖,           T_w = diag(|w|).

‖·‖ is the norm of all gradients of all param groups together (one global perturbation radius, as in the
reference implementation davda54/sam); in a group with ``adaptive=True`` its part is T_w g. Each group scales
its own part of ε̂ by its own ρ. When ‖·‖ = 0 (a zero gradient, or in ASAM a gradient that lives only
where w = 0) the ascent direction is undefined and ε̂ = 0: the step is the base optimizer's step at w.

Every step costs two gradient evaluations (at w and at w + ε̂): :attr:`SAM.gradient_evaluations_per_step`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from ._common import (
    CopyableOptimizer,
    add_shared_group,
    build_base,
    check,
    check_finite_grads,
    check_state_dict,
    check_steps_without_closure,
    collect_grads,
    load_base_state,
    sparse_grads,
    step_base,
    stored_entries,
    use_foreach,
    with_base_state,
)


class SAM(CopyableOptimizer):
    """SAM / ASAM (Foret et al. 2021, Alg. 1; Kwon et al. 2021, Alg. 1) around any base optimizer.

    ``step(closure)`` expects the gradient at w in ``p.grad`` (the usual ``loss.backward()``), then

    1. ε̂ = ρ·g/‖g‖ (``adaptive``: ρ·|w|²⊙g/‖|w|⊙g‖), with the global norm over all param groups
       (ε̂ = 0 when that norm is 0);
    2. w ← w + ε̂, the gradients are zeroed in place and ``closure()`` is called once (with gradients
       enabled): it evaluates the loss at w + ε̂ and back-propagates it;
    3. w is restored (bit for bit, from a copy) and the base optimizer steps with the gradient at w + ε̂.

    The closure may zero the gradients itself (``opt.zero_grad()``) or not: SAM has already zeroed them.
    ``step`` returns the closure's loss, i.e. the loss at the perturbed point w + ε̂ (the loss at w is the
    one computed before ``loss.backward()``)::

        loss = crit(model(x), y)
        loss.backward()
        opt.step(lambda: crit(model(x), y).backward())

    For loops that handle the two passes themselves: ``first_step()`` (step 1–2 up to the closure),
    a forward/backward at the perturbed weights, then ``second_step()`` (step 3).

    The base optimizer (any ``torch.optim.Optimizer`` class, default ``torch.optim.SGD``) is built over
    this optimizer's param groups: both share the same group dicts, so ``rho``, ``adaptive`` and the base
    optimizer's knobs (``lr``, ``momentum``, ``betas``, ``foreach``, …) live in one place, may differ per
    group, and LR schedulers act on them. The base optimizer's ``foreach`` knob also picks SAM's path
    (``None``: ``torch._foreach_*`` unless a tensor is sparse). A base optimizer with an argument named
    ``rho`` or ``adaptive`` (e.g. ``torch.optim.Adadelta``) cannot be wrapped.

    Each step costs two forward/backward passes: budget accounting (epochs at equal cost, wall-clock
    comparisons with single-gradient methods) should use :attr:`gradient_evaluations_per_step`.

    Args:
        params: parameters or param groups.
        base_optimizer: the base optimizer class.
        rho: radius ρ ≥ 0 of the neighbourhood (default 0.05, as in the reference implementation); 0 gives
            the base optimizer exactly. ASAM's radius is relative to |w| and is usually taken about ten
            times larger than SAM's (Kwon et al. §4).
        adaptive: ASAM's element-wise scaling T_w = |w|.
        **base_kwargs: arguments of ``base_optimizer``.

    A parameter whose ``grad`` is ``None`` at w is neither perturbed nor counted in the norm.

    ``defaults`` holds the base optimizer's defaults too, so ``OneCycleLR``/``CyclicLR`` with
    ``cycle_momentum`` find ``momentum`` or ``betas`` and cycle them in the shared groups, where the base
    optimizer reads them. Every knob, the base optimizer's included (finite; ``lr``, ``momentum``, … ≥ 0),
    is validated before a param group is added. With the base optimizer's ``maximize=True``, SAM maximizes
    f: ε̂ = −ρ·g/‖g‖, the run on −f. Sparse gradients are supported where the base optimizer takes them
    (the norm counts each entry once); a complex parameter is a pair of reals (ASAM's |w| per real
    component), as in ``torch.optim``. ``copy.deepcopy`` and ``pickle`` keep the base optimizer (and w while
    the weights are perturbed).
    """

    #: Forward/backward passes per ``step()``: one at w (before ``step``), one at w + ε̂ (the closure).
    gradient_evaluations_per_step: int = 2

    def __init__(
        self,
        params: Iterable[Any],
        base_optimizer: type[Optimizer] = torch.optim.SGD,
        *,
        rho: float = 0.05,
        adaptive: bool = False,
        **base_kwargs: Any,
    ) -> None:
        if not (isinstance(base_optimizer, type) and issubclass(base_optimizer, Optimizer)):
            raise ValueError(
                f"Invalid base_optimizer: {base_optimizer!r} (must be a torch.optim.Optimizer subclass)"
            )
        check_steps_without_closure(base_optimizer, "base_optimizer")
        defaults = dict(rho=rho, adaptive=adaptive, step=0)
        clash = sorted(set(defaults) & set(inspect.signature(base_optimizer.__init__).parameters))
        if clash:
            raise ValueError(
                f"Invalid base_optimizer: {base_optimizer.__name__} has arguments {clash} that clash with "
                "those of SAM"
            )
        self._check_knobs(defaults)
        self._knobs = tuple(defaults)
        self._perturbed: list[Tensor] | None = None
        super().__init__(params, defaults)
        self.base = build_base(self, base_optimizer, base_kwargs)

    @staticmethod
    def _check_knobs(g: dict[str, Any]) -> None:
        check("rho", g["rho"], low=0.0)
        check("adaptive", g["adaptive"], choices=(False, True))

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a param group to this optimizer and to the base optimizer (the same dict).

        Every knob is validated first; if the base optimizer refuses the group, neither keeps it.
        """
        if isinstance(param_group, dict):
            self._check_knobs({**self.defaults, **param_group})
        if self._perturbed is not None:
            raise RuntimeError("SAM.add_param_group: the weights are perturbed; call second_step() first")
        if "base" not in self.__dict__:  # in __init__: the base optimizer is built over every group after
            super().add_param_group(param_group)
            return
        add_shared_group(self, self.base, param_group, super().add_param_group)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        if state.get("_perturbed") is None:
            state.pop("_saved_weights", None)  # work buffers: w is kept only while the weights are perturbed
        return state

    def _saved(self, p: Tensor) -> Tensor:
        """A persistent buffer shaped like ``p`` that holds w while the weights sit at w + ε̂."""
        saved = self.__dict__.setdefault("_saved_weights", {})
        buf = saved.get(p)
        if buf is None or buf.shape != p.shape or buf.dtype != p.dtype or buf.device != p.device:
            buf = saved[p] = torch.empty_like(p, memory_format=torch.contiguous_format)
        return buf

    @torch.no_grad()
    def first_step(self, zero_grad: bool = False) -> None:
        """Move w to w + ε̂(w) using the gradient at w in ``p.grad``; keep w to restore it.

        With ``zero_grad`` the gradients are then zeroed in place, ready for the backward pass at w + ε̂.
        Raises ``RuntimeError`` when the weights are already perturbed or no parameter has a gradient, and
        ``FloatingPointError`` (weights untouched) on a NaN or Inf gradient.
        """
        if self._perturbed is not None:
            raise RuntimeError("SAM.first_step: the weights are already perturbed; call second_step() first")
        work = collect_grads(self.param_groups)
        if not any(params for params, _ in work):
            raise RuntimeError(
                "SAM.first_step: no parameter has a gradient; call loss.backward() at w before step(closure)"
            )
        # Complex tensors as pairs of reals; sparse gradients coalesced (the norm counts each entry once).
        work = [
            ([_real(p) for p in ps], [_real(g.coalesce() if g.is_sparse else g) for g in gs], ps)
            for ps, gs in work
        ]
        paths = [
            use_foreach(g.get("foreach"), ps, gs)
            for g, (ps, gs, _) in zip(self.param_groups, work, strict=True)
        ]
        norms: list[Tensor] = []
        for group, (params, grads, _), foreach in zip(self.param_groups, work, paths, strict=True):
            if params:
                norms.extend(_part_norms(params, grads, adaptive=group["adaptive"], foreach=foreach))
        device = norms[0].device
        dtype = functools.reduce(torch.promote_types, [n.dtype for n in norms])
        norm = torch.linalg.vector_norm(torch.stack([n.to(device=device, dtype=dtype) for n in norms]))
        # ε̂ = 0 when ‖g‖ = 0: where() picks 0 without forming 0·inf.
        inv = torch.where(norm > 0, norm.reciprocal(), torch.zeros_like(norm))
        perturbed: list[Tensor] = []
        for group, (params, grads, originals), foreach in zip(self.param_groups, work, paths, strict=True):
            if not params:
                continue
            saved = [self._saved(p) for p in originals]
            torch._foreach_copy_(saved, originals)
            scale = inv * (-group["rho"] if group.get("maximize", False) else group["rho"])
            if foreach:
                _perturb_foreach(params, grads, scale, adaptive=group["adaptive"])
            else:
                _perturb_single(params, grads, scale, adaptive=group["adaptive"])
            perturbed.extend(originals)
        self._perturbed = perturbed
        if zero_grad:
            for p in perturbed:
                p.grad.zero_()  # type: ignore[union-attr]

    @torch.no_grad()
    def second_step(self) -> None:
        """Restore w and let the base optimizer step with the gradients now in ``p.grad`` (those at w + ε̂).

        A NaN or Inf gradient raises ``FloatingPointError`` after w is restored and before the base
        optimizer or the step counters change.
        """
        if self._perturbed is None:
            raise RuntimeError("SAM.second_step: the weights are not perturbed; call first_step() first")
        self._restore()
        for gi, group in enumerate(self.param_groups):
            idx = [i for i, p in enumerate(group["params"]) if p.grad is not None]
            check_finite_grads([group["params"][i].grad for i in idx], idx, gi, group["step"])
        step_base(self, self.base, sparse_grads(self.param_groups))
        for group in self.param_groups:
            if any(p.grad is not None for p in group["params"]):
                group["step"] += 1

    def _restore(self) -> None:
        assert self._perturbed is not None
        perturbed, self._perturbed = self._perturbed, None
        if perturbed:
            torch._foreach_copy_(perturbed, [self._saved(p) for p in perturbed])

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor:  # type: ignore[override]
        """One SAM step (Foret et al. Alg. 1); returns the closure's loss, evaluated at w + ε̂.

        ``p.grad`` must hold the gradient at w; ``closure`` re-evaluates the loss at the current weights
        and calls ``backward()`` on it (SAM zeroes the gradients before calling it). If the closure
        raises, w is restored and the optimizer is left as it was.
        """
        if closure is None:
            raise ValueError(
                "Invalid closure: None (SAM needs a closure that recomputes the loss and calls backward() at "
                "the perturbed weights; or call first_step() and second_step() around your own pass)"
            )
        self.first_step(zero_grad=True)
        try:
            with torch.enable_grad():
                loss = closure()
        except BaseException:
            self._restore()
            raise
        self.second_step()
        return loss

    def state_dict(self) -> dict[str, Any]:
        """Param groups plus the base optimizer's state (momentum buffers, Adam moments, …)."""
        if self._perturbed is not None:
            raise RuntimeError("SAM.state_dict: the weights are perturbed; call second_step() first")
        return with_base_state(super().state_dict(), self.base)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state written by :meth:`state_dict`; one saved by another optimizer or for other parameters
        is refused before anything is loaded."""
        if self._perturbed is not None:
            raise RuntimeError("SAM.load_state_dict: the weights are perturbed; call second_step() first")
        check_state_dict(self, state_dict, knobs=self._knobs)
        load_base_state(self, self.base, state_dict, super().load_state_dict)


def _real(t: Tensor) -> Tensor:
    """A dense complex tensor as its pairs of reals (a view), any other tensor as it is."""
    return torch.view_as_real(t) if t.is_complex() and t.layout == torch.strided else t


def _part_norms(params: list[Tensor], grads: list[Tensor], *, adaptive: bool, foreach: bool) -> list[Tensor]:
    """‖g_i‖ per tensor, or ‖|w_i| ⊙ g_i‖ = ‖w_i ⊙ g_i‖ when ``adaptive`` (sparse g_i: over its entries)."""
    if foreach:
        return list(torch._foreach_norm(torch._foreach_mul(params, grads) if adaptive else grads))
    norms = []
    for p, g in zip(params, grads, strict=True):
        t = g * p if adaptive else g
        norms.append(torch.linalg.vector_norm(t if t.layout == torch.strided else stored_entries(t)))
    return norms


def _perturb_single(params: list[Tensor], grads: list[Tensor], scale: Tensor, *, adaptive: bool) -> None:
    """Reference implementation: w ← w + s·g (adaptive: w + s·w²⊙g), s = ±ρ/‖·‖ (g may be sparse)."""
    for p, g in zip(params, grads, strict=True):
        e = g * scale.to(p.device)
        if adaptive:
            e = e * p * p if e.layout != torch.strided else e.mul_(p).mul_(p)
        p.add_(e)


def _perturb_foreach(params: list[Tensor], grads: list[Tensor], scale: Tensor, *, adaptive: bool) -> None:
    """The same update with ``torch._foreach_*`` kernels (one launch per device)."""
    by_device: dict[torch.device, list[int]] = {}
    for i, p in enumerate(params):
        by_device.setdefault(p.device, []).append(i)
    for device, idx in by_device.items():
        ps, gs = [params[i] for i in idx], [grads[i] for i in idx]
        es = torch._foreach_mul(gs, scale.to(device))
        if adaptive:
            torch._foreach_mul_(es, ps)
            torch._foreach_mul_(es, ps)
        torch._foreach_add_(ps, es)


#: The names under which :mod:`deeplandscape.optim.registry` lists this module's optimizers.
OPTIMIZERS = {"sam": SAM}
