"""Elastic-SGD (Zhang et al. 2015): n replicas coupled elastically to a centre, with scoping of ρ.

Thesis eq. (5.4) (and §4.3.3, eq. (4.24)–(4.25), where it is shown to minimize Local Entropy): replicas
x^1, …, x^n minimize Σ_a f(x^a, Ξ^a) + (1/2ρ)‖x^a − x‖² together with a master (centre) x:

    x^a_{k+1} = x^a_k − η [∇f_b(x^a_k) + (x^a_k − x_k)/ρ_k]                 (5.4a)
    x_{k+1}   = x_k − (n η′/ρ_k) (x_k − (1/n) Σ_a x^a_k)                   (5.4b)

Scoping (Thesis §5.2.4, §5.4.3 "Elastic-SGD with scoping on ρ"): ρ_k = max(ρ0 (1 − s)^k, ρ_min), the same
exponential schedule as Parle's eq. (5.10) with one communication per step, s = 1/(2B) for B mini-batches
per epoch. As ρ → 0 the replicas collapse onto the master.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from . import _kernels as K
from ._common import closure_loss, use_foreach
from ._parle_replicas import (
    ReplicaMean,
    ReplicatedOptimizer,
    check_floor,
    check_positive,
    check_sgd_knobs,
    check_unit,
    resolve_scoping,
    scoped,
)

__all__ = ["ElasticSGD"]


class ElasticSGD(ReplicatedOptimizer):
    r"""Elastic-SGD, Thesis eq. (5.4): SGD on each replica plus the elastic pull (x^a − x)/ρ_k to a master.

    One ``step()`` updates every replica with its own mini-batch gradient and then the master:

        x^a ← x^a − η [M(∇f_b(x^a) + λ x^a) + (x^a − x)/ρ_k]
        x   ← x − (n η′/ρ_k)(x − x̄),   x̄ = (1/n) Σ_a x^a_k  (the replicas before their update)

    where ρ_k = max(ρ0 (1 − s)^k, ρ_min) and M is ``torch.optim.SGD``'s (Nesterov) momentum, applied to the
    gradient of f only, the elastic force added after it (Zhang et al.'s EAMSGD). ``master_lr=lr`` gives
    the synchronous, symmetric update of Zhang et al. (2015), stable for n η/ρ_k ≤ 1. With
    ``master_lr=None`` (default) η′ = ρ_k/n, the normalization of Thesis §5.3.2, and the master is the
    average of the *updated* replicas, x = (1/n) Σ_a x^a_{k+1}: with the stale average x̄(x^a_k) the elastic
    term would pull every replica towards where the replicas were a step earlier, e ← −(η/ρ_k) e for
    e = x̄ − x, which stops decaying at η/ρ_k = 1, exactly where the defaults' scoping ends (η = 0.1,
    ρ_min = 0.1). This is the order of Parle (:mod:`deeplandscape.optim.parle`), so that Parle with L = 1,
    γ = ∞ is this optimizer.

    Args:
        params: the parameters of one replica (n = 1, or one replica per process with
            :class:`~deeplandscape.optim.distributed.DistributedElasticSGD`), or a list of n
            parameter iterables, one per replica (same structure, same device).
        lr: η, the replicas' learning rate (default 0.1, Thesis §5.4).
        rho: ρ0, the initial elastic coupling is 1/ρ0 (default 1, Thesis §5.3.2); ``math.inf`` decouples.
        scoping: s in ρ_k = ρ0 (1 − s)^k; default 0, or 1/(2B) when ``batches_per_epoch=B`` is given.
        batches_per_epoch: B, the number of mini-batches in the global data set (sets s = 1/(2B)).
        rho_min: the clip ρ_k ≥ ρ_min (default 0.1, Thesis §5.3.2).
        master_lr: η′ of eq. (5.4b); ``None`` (default): the master is the average of the updated replicas.
        momentum, nesterov: momentum M on the gradient (default 0.9 with Nesterov, Thesis §5.4).
        weight_decay: λ, L2 penalty added to the replica gradient (default 0).
        foreach: use the ``torch._foreach_*`` kernels (default ``None``: yes).

    Sparse gradients (``nn.Embedding(sparse=True)``) are supported (single-tensor path for that group).
    Parameters whose ``grad`` is ``None`` are not updated; the master still averages every parameter, so
    that all replicas (and all processes) always exchange the same tensors. Extra memory: the master (one
    parameter-sized buffer per process), the momentum buffer per replica, one temporary x̄ per step.
    """

    def __init__(
        self,
        params: Any,
        lr: float = 0.1,
        *,
        rho: float = 1.0,
        scoping: float | None = None,
        batches_per_epoch: int | None = None,
        rho_min: float = 0.1,
        master_lr: float | None = None,
        momentum: float = 0.9,
        nesterov: bool = True,
        weight_decay: float = 0.0,
        foreach: bool | None = None,
        _averager: ReplicaMean | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            rho=rho,
            scoping=resolve_scoping(scoping, batches_per_epoch),
            rho_min=rho_min,
            master_lr=master_lr,
            momentum=momentum,
            nesterov=nesterov,
            weight_decay=weight_decay,
            foreach=foreach,
        )
        _check_knobs(defaults)
        super().__init__(params, defaults, seed=0, averager=_averager, group_check=_check_knobs)

    def _check_structure(self) -> None:
        super()._check_structure()
        self._check_master_lr_kind()

    def _check_master_lr_kind(self) -> None:
        if len({g["master_lr"] is None for g in self.param_groups}) > 1:
            raise ValueError(
                "Invalid master_lr: None in some param groups and a number in others (use one kind)"
            )

    def _init_param_state(self, p: Tensor, state: dict[str, Any]) -> None:
        pass  # momentum buffers are created at first use, as in torch.optim.SGD

    def _replica_mean(self) -> list[Tensor]:
        """x̄ = (1/n) Σ_a x^a over all replicas (one collective in distributed runs)."""
        means = [torch.empty_like(m) for m in self.master_weights()]
        self._averager.mean_(means, self._all_replica_params())()
        return means

    def rho_at(self, k: int | None = None, group: int = 0) -> float:
        """ρ_k = max(ρ0 (1 − s)^k, ρ_min) of param group ``group`` at step k (default: the next step)."""
        g = self.param_groups[group]
        return scoped(g["rho"], g["scoping"], self._step_count if k is None else k, g["rho_min"])

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Eq. (5.4a) on every replica, then eq. (5.4b) on the master; returns the closure's loss."""
        self._refuse_inside_reference()
        loss = closure_loss(closure)
        k = self._step_count
        work = self._replica_grads()

        self._check_master_lr_kind()  # also after edits of the param groups
        self._sync_master()
        # eq. (5.4b) with an explicit η′ uses x̄ of the replicas before their update (x^a_k)
        jacobi = self._replica_groups[0][0]["master_lr"] is not None
        means_before = self._replica_mean() if jacobi else None

        masters_of_group = [[self.state[p]["master"] for p in g["params"]] for g in self._replica_groups[0]]
        for _, j, group, ps, gs in work:
            foreach = use_foreach(group["foreach"], ps, gs)
            ms = [m for p, m in zip(group["params"], masters_of_group[j], strict=True) if p.grad is not None]
            rho = scoped(group["rho"], group["scoping"], k, group["rho_min"])
            K.coupled_sgd_step_(
                ps,
                gs,
                ms,
                [self.state[p] for p in ps],
                "momentum_buffer",
                lr=group["lr"],
                c=0.0 if math.isinf(rho) else 1.0 / rho,
                weight_decay=group["weight_decay"],
                momentum=group["momentum"],
                nesterov=group["nesterov"],
                foreach=foreach,
            )

        i = 0
        for group in self._replica_groups[0]:
            rho = scoped(group["rho"], group["scoping"], k, group["rho_min"])
            for p in group["params"]:
                if group["master_lr"] is not None and not math.isinf(rho):
                    self.state[p]["master"].lerp_(means_before[i], self.n_replicas * group["master_lr"] / rho)
                i += 1
        # the normalized η′ = ρ_k/n: the master is the average of the updated replicas (class docstring);
        # distributed, the all_reduce runs during the next forward/backward pass
        if not jacobi:
            self._start_master_average(self._all_replica_params())
        self._step_count += 1
        return loss


def _check_knobs(g: dict[str, Any]) -> None:
    """``ValueError("Invalid <name>: <value> (…)")`` for a bad knob of a param group (or the defaults)."""
    check_positive("lr", g["lr"], allow_zero=True)
    check_positive("rho", g["rho"], allow_inf=True)
    check_unit("scoping", g["scoping"])
    check_positive("rho_min", g["rho_min"], allow_zero=True)
    check_floor(g, "rho")
    if g["master_lr"] is not None:
        check_positive("master_lr", g["master_lr"], allow_zero=True)
    check_sgd_knobs(g)


#: The names under which :mod:`deeplandscape.optim.registry` lists this module's optimizers.
OPTIMIZERS = {"elastic-sgd": ElasticSGD}
