"""Machinery shared by the optimizers that train n coupled replicas and one master (Elastic-SGD, Parle).

Thesis eq. (5.1)/(5.3): replicas x^1, …, x^n, each on its own data Ξ^a, are coupled to a master x through
the elastic term (1/2ρ)‖x^a − x‖². The master's update, Thesis eq. (5.4b)/(5.8d), needs only the average

    x̄ = (1/n) Σ_a x^a

of the replicas. Where the replicas live is the only thing that differs between the two ways of running:

- one process holding all n replicas (``params`` is a list of n parameter lists): :class:`LocalMean`;
- one replica per process over ``torch.distributed``: a single ``all_reduce`` of the replica weights
  (:class:`deeplandscape.optim.distributed.ProcessGroupMean`).

The base class below keeps everything else in one place: splitting the parameter argument into replicas,
the master weights, the global step counter, the per-replica random generators, the complete
``state_dict`` and the context manager that swaps the master into a model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

import torch
from torch import Tensor

from ._common import CopyableOptimizer, check_state_dict, first_non_finite

__all__ = ["LocalMean", "ReplicaMean"]


class ReplicaMean(Protocol):
    """How the average over all replicas x̄ = (1/n) Σ_a x^a is formed."""

    n_replicas: int  # n, over all processes
    first_replica: int  # global index of this process's first replica

    def mean_(self, out: list[Tensor], replicas: list[list[Tensor]]) -> Callable[[], None]:
        """Start writing (1/n) Σ_a replicas[a][i] into out[i] for every slot i (``replicas``: the local ones).

        Returns a function that completes the write; ``replicas`` may be modified once ``mean_`` returns.
        """
        ...


def _done() -> None:
    return None


class LocalMean:
    """x̄ over the n replicas held in this process, summed in replica order a = 0, 1, …, n − 1."""

    def __init__(self, n_replicas: int) -> None:
        self.n_replicas = n_replicas
        self.first_replica = 0

    def mean_(self, out: list[Tensor], replicas: list[list[Tensor]]) -> Callable[[], None]:
        for o, *xs in zip(out, *replicas, strict=True):
            o.copy_(xs[0])
            for x in xs[1:]:
                o.add_(x)
            if len(xs) > 1:
                o.div_(len(xs))
        return _done


def _split_replicas(params: Any) -> list[list[Any]]:
    """``params`` of one replica (tensors or param-group dicts), or a list of n such iterables."""
    if isinstance(params, Tensor):
        raise TypeError(
            "params argument given to the optimizer should be an iterable of Tensors or dicts, "
            f"but got {torch.typename(params)}"
        )
    items = list(params)
    if not items:
        raise ValueError("Invalid params: empty parameter list")
    single = [isinstance(i, (Tensor, dict)) for i in items]
    if all(single):
        return [items]
    if any(single):
        raise ValueError(
            "Invalid params: mixes tensors/param groups with nested iterables; give either the parameters "
            "of one replica or a list with one parameter iterable per replica"
        )
    replicas = []
    for r in items:
        if isinstance(r, Tensor):
            raise ValueError("Invalid params: a replica must be an iterable of tensors or param groups")
        rl = list(r)
        if not rl:
            raise ValueError("Invalid params: a replica has an empty parameter list")
        replicas.append(rl)
    return replicas


def _as_groups(replica: list[Any]) -> list[dict[str, Any]]:
    if all(isinstance(i, Tensor) for i in replica):
        return [{"params": replica}]
    if all(isinstance(i, dict) for i in replica):
        return [dict(g) for g in replica]
    raise ValueError("Invalid params: a replica mixes tensors and param-group dicts")


def check_positive(name: str, value: float, *, allow_inf: bool = False, allow_zero: bool = False) -> None:
    """Raise ``ValueError("Invalid <name>: <value> …")`` unless value > 0 (≥ 0, or ∞, where allowed)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)
    ok = ok and (value >= 0 if allow_zero else value > 0) and (allow_inf or not math.isinf(value))
    if not ok:
        rng = ("[0, " if allow_zero else "(0, ") + ("∞]" if allow_inf else "∞)")
        raise ValueError(f"Invalid {name}: {value} (allowed range {rng})")


def check_unit(name: str, value: float, *, closed_right: bool = False) -> None:
    """Raise ``ValueError`` unless 0 ≤ value < 1 (≤ 1 with ``closed_right``)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)
    ok = ok and value >= 0 and (value <= 1 if closed_right else value < 1)
    if not ok:
        raise ValueError(f"Invalid {name}: {value} (allowed range [0, 1{']' if closed_right else ')'})")


def check_floor(g: dict[str, Any], name: str) -> None:
    """Raise ``ValueError`` unless the clip ``g[name + "_min"]`` is at most ``g[name]`` (Thesis §5.3.2)."""
    floor = f"{name}_min"
    if g[floor] > g[name]:
        raise ValueError(f"Invalid {floor}: {g[floor]} (must be ≤ {name} = {g[name]}; nothing is clipped)")


def check_sgd_knobs(g: dict[str, Any]) -> None:
    """Raise ``ValueError`` for a bad ``momentum``, ``nesterov`` or ``weight_decay`` of a param group."""
    check_unit("momentum", g["momentum"])
    if g["nesterov"] not in (False, True):
        raise ValueError(f"Invalid nesterov: {g['nesterov']!r} (must be True or False)")
    if g["nesterov"] and g["momentum"] == 0:
        raise ValueError(f"Invalid nesterov: {g['nesterov']} (Nesterov momentum requires momentum > 0)")
    check_positive("weight_decay", g["weight_decay"], allow_zero=True)
    if g.get("foreach") not in (None, False, True):
        raise ValueError(f"Invalid foreach: {g['foreach']!r} (must be one of None, False, True)")


def resolve_scoping(scoping: float | None, batches_per_epoch: int | None) -> float:
    """The per-outer-step decay s of γ_k, ρ_k ∝ (1 − s)^k; Thesis eq. (5.10) takes s = 1/(2B)."""
    if batches_per_epoch is not None:
        if (
            isinstance(batches_per_epoch, bool)
            or not isinstance(batches_per_epoch, int)
            or batches_per_epoch < 1
        ):
            raise ValueError(f"Invalid batches_per_epoch: {batches_per_epoch} (must be an integer ≥ 1)")
        if scoping is not None:
            raise ValueError(
                f"Invalid scoping: {scoping} (give either scoping or batches_per_epoch, which sets "
                f"scoping = 1/(2B) = {1 / (2 * batches_per_epoch)})"
            )
        return 1.0 / (2 * batches_per_epoch)
    scoping = 0.0 if scoping is None else scoping
    check_unit("scoping", scoping)
    return float(scoping)


def scoped(value0: float, scoping: float, k: int, floor: float) -> float:
    """value_k = max(value0 (1 − scoping)^k, floor): exponential scoping clipped below (Thesis eq. (5.10))."""
    if math.isinf(value0):
        return value0
    return max(value0 * (1.0 - scoping) ** k, floor)


def scoped_coupling(value0: float, scoping: float, k: int, floor: float) -> float:
    """value_k = 1/min((1/value0)(1 + scoping)^k, 1/floor): the coupling 1/value grows up to a cap, as the
    authors' Parle code scopes γ and ρ (``parle_mpi.py`` lines 119–121; :mod:`deeplandscape.optim.parle`)."""
    if math.isinf(value0):
        return value0
    coupling = (1.0 / value0) * (1.0 + scoping) ** k
    return 1.0 / coupling if floor == 0 else 1.0 / min(coupling, 1.0 / floor)


class ReplicatedOptimizer(CopyableOptimizer):
    """Base of :class:`ElasticSGD` and :class:`Parle`: n replicas, one master, a global step counter.

    ``params`` holds the parameters of one replica (as for any ``torch.optim`` optimizer) or a list of n
    such iterables, one per replica; all replicas must have the same structure (groups, shapes, dtypes) and,
    in one process, the same device. Param groups are stored replica after replica, each with the key
    ``"replica"``. The master weights live in the state of replica 0's parameters under ``"master"``.

    ``copy.deepcopy`` and ``pickle`` complete a master average in flight and keep everything (generators,
    step counter); an optimizer that communicates over a process group cannot be copied (``TypeError``):
    save ``state_dict()`` per rank instead.
    """

    def __init__(
        self,
        params: Any,
        defaults: dict[str, Any],
        *,
        seed: int,
        averager: ReplicaMean | None,
        group_hook: Callable[[dict[str, Any]], None] | None = None,
        group_check: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"Invalid seed: {seed} (must be an integer ≥ 0)")
        replicas = [_as_groups(r) for r in _split_replicas(params)]
        groups: list[dict[str, Any]] = []
        for a, rg in enumerate(replicas):
            for g in rg:
                if "replica" in g:
                    raise ValueError("Invalid params: the param-group key 'replica' is reserved")
                g = dict(g, replica=a)
                if group_hook is not None:
                    group_hook(g)
                g["params"] = list(g["params"]) if not isinstance(g["params"], Tensor) else [g["params"]]
                groups.append(g)
        if averager is None:
            averager = LocalMean(len(replicas))
        elif len(replicas) != 1:
            raise ValueError(
                f"Invalid params: {len(replicas)} replicas given to a distributed optimizer "
                "(one replica per process)"
            )
        self._averager = averager
        self._knobs = tuple(defaults)
        self._seed = seed
        self._step_count = 0
        self._in_reference = False
        self._pending_master: Callable[[], None] | None = None
        self._constructed = False
        super().__init__(groups, defaults)
        self._constructed = True
        self._n_local = len(replicas)
        self._replica_groups = [
            [g for g in self.param_groups if g["replica"] == a] for a in range(len(replicas))
        ]
        if group_check is not None:
            for g in self.param_groups:
                group_check(g)
        self._check_structure()
        self._generators: list[torch.Generator | None] = [None] * self._n_local
        self._gen_states: list[Tensor | None] = [None] * self._n_local
        self._init_state()

    def _prepare_copy(self) -> None:
        if not isinstance(self._averager, LocalMean):
            raise TypeError(
                f"{type(self).__name__} communicates over a torch.distributed process group and cannot be "
                "copied or pickled; save its state_dict() on every rank instead"
            )
        self._sync_master()

    # ----------------------------------------------------------------------------------------------------
    # structure

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if getattr(self, "_constructed", False):
            raise RuntimeError(
                f"{type(self).__name__} fixes its replicas at construction; add_param_group is not supported"
            )
        super().add_param_group(param_group)

    def _check_structure(self) -> None:
        ref = self._replica_groups[0]
        for a, rg in enumerate(self._replica_groups[1:], start=1):
            if len(rg) != len(ref):
                raise ValueError(
                    f"Invalid params: replica {a} has {len(rg)} param groups, replica 0 {len(ref)}"
                )
            for j, (g, g0) in enumerate(zip(rg, ref, strict=True)):
                if len(g["params"]) != len(g0["params"]):
                    raise ValueError(
                        f"Invalid params: group {j} of replica {a} differs in length from replica 0"
                    )
                for p, p0 in zip(g["params"], g0["params"], strict=True):
                    if p.shape != p0.shape or p.dtype != p0.dtype or p.device != p0.device:
                        raise ValueError(
                            f"Invalid params: replica {a} group {j} has a tensor {tuple(p.shape)} {p.dtype} "
                            f"{p.device} where replica 0 has {tuple(p0.shape)} {p0.dtype} {p0.device}"
                        )
        Ls = {g.get("L", 1) for g in self.param_groups}
        if len(Ls) != 1:
            raise ValueError(f"Invalid L: {sorted(Ls)} (all param groups must share one L)")

    @property
    def n_replicas(self) -> int:
        """n, the number of replicas over all processes."""
        return self._averager.n_replicas

    @property
    def steps(self) -> int:
        """Number of ``step()`` calls so far (k in Thesis eq. (5.8), one per mini-batch gradient)."""
        return self._step_count

    def replica_params(self, replica: int = 0) -> list[Tensor]:
        """The parameters of local replica ``replica``, in param-group order."""
        return [p for g in self._replica_groups[replica] for p in g["params"]]

    def _all_replica_params(self) -> list[list[Tensor]]:
        return [self.replica_params(a) for a in range(self._n_local)]

    def master_weights(self) -> list[Tensor]:
        """The master x (Thesis eq. (5.4b)/(5.8d)), one tensor per parameter of a replica (live state)."""
        self._sync_master()
        return [self.state[p]["master"] for p in self.replica_params(0)]

    def _start_master_average(self, replicas: list[list[Tensor]]) -> None:
        """Begin x ← (1/n) Σ_a x^a, written into the master's own tensors (call it once x is no longer read).

        It completes when the master is next needed (:meth:`_sync_master`): in distributed runs the
        ``all_reduce`` thus overlaps the computation up to then (the next outer step for Parle, the next
        step for Elastic-SGD), with the same values as if it had been waited for at once (``replicas`` are
        copied when the collective starts).
        """
        self._sync_master()
        self._pending_master = self._averager.mean_(self.master_weights(), replicas)

    def _sync_master(self) -> None:
        """Wait for a master average started by :meth:`_start_master_average` to complete."""
        pending, self._pending_master = self._pending_master, None
        if pending is not None:
            pending()

    def synchronize(self) -> None:
        """Complete the master average in flight, if any (distributed runs overlap it with computation).

        :meth:`master_weights`, :meth:`reference_weights` and :meth:`state_dict` do it themselves; call it
        before ``torch.distributed.destroy_process_group()`` if training may have ended on a communication
        step and the master was not read since.
        """
        self._sync_master()

    # ----------------------------------------------------------------------------------------------------
    # state

    def _init_state(self) -> None:
        """Per-parameter buffers and the master x_0 = (1/n) Σ_a x^a_0, the average of the initial replicas."""
        with torch.no_grad():
            for params in self._all_replica_params():
                for p in params:
                    self._init_param_state(p, self.state[p])
            masters = [
                torch.empty_like(p, memory_format=torch.preserve_format) for p in self.replica_params(0)
            ]
            self._averager.mean_(masters, self._all_replica_params())()
            for p, m in zip(self.replica_params(0), masters, strict=True):
                self.state[p]["master"] = m

    def _init_param_state(self, p: Tensor, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def _generator(self, replica: int) -> torch.Generator:
        """The noise generator of a local replica, seeded ``seed + global replica index``."""
        gen = self._generators[replica]
        if gen is None:
            device = self.replica_params(replica)[0].device
            gen = torch.Generator(device=device)
            gen.manual_seed(self._seed + self._averager.first_replica + replica)
            if self._gen_states[replica] is not None:
                gen.set_state(self._gen_states[replica])
            self._generators[replica] = gen
        return gen

    def state_dict(self) -> dict[str, Any]:
        """``torch.optim`` state plus ``"replicas"``: step counter, seed, generator states.

        Loads with ``torch.load(weights_only=True)``; per process in distributed training (each rank saves
        its own replica, its copy of the master and its generator).
        """
        self._sync_master()
        sd = super().state_dict()
        rng = []
        for a in range(self._n_local):
            gen = self._generators[a]
            state = gen.get_state() if gen is not None else self._gen_states[a]
            rng.append(state.clone() if state is not None else None)
        sd["replicas"] = {
            "step": self._step_count,
            "seed": self._seed,
            "n_replicas": self.n_replicas,
            "first_replica": self._averager.first_replica,
            "rng": rng,
        }
        return sd

    def _required_state(self, p: Tensor, saved: dict[str, Any] | None) -> tuple[str, ...]:
        """Keys every parameter's saved state holds: the master on replica 0's (subclasses add theirs)."""
        return ("master",) if any(p is q for q in self.replica_params(0)) else ()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state written by :meth:`state_dict`; one saved by another optimizer, for another layout of
        parameters or of replicas is refused before anything is loaded."""
        check_state_dict(
            self, state_dict, knobs=self._knobs, top=("replicas",), required=self._required_state
        )
        state_dict = dict(state_dict)
        extra = state_dict.pop("replicas")
        if extra["n_replicas"] != self.n_replicas or extra["first_replica"] != self._averager.first_replica:
            raise ValueError(
                f"Invalid state_dict: saved for n_replicas={extra['n_replicas']} "
                f"(first {extra['first_replica']}), this optimizer has n_replicas={self.n_replicas} "
                f"(first {self._averager.first_replica})"
            )
        self._sync_master()
        super().load_state_dict(state_dict)
        self._step_count = int(extra["step"])
        self._seed = int(extra["seed"])
        self._generators = [None] * self._n_local
        self._gen_states = [s.clone() if s is not None else None for s in extra["rng"]]

    # ----------------------------------------------------------------------------------------------------
    # helpers for step()

    @staticmethod
    def check_finite(grads: Sequence[Tensor], params: Sequence[Tensor], what: str, where: str) -> None:
        """Raise ``FloatingPointError`` naming the first parameter whose ``what`` holds NaN/Inf.

        Screened with the 2-norms (one fast vectorized pass; NaN/Inf propagate into them), confirmed entry
        by entry only when a norm is not finite, so that a finite tensor whose squares overflow passes.
        """
        i = first_non_finite(grads)
        if i is not None:
            raise FloatingPointError(
                f"{what} of parameter {i} (shape {tuple(params[i].shape)}) in {where} contains NaN or Inf; "
                "the optimizer state was left unchanged"
            )

    def _refuse_inside_reference(self) -> None:
        if self._in_reference:
            raise RuntimeError("step() called inside reference_weights(); leave the block first")

    def _replica_grads(self) -> list[tuple[int, int, dict[str, Any], list[Tensor], list[Tensor]]]:
        """(a, j, group, params with a gradient, their gradients) for group j of every local replica a.

        Every gradient is checked (finite; a sparse one over its stored values) before any is returned, so
        that a step that raises leaves the optimizer state as it was.
        """
        work = []
        for a in range(self._n_local):
            for j, group in enumerate(self._replica_groups[a]):
                ps = [p for p in group["params"] if p.grad is not None]
                gs = [p.grad for p in ps]
                self.check_finite(gs, ps, "gradient", f"param group {j} of replica {a}")
                work.append((a, j, group, ps, gs))
        return work

    @contextmanager
    def reference_weights(self, replica: int = 0) -> Iterator[None]:
        """Put the master x into the parameters of local replica ``replica``; restore them on exit.

        Use it to evaluate or save the master: ``with opt.reference_weights(): evaluate(model)``. Only
        parameters are swapped: buffers such as BatchNorm running statistics stay those accumulated by the
        replica at its own iterates; recompute them for the master inside the block with
        :func:`deeplandscape.optim.batchnorm.recompute_batchnorm` if the model has BatchNorm layers. With
        the default normalized master update it is the average of the replicas after the last outer
        update. ``step()`` inside the block raises ``RuntimeError``.
        """
        if not 0 <= replica < self._n_local:
            raise ValueError(f"Invalid replica: {replica} (allowed range [0, {self._n_local - 1}])")
        params = self.replica_params(replica)
        with torch.no_grad():
            saved = [p.detach().clone() for p in params]
            for p, m in zip(params, self.master_weights(), strict=True):
                p.copy_(m)
        self._in_reference = True
        try:
            yield
        finally:
            self._in_reference = False
            with torch.no_grad():
                for p, s in zip(params, saved, strict=True):
                    p.copy_(s)
