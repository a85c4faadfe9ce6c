"""Independent SGD for every member of an :class:`~deeplandscape.nets.Ensemble` (Choromanska et al. §5).

The summed loss ``Σ_k L_k(θ^(k))`` of an ensemble has gradient ``∂/∂θ^(k) = ∇L_k(θ^(k))`` (member k's
parameters appear in no other term), so one backward pass gives every member its own gradient, and
:class:`EnsembleSGD` applies torch.optim.SGD's update to each member's slice of the stacked parameters,
with a learning rate η_k per member.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from deeplandscape.nets.ensemble import Ensemble


class EnsembleSGD:
    """Independent SGD for every member: torch.optim.SGD's update applied to each θ^(k) with its own η_k.

    With ``g = ∇L_k(θ^(k)) + λ θ^(k)`` (weight decay λ), momentum μ and dampening τ, as torch.optim.SGD:
    ``b ← g`` at the first step, ``b ← μ b + (1 − τ) g`` after; ``d = g + μ b`` (Nesterov) or ``d = b``;
    ``θ^(k) ← θ^(k) − η_k d``. Every operation is elementwise over the stacked tensors, so member k's
    update uses member k's gradient, buffer and learning rate only. ``lr`` is a float (all members) or E
    values; :meth:`set_lr` changes it between steps (per-member learning-rate schedules).
    """

    def __init__(
        self,
        ensemble: Ensemble,
        lr: float | Sequence[float] | torch.Tensor = 1e-2,
        *,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ):
        if not isinstance(ensemble, Ensemble):
            raise ValueError(f"ensemble must be an Ensemble, got {type(ensemble).__name__}")
        if not momentum >= 0.0:
            raise ValueError(f"momentum must be >= 0, got {momentum!r}")
        if not weight_decay >= 0.0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError(
                f"nesterov requires momentum > 0 and dampening = 0, got momentum={momentum!r}, "
                f"dampening={dampening!r}"
            )
        self.ensemble = ensemble
        self.momentum = momentum
        self.dampening = dampening
        self.weight_decay = weight_decay
        self.nesterov = nesterov
        self.params = [p for p in ensemble.parameters() if p.requires_grad]
        self.momentum_buffers: list[torch.Tensor | None] = [None] * len(self.params)
        self.set_lr(lr)

    def set_lr(self, lr: float | Sequence[float] | torch.Tensor) -> None:
        """Set η (one float for all members, or E values η_k); every η_k must be finite and ≥ 0."""
        E = self.ensemble.size
        t = torch.as_tensor(lr, dtype=torch.float64).detach().cpu()
        if t.dim() == 0:
            t = t.expand(E)
        if t.shape != (E,):
            raise ValueError(f"lr must be a float or {E} values (one per member), got shape {tuple(t.shape)}")
        if not torch.isfinite(t).all() or (t < 0).any():
            raise ValueError(f"lr must be finite and >= 0 for every member, got {t.tolist()}")
        self.lr = t.clone()
        self._uniform = bool((t == t[0]).all())
        self._lr_views: dict[tuple, torch.Tensor] = {}

    def _lr_view(self, p: torch.Tensor) -> torch.Tensor:
        key = (p.dim(), p.dtype, p.device)
        if key not in self._lr_views:
            self._lr_views[key] = self.lr.to(p.dtype).to(p.device).view(-1, *([1] * (p.dim() - 1)))
        return self._lr_views[key]

    def zero_grad(self) -> None:
        """Drop the gradients (set to None)."""
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One independent SGD step for every member (the update in the class docstring)."""
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            d = p.grad
            if self.weight_decay != 0:
                d = d.add(p, alpha=self.weight_decay)
            if self.momentum != 0:
                buf = self.momentum_buffers[i]
                if buf is None:
                    buf = self.momentum_buffers[i] = d.detach().clone()
                else:
                    buf.mul_(self.momentum).add_(d, alpha=1 - self.dampening)
                d = d.add(buf, alpha=self.momentum) if self.nesterov else buf
            if self._uniform:
                p.add_(d, alpha=-float(self.lr[0]))
            else:
                p.addcmul_(self._lr_view(p), d, value=-1.0)
