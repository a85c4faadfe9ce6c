"""Tensor kernels of Elastic-SGD and Parle: a single-tensor reference path and a ``torch._foreach_*`` path.

Both paths evaluate the same formulas in the same order, so they agree to rounding (tested):

- coupled SGD step   p ← p − lr·[M(∇f_b(p) + λp) + c(p − a)]   (Thesis eq. (5.4a): a = x, c = 1/ρ_k;
                     eq. (5.8a): a = x^a, c = 1/γ_k; λ = weight decay; M = momentum as torch.optim.SGD)
- Parle outer step   D = (x^a − z^a) + (x^a − x)/ρ_k          (Thesis eq. (5.8c) with η(1) = ηγ_k, η(2) = η)

γ or ρ = ∞ drops its term, which is what makes the degenerate cases of Thesis §5.3.1 exact.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor


def coupled_sgd_step_(
    ps: list[Tensor],
    gs: list[Tensor],
    anchors: list[Tensor],
    states: list[dict[str, Any]],
    key: str,
    *,
    lr: float,
    c: float,
    weight_decay: float,
    momentum: float,
    nesterov: bool,
    foreach: bool,
) -> None:
    """p ← p − lr·[M(g + λp) + c(p − a)]: SGD with momentum M on f + (λ/2)|p|², plus the pull c(p − a).

    The momentum acts on the gradient of f only, the coupling is added after it: Entropy-SGD's inner loop
    (as :class:`~deeplandscape.optim.entropy.EntropySGD`) and Zhang et al.'s EAMSGD elastic force. Written
    without temporaries (the step is memory-bound): with b the momentum buffer (zeros at first use, which
    equals ``torch.optim.SGD``'s b = d),

        b ← μb + g + λp
        p ← (1 − lr(λ + c))p + lr·c·a − lr·g − lr·μ·b      (Nesterov: M(d) = d + μb; μ = 0: no b-term)
        p ← (1 − lr·c)p + lr·c·a − lr·b                    (heavy ball: M(d) = b)

    The first two terms of the p-update are one ``lerp`` towards a when their weights allow. c = 0 (γ or
    ρ = ∞) drops every term in a. On the ``foreach`` path with momentum and λ = 0 the momentum step is
    torch's fused SGD kernel (``torch._fused_sgd_``, the kernel of ``torch.optim.SGD(fused=True)``).
    """
    if not ps:
        return
    k = weight_decay + c
    if momentum != 0:
        bufs = []
        for p, st in zip(ps, states, strict=True):
            if key not in st:
                st[key] = torch.zeros_like(p, memory_format=torch.preserve_format)
            bufs.append(st[key])
        if foreach and weight_decay == 0 and _fusable(ps, gs):
            # the same update in two passes: the pull first (it reads the old p), then torch's fused SGD
            # kernel for p ← p − lr·M(g), b ← μb + g (buffers start at zero: not a "first step")
            if c != 0:
                lerp_(ps, anchors, lr * c, foreach)
            torch._fused_sgd_(
                ps,
                gs,
                bufs,
                weight_decay=0.0,
                momentum=momentum,
                lr=lr,
                dampening=0.0,
                nesterov=nesterov,
                maximize=False,
                is_first_step=False,
            )
            return
        _axpby(bufs, momentum, [(gs, 1.0), (ps, weight_decay)], foreach)
        if not nesterov:
            if c != 0:
                lerp_(ps, anchors, lr * c, foreach)
            add_(ps, bufs, -lr, foreach)
            return
    if weight_decay == 0 and c != 0:
        lerp_(ps, anchors, lr * c, foreach)
    else:
        _axpby(ps, 1.0 - lr * k, [(anchors, lr * c)], foreach)
    add_(ps, gs, -lr, foreach)
    if momentum != 0:
        add_(ps, bufs, -lr * momentum, foreach)


def _fusable(ps: list[Tensor], gs: list[Tensor]) -> bool:
    """Whether torch's fused SGD kernel applies: dense floating tensors on one device, of one dtype."""
    if not hasattr(torch, "_fused_sgd_"):
        return False
    p0 = ps[0]
    if p0.device.type not in ("cpu", "cuda") or not p0.is_floating_point():
        return False
    return all(
        t.device == p0.device and t.dtype == p0.dtype and not t.is_sparse for group in (ps, gs) for t in group
    )


def _axpby(ys: list[Tensor], scale: float, terms: list[tuple[list[Tensor], float]], foreach: bool) -> None:
    """y ← scale·y + Σ_j α_j x_j, skipping factors equal to 1 and terms with α_j = 0."""
    if scale != 1.0:
        if foreach:
            torch._foreach_mul_(ys, scale)
        else:
            for y in ys:
                y.mul_(scale)
    for xs, alpha in terms:
        if alpha != 0:
            add_(ys, xs, alpha, foreach)


def momentum_direction(
    ds: list[Tensor], states: list[dict[str, Any]], key: str, momentum: float, nesterov: bool, foreach: bool
) -> list[Tensor]:
    """torch.optim.SGD momentum: b ← μ b + d (b = d the first time); returns d + μ b (Nesterov) or b."""
    if momentum == 0 or not ds:
        return ds
    bufs: list[Tensor] = []
    old_b: list[Tensor] = []
    old_d: list[Tensor] = []
    for d, st in zip(ds, states, strict=True):
        b = st.get(key)
        if b is None:
            b = torch.clone(d).detach()
            st[key] = b
        else:
            old_b.append(b)
            old_d.append(d)
        bufs.append(b)
    if foreach:
        if old_b:
            torch._foreach_mul_(old_b, momentum)
            torch._foreach_add_(old_b, old_d)
        return list(torch._foreach_add(ds, bufs, alpha=momentum)) if nesterov else bufs
    for b, d in zip(old_b, old_d, strict=True):
        b.mul_(momentum).add_(d)
    return [d.add(b, alpha=momentum) for d, b in zip(ds, bufs, strict=True)] if nesterov else bufs


def add_(ps: list[Tensor], ds: list[Tensor], alpha: float, foreach: bool) -> None:
    """p ← p + α d."""
    if not ps:
        return
    if foreach:
        torch._foreach_add_(ps, ds, alpha=alpha)
    else:
        for p, d in zip(ps, ds, strict=True):
            p.add_(d, alpha=alpha)


def lerp_(zs: list[Tensor], ys: list[Tensor], weight: float, foreach: bool) -> None:
    """z ← z + w (y − z), i.e. the exponential average z ← α z + (1 − α) y with w = 1 − α."""
    if not zs:
        return
    if foreach:
        torch._foreach_lerp_(zs, ys, weight)
    else:
        for z, y in zip(zs, ys, strict=True):
            z.lerp_(y, weight)


def outer_direction(
    xs: list[Tensor], zs: list[Tensor], masters: list[Tensor], rho: float, foreach: bool
) -> list[Tensor]:
    """D = (x^a − z^a) + (x^a − x)/ρ (Thesis eq. (5.8c) divided by the normalized learning rate η)."""
    if not xs:
        return []
    if foreach:
        ds = torch._foreach_sub(xs, zs)
        if not math.isinf(rho):
            torch._foreach_add_(ds, torch._foreach_sub(xs, masters), alpha=1.0 / rho)
        return list(ds)
    out = []
    for x, z, m in zip(xs, zs, masters, strict=True):
        d = x.sub(z)
        if not math.isinf(rho):
            d.add_(x.sub(m), alpha=1.0 / rho)
        out.append(d)
    return out


def add_noise_(ps: list[Tensor], std: float, generator: torch.Generator, foreach: bool) -> None:
    """p ← p + std·ε, ε ~ N(0, I) drawn from ``generator`` parameter by parameter (same stream both paths)."""
    if not ps or std == 0:
        return
    eps = [torch.randn(p.shape, generator=generator, device=p.device, dtype=p.dtype) for p in ps]
    add_(ps, eps, std, foreach)


def copy_(dst: list[Tensor], src: list[Tensor], foreach: bool) -> None:
    """dst ← src."""
    if not dst:
        return
    if foreach:
        torch._foreach_copy_(dst, src)
    else:
        for d, s in zip(dst, src, strict=True):
            d.copy_(s)
