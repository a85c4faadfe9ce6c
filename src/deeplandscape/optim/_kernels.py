"""Tensor kernels shared by the optimizers (Entropy-SGD, HJ, Heat, Elastic-SGD, Parle, GradientNoise): a
single-tensor reference path and a ``torch._foreach_*`` path.

Both paths evaluate the same formulas, so they agree to rounding (tested):

- momentum step      p ← p − lr·M(d),  b ← μb + d                (M = momentum as torch.optim.SGD)
- coupled SGD step   p ← p − lr·[M(∇f_b(p) + λp) + c(p − a)]   (Thesis Alg. 2 line 4 and eq. (5.8a):
                     a = x^a, c = 1/γ; eq. (5.4a): a = x, c = 1/ρ_k; λ = weight decay)
- Adam step          Adam (Kingma & Ba 2014) on a direction d, as torch.optim.Adam
- Parle outer step   D = (x^a − z^a) + (x^a − x)/ρ_k          (Thesis eq. (5.8c) with η(1) = ηγ_k, η(2) = η)

γ or ρ = ∞ drops its term, which is what makes the degenerate cases of Thesis §5.3.1 exact.

The steps are memory-bound: their cost is the number of parameter-sized arrays they stream. Where it
applies, the ``foreach`` path runs torch's fused optimizer kernels (``torch._fused_sgd_``,
``torch._fused_adam_``: the kernels of ``torch.optim.SGD(fused=True)`` and ``Adam(fused=True)``), which
read and write each array once.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ._common import standard_normal_


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
    ρ = ∞) drops every term in a. With λ = 0 the update is that ``lerp`` and :func:`momentum_step_` on g
    (torch's fused SGD kernel on the ``foreach`` path).
    """
    if not ps:
        return
    bufs = []
    if momentum != 0:
        for p, st in zip(ps, states, strict=True):
            if key not in st:
                st[key] = torch.zeros_like(p, memory_format=torch.preserve_format)
            bufs.append(st[key])
    if weight_decay == 0:  # the pull first (it reads the old p), then the momentum step on g
        if c != 0:
            lerp_(ps, anchors, lr * c, foreach)
        momentum_step_(ps, gs, bufs, lr=lr, momentum=momentum, nesterov=nesterov, foreach=foreach)
        return
    if momentum != 0:  # λp enters the buffer, computed from the old p
        _axpby(bufs, momentum, [(gs, 1.0), (ps, weight_decay)], foreach)
        if not nesterov:
            if c != 0:
                lerp_(ps, anchors, lr * c, foreach)
            add_(ps, bufs, -lr, foreach)
            return
    _axpby(ps, 1.0 - lr * (weight_decay + c), [(anchors, lr * c)], foreach)
    add_(ps, gs, -lr, foreach)
    if momentum != 0:
        add_(ps, bufs, -lr * momentum, foreach)


def _fusable(ps: list[Tensor], gs: list[Tensor], kernel: str) -> bool:
    """Whether torch's fused optimizer ``kernel`` applies: dense float32 or float64 tensors on one device
    (CPU or CUDA), of one dtype.

    Not float16/bfloat16: torch's fused SGD kernel on the CPU is wrong for them (torch 2.13: from 16
    elements on, parameters off by ~0.3 after two steps of lr 0.1 against torch.optim.SGD(foreach=False));
    those take the unfused ``torch._foreach_*`` path, as torch.optim.SGD does by default.
    """
    if not ps or not hasattr(torch, kernel):
        return False
    p0 = ps[0]
    if p0.device.type not in ("cpu", "cuda") or p0.dtype not in (torch.float32, torch.float64):
        return False
    return all(
        t.device == p0.device and t.dtype == p0.dtype and not t.is_sparse for group in (ps, gs) for t in group
    )


def momentum_step_(
    ps: list[Tensor],
    ds: list[Tensor],
    bufs: list[Tensor],
    *,
    lr: float,
    momentum: float,
    nesterov: bool,
    foreach: bool,
) -> None:
    """p ← p − lr·M(d) in place, M as ``torch.optim.SGD``'s momentum (no dampening).

    b ← μb + d; M(d) = d + μb (Nesterov) or b (heavy ball); μ = 0 gives p ← p − lr·d. Buffers that start
    at zero give ``torch.optim.SGD``'s first step (b = d). On the ``foreach`` path the update is torch's
    fused SGD kernel (one pass over p, d and b); otherwise the Nesterov direction is applied as two in-place
    additions, so no parameter-sized temporary is allocated.
    """
    if momentum == 0:
        add_(ps, ds, -lr, foreach)
        return
    if foreach and _fusable(ps, ds, "_fused_sgd_"):
        torch._fused_sgd_(
            ps,
            ds,
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
    if foreach:
        torch._foreach_mul_(bufs, momentum)
        torch._foreach_add_(bufs, ds)
    else:
        for b, d in zip(bufs, ds, strict=True):
            b.mul_(momentum).add_(d)
    if nesterov:
        add_(ps, ds, -lr, foreach)
        add_(ps, bufs, -lr * momentum, foreach)
    else:
        add_(ps, bufs, -lr, foreach)


def adam_step_(
    ps: list[Tensor],
    ds: list[Tensor],
    ms: list[Tensor],
    vs: list[Tensor],
    *,
    t: int,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    foreach: bool,
) -> None:
    """Adam (Kingma & Ba 2014) on the direction ``ds`` at Adam step t ≥ 1, written as ``torch.optim.Adam``.

    m ← β1 m + (1 − β1) d, v ← β2 v + (1 − β2) d², p ← p − lr·(m/(1 − β1^t)) / (√(v/(1 − β2^t)) + eps).
    The ``foreach`` path is torch's fused Adam kernel (one pass over p, d, m and v). A complex tensor is
    updated as the pair of reals ``torch.view_as_real`` gives (as ``torch.optim.Adam`` does): d² is taken
    in each real component, never the complex square d·d.
    """
    beta1, beta2 = betas
    if foreach and _fusable(ps, ds, "_fused_adam_"):
        step = torch.tensor(float(t), dtype=torch.float32, device=ps[0].device)
        torch._fused_adam_(
            ps,
            ds,
            ms,
            vs,
            [],
            [step] * len(ps),
            lr=lr,
            beta1=beta1,
            beta2=beta2,
            weight_decay=0.0,
            eps=eps,
            amsgrad=False,
            maximize=False,
        )
        return
    step_size = lr / (1.0 - beta1**t)
    bc2_sqrt = math.sqrt(1.0 - beta2**t)
    for p, d, m, v in zip(ps, ds, ms, vs, strict=True):
        if p.is_complex():
            p, d, m, v = (torch.view_as_real(t) for t in (p, d, m, v))
        m.lerp_(d, 1.0 - beta1)
        v.mul_(beta2).addcmul_(d, d, value=1.0 - beta2)
        denom = (v.sqrt() / bc2_sqrt).add_(eps)
        p.addcdiv_(m, denom, value=-step_size)


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


def sum_into_(outs: list[Tensor], xs: list[Tensor], ds: list[Tensor], alpha: float, foreach: bool) -> None:
    """out ← x + α d, in one pass per tensor (``outs`` may be ``ds`` itself).

    ``torch.add(x, d, alpha=α, out=out)`` tensor by tensor: on the CPU the ``foreach`` kernels are loops over
    the same per-tensor kernels, and there is no ``foreach`` form with ``out``. On other devices the
    ``foreach`` path takes two launches for the whole list (a copy of x, or a scaling of d in place, and an
    add).
    """
    if not outs:
        return
    if foreach and outs[0].device.type != "cpu":
        if all(out is d for out, d in zip(outs, ds, strict=True)):
            torch._foreach_mul_(outs, alpha)
            torch._foreach_add_(outs, xs)
        else:
            torch._foreach_copy_(outs, xs)
            torch._foreach_add_(outs, ds, alpha=alpha)
        return
    for out, x, d in zip(outs, xs, ds, strict=True):
        torch.add(x, d, alpha=alpha, out=out)


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
    """p ← p + std·ε, ε ~ N(0, I) drawn from ``generator`` parameter by parameter (same stream both paths;
    a complex p gets N(0, 1) in each real component)."""
    if not ps or std == 0:
        return
    eps = [
        torch.randn(p.shape, generator=generator, device=p.device, dtype=p.dtype)
        if not p.is_complex()
        else standard_normal_(torch.empty_like(p, memory_format=torch.contiguous_format), generator)
        for p in ps
    ]
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
