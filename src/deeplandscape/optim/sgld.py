"""Stochastic gradient Langevin dynamics (Welling & Teh 2011; Thesis §3.2.1 eq. (3.16), §3.3.6).

    x ← x − η (∇f_b(x) + λ x) + √(2η/β) ε,    ε ∼ N(0, I)

with η the param group's ``lr`` (so an LR scheduler scales the drift and the noise together, as in
eq. (3.16) where the step size η_t multiplies both), β^{-1} = ``temperature`` and λ = ``weight_decay``
(a Gaussian prior). With temperature 0 this is SGD exactly. For a loss that is the *mean* over N samples,
temperature 1/N samples the Bayesian posterior of eq. (3.14).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from ._common import SeededOptimizer, check, closure_loss, collect_grads, use_foreach


class SGLD(SeededOptimizer):
    """SGLD: x ← x − lr·(∇f + λx) + √(2·lr·temperature)·ε (Welling & Teh 2011; Thesis eq. (3.16)).

    Args:
        params: parameters or param groups.
        lr: step size η (default 1e-3, the default of ``torch.optim.SGD``).
        temperature: β^{-1} ≥ 0 (default 1e-6, the thermal noise of Thesis §3.3.2); 0 gives SGD exactly.
        weight_decay: λ ≥ 0, an L2 term added to the gradient (a Gaussian prior).
        seed: seed of the noise generator (``None``: drawn from torch's global generator).
        foreach: use the ``torch._foreach_*`` path (``None``: yes unless a gradient is sparse).

    Sparse gradients (``nn.Embedding(sparse=True)``) are supported; the step is dense (the noise is).
    Complex parameters get N(0, 1) noise in each real component (as their ``torch.view_as_real`` pairs).
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        temperature: float = 1e-6,
        weight_decay: float = 0.0,
        *,
        seed: int | None = None,
        foreach: bool | None = None,
    ) -> None:
        defaults = dict(lr=lr, temperature=temperature, weight_decay=weight_decay, foreach=foreach, step=0)
        self._check_group(defaults)
        super().__init__(params, defaults, seed)

    def _check_group(self, g: dict[str, Any]) -> None:
        check("lr", g["lr"], low=0.0)
        check("temperature", g["temperature"], low=0.0)
        check("weight_decay", g["weight_decay"], low=0.0)
        check("foreach", g["foreach"], choices=(None, False, True))

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:  # type: ignore[override]
        """One SGLD step per param group; returns the closure's loss."""
        loss = closure_loss(closure)
        work = collect_grads(self.param_groups)
        for group, (params, grads) in zip(self.param_groups, work, strict=True):
            if not params:
                continue
            lr, temp, wd = group["lr"], group["temperature"], group["weight_decay"]
            std = math.sqrt(2.0 * lr * temp)
            noises = self.randn_like_params(params) if std > 0 else None
            if use_foreach(group["foreach"], params, grads):
                _sgld_foreach(params, grads, noises, lr=lr, std=std, weight_decay=wd)
            else:
                _sgld_single(params, grads, noises, lr=lr, std=std, weight_decay=wd)
            group["step"] += 1
        return loss


def _sgld_single(
    params: list[Tensor],
    grads: list[Tensor],
    noises: list[Tensor] | None,
    *,
    lr: float,
    std: float,
    weight_decay: float,
) -> None:
    """Reference implementation, one tensor at a time (a sparse gradient is added into the dense step)."""
    for i, (p, g) in enumerate(zip(params, grads, strict=True)):
        if weight_decay != 0:
            d = p.mul(weight_decay).add_(g) if g.layout != torch.strided else g.add(p, alpha=weight_decay)
            p.add_(d, alpha=-lr)
        else:
            p.add_(g, alpha=-lr)
        if noises is not None:
            p.add_(noises[i], alpha=std)


def _sgld_foreach(
    params: list[Tensor],
    grads: list[Tensor],
    noises: list[Tensor] | None,
    *,
    lr: float,
    std: float,
    weight_decay: float,
) -> None:
    """The same update with ``torch._foreach_*`` kernels."""
    ds = torch._foreach_add(grads, params, alpha=weight_decay) if weight_decay != 0 else grads
    torch._foreach_add_(params, ds, alpha=-lr)
    if noises is not None:
        torch._foreach_add_(params, noises, alpha=std)


#: The names under which :mod:`deeplandscape.optim.registry` lists this module's optimizers.
OPTIMIZERS = {"sgld": SGLD}
