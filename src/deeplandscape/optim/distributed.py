"""Parle and Elastic-SGD with one replica per process over ``torch.distributed`` (gloo on CPU, NCCL on GPU).

Launch with ``torchrun --nproc_per_node=n train.py``; each process builds its model, calls
``torch.distributed.init_process_group()`` and uses :class:`DistributedParle` (or
:class:`DistributedElasticSGD`) exactly like the single-process optimizer with n = 1. The only collective
is the average of the replicas x̄ = (1/n) Σ_a x^a that the master update needs, Thesis eq. (5.8d)/(5.4b):
one ``all_reduce`` (sum) of all replica weights flattened into one buffer per (device, dtype), divided by n,
started asynchronously and waited for when the master is next read. Parle issues it only on outer steps
(every L-th step, Thesis §5.3.1: amortized communication O(2nd/L); twice there with ``variant="authors"``,
whose outer step first averages the replicas' z^a, as the authors' code does), Elastic-SGD on every step, and
both once at construction, for the initial master x_0 = x̄_0.

Process a is replica a: it draws its noise with ``seed + rank``, so a run over n processes gives the same
numbers as :class:`~deeplandscape.optim.parle.Parle` over n replicas in one process (the all_reduce may sum
in another order, so agreement is to rounding: bitwise for n = 2, within 1e-16 for n = 3 in the tests; the
master is bitwise identical on all ranks, since every rank receives the same reduced buffer). Without an
initialized process group, or with one process, these optimizers are exactly the single-process ones with
n = 1 and never communicate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor
from torch._utils import _unflatten_dense_tensors

from ._parle_replicas import LocalMean, ReplicaMean
from .elastic import ElasticSGD
from .parle import Parle

__all__ = ["DistributedElasticSGD", "DistributedParle", "ProcessGroupMean", "replica_mean"]


class ProcessGroupMean:
    """x̄ = (1/n) Σ_ranks x^rank with one ``all_reduce`` per (device, dtype) bucket; counts its collectives."""

    def __init__(self, process_group: Any = None) -> None:
        self.group = process_group
        self.n_replicas = dist.get_world_size(process_group)
        self.first_replica = dist.get_rank(process_group)
        self.collectives = 0
        # one flat buffer per (device, dtype), reused from one average to the next: a fresh parameter-sized
        # allocation costs its page faults at every outer step. Taken out while an average is in flight.
        self._flats: dict[tuple[torch.device, torch.dtype], Tensor] = {}

    def mean_(self, out: list[Tensor], replicas: list[list[Tensor]]) -> Callable[[], None]:
        (xs,) = replicas
        buckets: dict[tuple[torch.device, torch.dtype], list[int]] = {}
        for i, x in enumerate(xs):
            buckets.setdefault((x.device, x.dtype), []).append(i)
        pending = []
        for key, idx in buckets.items():
            numel = sum(xs[i].numel() for i in idx)
            flat = self._flats.pop(key, None)
            if flat is None or flat.numel() != numel:
                flat = torch.empty(numel, device=key[0], dtype=key[1])
            torch.cat([xs[i].reshape(-1) for i in idx], out=flat)  # a copy: xs may change before finish()
            work = dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=self.group, async_op=True)
            self.collectives += 1
            pending.append((key, idx, flat, work))

        def finish() -> None:
            for key, idx, flat, work in pending:
                work.wait()
                flat.div_(self.n_replicas)
                for i, t in zip(idx, _unflatten_dense_tensors(flat, [out[i] for i in idx]), strict=True):
                    out[i].copy_(t)
                self._flats[key] = flat

        return finish


def replica_mean(process_group: Any = None) -> ReplicaMean:
    """:class:`ProcessGroupMean` over ``process_group`` (default: the world) if an initialized process
    group has more than one process, else the single-replica :class:`LocalMean` (no communication)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size(process_group) == 1:
        return LocalMean(1)
    return ProcessGroupMean(process_group)


class DistributedParle(Parle):
    """:class:`~deeplandscape.optim.parle.Parle` with this process's model as replica ``rank``.

    Same arguments as ``Parle`` plus ``process_group`` (default: the world); ``params`` are those of the one
    local replica. Communication: one ``all_reduce`` at construction and one per outer step (every L-th
    ``step()``; two with ``variant="authors"``), counted in ``optimizer.collectives``; it runs in the
    background until the master is next needed, so call :meth:`synchronize` (or read the master) before
    ``destroy_process_group()``. ``state_dict()`` is per rank: save one file per rank.
    """

    def __init__(self, params: Any, lr: float = 0.1, *, process_group: Any = None, **kwargs: Any) -> None:
        super().__init__(params, lr, _averager=replica_mean(process_group), **kwargs)

    @property
    def collectives(self) -> int:
        """Number of ``all_reduce`` calls issued so far (0 without a process group)."""
        return getattr(self._averager, "collectives", 0)


class DistributedElasticSGD(ElasticSGD):
    """:class:`~deeplandscape.optim.elastic.ElasticSGD` with this process's model as replica ``rank``.

    Same arguments as ``ElasticSGD`` plus ``process_group``; one ``all_reduce`` per step (Thesis §5.2.3:
    Elastic-SGD communicates at every weight update), overlapping the next forward/backward pass, and one at
    construction. Call :meth:`synchronize` before ``destroy_process_group()``.
    """

    def __init__(self, params: Any, lr: float = 0.1, *, process_group: Any = None, **kwargs: Any) -> None:
        super().__init__(params, lr, _averager=replica_mean(process_group), **kwargs)

    @property
    def collectives(self) -> int:
        """Number of ``all_reduce`` calls issued so far (0 without a process group)."""
        return getattr(self._averager, "collectives", 0)


#: The names under which :mod:`deeplandscape.optim.registry` lists this module's optimizers.
OPTIMIZERS = {"distributed-parle": DistributedParle, "distributed-elastic-sgd": DistributedElasticSGD}
