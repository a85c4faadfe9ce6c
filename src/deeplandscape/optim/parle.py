"""Parle (Chaudhari et al. 2017; Thesis Ch. 5): replicas running Entropy-SGD, coupled elastically to a master.

Parle minimizes, Thesis eq. (5.3),

    Σ_a f_γ(x^a, Ξ^a) + (1/2ρ) ‖x^a − x‖²,   f_γ = −log(G_γ ∗ e^{−f})   (Local Entropy, eq. (5.2))

over n replicas x^a, each on its data Ξ^a (the full data or a split, Thesis §5.5), and a master x. The
updates are Thesis eq. (5.8), "Entropy-SGD running in an inner loop of Elastic-SGD":

    y^a_{k+1} = y^a_k − η(0) [∇f_b(y^a_k) + (y^a_k − x^a_k)/γ_k]                               (5.8a)
    z^a_{k+1} = α z^a_k + (1 − α) y^a_{k+1}                                                   (5.8b)
    x^a_{k+1} = x^a_k − (η(1)/γ_k)(x^a_k − z^a_{k+1}) − (η(2)/ρ_k)(x^a_k − x_k)   every L-th k  (5.8c)
    x_{k+1}   = x_k − η(3) (n/ρ_k)(x_k − (1/n) Σ_a x^a_k)                         every L-th k  (5.8d)

with y^a and z^a restarted at x^a after each outer step, and the normalized learning rates of §5.3.2:
η(0) = η0 (the initial learning rate), η(1) = η γ_k, η(2) = η, η(3) = ρ_k/n, so that (5.8c) reads
x^a ← x^a − η [(x^a − z^a) + (x^a − x)/ρ_k] and (5.8d) makes the master the average of the replicas.
Scoping, eq. (5.10): γ_k = γ0 (1 − 1/(2B))^⌊k/L⌋, ρ_k = ρ0 (1 − 1/(2B))^⌊k/L⌋, clipped at γ ≥ 1, ρ ≥ 0.1.

Momentum (Thesis Remark 5.3: Nesterov, 0.9, on y^a and x^a, none on the master): in (5.8a) it acts on the
mini-batch gradient only and the proximal pull is added after it, as in Entropy-SGD
(:class:`~deeplandscape.optim.entropy.EntropySGD`); its buffer restarts with each cycle of L steps. In
(5.8c) it acts on the whole direction D^a = (x^a − z^a) + (x^a − x)/ρ_k.

Order of (5.8c)–(5.8d). Read literally, (5.8d) with η(3) = ρ_k/n sets x_{k+1} to the average of the
replicas *before* their update, x̄(x^a_k). The elastic term of the next outer step then pulls each replica
towards where the replicas were one outer step earlier: the common mode e = x̄ − x obeys
e ← −(η/ρ_k)·M(e) (M: Nesterov momentum μ), which diverges once η/ρ_k > (1 + μ)/(1 + 2μ) ≈ 0.68, i.e.
with the paper's own η = 0.1, μ = 0.9 as soon as scoping brings ρ_k below ≈ 0.15 (its clip is 0.1).
We therefore set the master to the average of the *updated* replicas, x_{k+1} = (1/n) Σ_a x^a_{k+1}, as
the authors' reference implementation does (it averages after the replica update); the replica update
(5.8c) still uses x_k. Every degenerate case of Thesis §5.3.1 holds exactly in this order, and with it
the master of n = 1 is the replica itself.

**The authors' code** (``variant="authors"``). The authors' published Parle (github.com/ucla-vision/parle,
``parle_mpi.py`` at commit 454daca, function ``parle_step``, lines 87–171; the training loop calls it L
times with a mini-batch gradient, then once with ``sync=True``) differs from eq. (5.8) in five ways, all
reproduced by this variant:

1. the new replica x^a is taken from the *last inner iterate* y^a, not from x^a (lines 150–158):
   D^a = (x^a − z^a) + (x^a − x̄_z)/ρ_k,  y^a ← y^a − η M(D^a),  x^a ← y^a;
2. the master in D^a is the average of the replicas' running averages, x̄_z = (1/n) Σ_a z^a, formed just
   before (line 143, "add another sync, helps with large L"); the master after the step is the average
   of the new x^a (line 159), so an outer step costs two averages (two ``all_reduce`` when distributed);
3. z^a is never reset and the momentum buffers are never reset (lines 165–169; they start at zero);
4. the couplings *grow* up to caps instead of γ, ρ decaying to floors (lines 119–121): 1/γ_k =
   min((1/γ0)(1 + s)^e, 1/γ_min), 1/ρ_k = min((1/ρ0)(1 + s)^e, 1/ρ_min) with s = 0.5/B and e the script's
   counter ⌊t/L⌋: e = ⌊k/L⌋ at inner step k, and ⌊k/L⌋ + 1 at the outer step that ends the cycle;
5. its momentum is b ← μ b + d with a step along d + b (lines 154–156, 165–167; torch's Nesterov steps
   along d + μ b), on the whole inner direction d = ∇f_b(y) + λy + (y − x^a)/γ_k (line 163), and one
   learning rate η (the current ``lr``) serves both loops; z ← α z + (1 − α) y with α = 0.75 (line 90).

Its defaults otherwise are ours (L = 25, γ0 = 100, γ_min = 1, ρ_min = 0.1, as in the script). Not
reproduced: the script increments its counter t inside the loop over the parameter tensors (line 171), so
its scoping runs P times faster for a network of P parameter tensors; here e counts steps as in Thesis eq.
(5.10). The script sets the initial coupling to 1/ρ0 = 0.01·L·n (line 33) and starts each replica from
its own random initialization (line 38): pass ``rho`` and the initial weights accordingly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from . import _kernels as K
from ._common import closure_loss, use_foreach
from ._parle_data import split_dataset
from ._parle_replicas import (
    ReplicaMean,
    ReplicatedOptimizer,
    check_floor,
    check_positive,
    check_sgd_knobs,
    check_unit,
    resolve_scoping,
    scoped,
    scoped_coupling,
)

__all__ = ["VARIANTS", "Parle", "split_dataset"]

VARIANTS = ("thesis", "authors")
ALPHA = {"thesis": 0.25, "authors": 0.75}  # Thesis §5.3.2; parle_mpi.py line 90


class Parle(ReplicatedOptimizer):
    r"""Parle, Thesis eq. (5.8) with the normalized learning rates and scoping of §5.3.2.

    One ``step()`` per mini-batch gradient: every step is an inner step (5.8a)–(5.8b) of each replica's
    Entropy-SGD, with its own mini-batch gradient; every L-th step also does the outer step

        D^a = (x^a − z^a) + (x^a − x)/ρ_k,   x^a ← x^a − η D^a       (5.8c, Nesterov momentum on D^a)
        x   ← (1/n) Σ_a x^a  (the updated replicas; module docstring)  (5.8d with η(3) = ρ_k/n)

    and restarts y^a, z^a at x^a. The model's parameters hold the inner iterate y^a; the replica's
    reference x^a is ``state[p]["x"]``, the master is :meth:`master_weights` (swap it into the model with
    :meth:`reference_weights`). Only the outer step communicates: once every L steps.

    Args:
        params: the parameters of one replica (n = 1; one replica per process with
            :class:`~deeplandscape.optim.distributed.DistributedParle`), or a list of n parameter iterables,
            one per replica (same structure, same device); each replica gets its own gradient per step.
        lr: η, the learning rate of the outer step (5.8c) (default 0.1, Thesis §5.4); LR schedulers act
            on it, as the paper drops η by 5–10× on plateaus.
        inner_lr: η(0) of the inner step (5.8a); default: the initial ``lr`` (Thesis §5.3.2).
        L: inner steps per outer step (default 25, Thesis §5.3.2).
        gamma: γ0, the initial variance of the Local-Entropy kernel (default 100); ``math.inf`` drops the
            proximal term of (5.8a).
        rho: ρ0, the initial elastic coupling is 1/ρ0 (default 1); ``math.inf`` decouples the replicas.
        scoping: s in γ_k, ρ_k ∝ (1 − s)^⌊k/L⌋; default 0, or 1/(2B) given ``batches_per_epoch=B``.
        batches_per_epoch: B, mini-batches in the global data set (Thesis eq. (5.10): s = 1/(2B)).
        gamma_min, rho_min: the clips γ_k ≥ 1, ρ_k ≥ 0.1 (Thesis §5.3.2).
        alpha: α of the exponential average (5.8b); default 0.25 (Thesis §5.3.2), 0.75 with
            ``variant="authors"`` (the authors' code).
        noise: thermal noise β⁻¹ of the Langevin inner loop, y ← y − η(0) d + √(2 η(0) β⁻¹) ε (Thesis
            Alg. 2 line 4); default 0: Parle adds no external noise (Thesis §5.2.2).
        momentum, nesterov: momentum of the updates of y^a and x^a (default 0.9, Nesterov; Remark 5.3);
            see the module docstring for where it acts.
        weight_decay: λ, added to the mini-batch gradient in (5.8a) (part of f in the paper).
        seed: replica a draws its noise from a generator seeded ``seed + a``.
        foreach: use the ``torch._foreach_*`` kernels (default ``None``: yes).
        variant: ``"thesis"`` (default): eq. (5.8) as above; ``"authors"``: the authors' published code
            (module docstring), which needs ``nesterov=True`` (its own momentum form) and one learning
            rate for both loops (``inner_lr`` unset or equal to ``lr``). All param groups share it.

    Parameters whose ``grad`` is ``None`` skip the inner step; the outer step and the master average
    apply to every parameter, so that all replicas always exchange the same tensors. Sparse gradients
    (``nn.Embedding(sparse=True)``) are supported (single-tensor path for that group). Extra memory per
    replica: x^a, z^a, two momentum buffers; one master per process; one temporary at outer steps.
    """

    def __init__(
        self,
        params: Any,
        lr: float = 0.1,
        *,
        inner_lr: float | None = None,
        L: int = 25,
        gamma: float = 100.0,
        rho: float = 1.0,
        scoping: float | None = None,
        batches_per_epoch: int | None = None,
        gamma_min: float = 1.0,
        rho_min: float = 0.1,
        alpha: float | None = None,
        noise: float = 0.0,
        momentum: float = 0.9,
        nesterov: bool = True,
        weight_decay: float = 0.0,
        seed: int = 0,
        foreach: bool | None = None,
        variant: str = "thesis",
        _averager: ReplicaMean | None = None,
    ) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"Invalid variant: {variant!r} (must be one of {', '.join(VARIANTS)})")
        defaults = dict(
            lr=lr,
            inner_lr=lr if inner_lr is None else inner_lr,
            L=L,
            gamma=gamma,
            rho=rho,
            scoping=resolve_scoping(scoping, batches_per_epoch),
            gamma_min=gamma_min,
            rho_min=rho_min,
            alpha=ALPHA[variant] if alpha is None else alpha,
            noise=noise,
            momentum=momentum,
            nesterov=nesterov,
            weight_decay=weight_decay,
            foreach=foreach,
            variant=variant,
        )
        _check_knobs(defaults)
        super().__init__(
            params,
            defaults,
            seed=seed,
            averager=_averager,
            group_hook=_inner_lr_of_group,
            group_check=_check_knobs,
        )
        variants = sorted({g["variant"] for g in self.param_groups})
        if len(variants) != 1:
            raise ValueError(f"Invalid variant: {variants} (all param groups must share one variant)")

    @property
    def variant(self) -> str:
        """``"thesis"`` (eq. (5.8)) or ``"authors"`` (the authors' code; module docstring)."""
        return self.param_groups[0]["variant"]

    def _required_state(self, p: Tensor, saved: dict[str, Any] | None) -> tuple[str, ...]:
        return ("x", "z", *super()._required_state(p, saved))

    def _init_param_state(self, p: Tensor, state: dict[str, Any]) -> None:
        state["x"] = p.detach().clone(memory_format=torch.preserve_format)
        state["z"] = p.detach().clone(memory_format=torch.preserve_format)

    @property
    def L(self) -> int:
        """Inner steps per outer step (shared by all param groups)."""
        return self.param_groups[0]["L"]

    def gamma_at(self, k: int | None = None, group: int = 0) -> float:
        """γ_k of a param group at (inner) step k (default: the next step): max(γ0 (1 − s)^⌊k/L⌋, γ_min);
        with ``variant="authors"`` 1/min((1/γ0)(1 + s)^⌊k/L⌋, 1/γ_min)."""
        g = self.param_groups[group]
        k = self._step_count if k is None else k
        return _schedule(g, "gamma", k // g["L"])

    def rho_at(self, k: int | None = None, group: int = 0) -> float:
        """ρ_k of a param group at the outer step that would end step k (default: the next step):
        max(ρ0 (1 − s)^⌊k/L⌋, ρ_min); with ``variant="authors"`` 1/min((1/ρ0)(1 + s)^e, 1/ρ_min) with
        e = ⌊k/L⌋ + 1, the script's counter after the cycle's L inner steps."""
        g = self.param_groups[group]
        k = self._step_count if k is None else k
        return _schedule(g, "rho", _outer_exponent(g, k))

    def is_outer_step(self, k: int | None = None) -> bool:
        """Whether step k (default: the next one, 0-based) ends with the outer step and communication."""
        k = self._step_count if k is None else k
        return (k + 1) % self.L == 0

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One inner step (5.8a)–(5.8b) of every replica; every L-th call also (5.8c)–(5.8d)."""
        self._refuse_inside_reference()
        loss = closure_loss(closure)
        k = self._step_count
        work = self._replica_grads()

        authors = self.variant == "authors"
        for a, _, group, ps, gs in work:
            (self._authors_inner_step if authors else self._inner_step)(a, group, ps, gs, k)
        if self.is_outer_step(k):
            (self._authors_outer_step if authors else self._outer_step)(k)
        self._step_count += 1
        return loss

    def _inner_step(self, a: int, group: dict[str, Any], ps: list[Tensor], gs: list[Tensor], k: int) -> None:
        """(5.8a)–(5.8b): y ← y − η(0) [M(g + λy) + (y − x^a)/γ_k] + √(2η(0)β⁻¹) ε, z ← αz + (1 − α)y."""
        if not ps:
            return
        foreach = use_foreach(group["foreach"], ps, gs)
        states = [self.state[p] for p in ps]
        gamma = _schedule(group, "gamma", k // group["L"])
        K.coupled_sgd_step_(
            ps,
            gs,
            [st["x"] for st in states],
            states,
            "inner_momentum",
            lr=group["inner_lr"],
            c=0.0 if math.isinf(gamma) else 1.0 / gamma,
            weight_decay=group["weight_decay"],
            momentum=group["momentum"],
            nesterov=group["nesterov"],
            foreach=foreach,
        )
        if group["noise"] > 0:
            std = math.sqrt(2.0 * group["inner_lr"] * group["noise"])
            K.add_noise_(ps, std, self._generator(a), foreach)
        K.lerp_([st["z"] for st in states], ps, 1.0 - group["alpha"], foreach)

    def _outer_step(self, k: int) -> None:
        """(5.8c)–(5.8d) with η(1) = ηγ_k, η(2) = η, η(3) = ρ_k/n; then y^a, z^a ← x^a, inner momentum ← 0."""
        self._sync_master()
        masters_of_group = [[self.state[p]["master"] for p in g["params"]] for g in self._replica_groups[0]]
        for a in range(self._n_local):
            for j, group in enumerate(self._replica_groups[a]):
                ps = group["params"]
                foreach = group["foreach"] is not False
                states = [self.state[p] for p in ps]
                xs, zs = [st["x"] for st in states], [st["z"] for st in states]
                rho = scoped(group["rho"], group["scoping"], k // group["L"], group["rho_min"])
                ds = K.outer_direction(xs, zs, masters_of_group[j], rho, foreach)
                ds = K.momentum_direction(
                    ds, states, "outer_momentum", group["momentum"], group["nesterov"], foreach
                )
                K.add_(xs, ds, -group["lr"], foreach)
                K.copy_(ps, xs, foreach)
                K.copy_(zs, xs, foreach)
                bufs = [st["inner_momentum"] for st in states if "inner_momentum" in st]
                if bufs:  # the next Langevin chain starts at rest, as Entropy-SGD's (Alg. 2 line 1)
                    for b in bufs:
                        b.zero_()
        # (5.8d) with η(3) = ρ_k/n: the master is the average of the replicas just updated (module doc);
        # distributed, the all_reduce runs while the next L − 1 steps compute
        self._start_master_average(
            [[self.state[p]["x"] for p in self.replica_params(a)] for a in range(self._n_local)]
        )

    def _authors_inner_step(
        self, a: int, group: dict[str, Any], ps: list[Tensor], gs: list[Tensor], k: int
    ) -> None:
        """parle_mpi.py lines 162–169: d = g + λy + (y − x^a)/γ_k, b ← μb + d, y ← y − η (d + b) (+ noise),
        z ← αz + (1 − α)y; nothing is reset (module docstring)."""
        if not ps:
            return
        foreach = use_foreach(group["foreach"], ps, gs)
        states = [self.state[p] for p in ps]
        gamma = _schedule(group, "gamma", k // group["L"])
        ds = _inner_direction(ps, gs, [st["x"] for st in states], gamma, group["weight_decay"], foreach)
        _authors_momentum_step(ps, ds, states, "inner_momentum", group, foreach)
        if group["noise"] > 0:
            std = math.sqrt(2.0 * group["lr"] * group["noise"])
            K.add_noise_(ps, std, self._generator(a), foreach)
        K.lerp_([st["z"] for st in states], ps, 1.0 - group["alpha"], foreach)

    def _authors_outer_step(self, k: int) -> None:
        """parle_mpi.py lines 141–159: x̄_z ← (1/n) Σ_a z^a; D^a = (x^a − z^a) + (x^a − x̄_z)/ρ_k, b ← μb + D^a,
        y^a ← y^a − η (D^a + b), x^a ← y^a; then the master ← (1/n) Σ_a x^a. z^a is kept."""
        local = range(self._n_local)
        self._start_master_average([[self.state[p]["z"] for p in self.replica_params(a)] for a in local])
        self._sync_master()  # read at once (line 143 is blocking)
        masters_of_group = [[self.state[p]["master"] for p in g["params"]] for g in self._replica_groups[0]]
        for a in local:
            for j, group in enumerate(self._replica_groups[a]):
                ps = group["params"]
                foreach = group["foreach"] is not False
                states = [self.state[p] for p in ps]
                xs = [st["x"] for st in states]
                rho = _schedule(group, "rho", _outer_exponent(group, k))
                ds = K.outer_direction(xs, [st["z"] for st in states], masters_of_group[j], rho, foreach)
                _authors_momentum_step(ps, ds, states, "outer_momentum", group, foreach)
                K.copy_(xs, ps, foreach)
        self._start_master_average([[self.state[p]["x"] for p in self.replica_params(a)] for a in local])


def _schedule(group: dict[str, Any], name: str, exponent: int) -> float:
    """γ_k or ρ_k (``name``) of a param group after ``exponent`` scoping steps, as its variant scopes."""
    scope = scoped_coupling if group["variant"] == "authors" else scoped
    return scope(group[name], group["scoping"], exponent, group[f"{name}_min"])


def _outer_exponent(group: dict[str, Any], k: int) -> int:
    """The scoping exponent of the outer step ending step k: ⌊k/L⌋, or the authors' counter ⌊k/L⌋ + 1."""
    return k // group["L"] + (group["variant"] == "authors")


def _inner_direction(
    ps: list[Tensor], gs: list[Tensor], xs: list[Tensor], gamma: float, weight_decay: float, foreach: bool
) -> list[Tensor]:
    """d = g + λy + (y − x^a)/γ in new tensors (a sparse g made dense: the pull touches every entry)."""
    gs = [g.to_dense() if g.is_sparse else g for g in gs]
    c = 0.0 if math.isinf(gamma) else 1.0 / gamma
    if foreach:
        ds = list(torch._foreach_add(gs, ps, alpha=weight_decay)) if weight_decay else [g.clone() for g in gs]
        if c:
            torch._foreach_add_(ds, torch._foreach_sub(ps, xs), alpha=c)
        return ds
    ds = [g.add(p, alpha=weight_decay) if weight_decay else g.clone() for g, p in zip(gs, ps, strict=True)]
    if c:
        for d, p, x in zip(ds, ps, xs, strict=True):
            d.add_(p.sub(x), alpha=c)
    return ds


def _authors_momentum_step(
    ps: list[Tensor], ds: list[Tensor], states: list[dict[str, Any]], key: str, group: dict[str, Any],
    foreach: bool,
) -> None:  # fmt: skip
    """The authors' momentum: b ← μb + d (b = d at first, as from a zero buffer), p ← p − η (d + b), η the
    group's current ``lr``; ``ds`` is overwritten."""
    bufs = K.momentum_direction(ds, states, key, group["momentum"], False, foreach)
    if foreach:
        torch._foreach_add_(ds, bufs)
    else:
        for d, b in zip(ds, bufs, strict=True):
            d.add_(b)
    K.add_(ps, ds, -group["lr"], foreach)


def _inner_lr_of_group(group: dict[str, Any]) -> None:
    """η(0) is the group's initial η (Thesis §5.3.2) when a param group sets ``lr`` but not ``inner_lr``."""
    if "lr" in group and "inner_lr" not in group:
        group["inner_lr"] = group["lr"]


def _check_variant(g: dict[str, Any]) -> None:
    """The variant, and what ``variant="authors"`` needs: its own momentum form, one learning rate."""
    if g["variant"] not in VARIANTS:
        raise ValueError(f"Invalid variant: {g['variant']!r} (must be one of {', '.join(VARIANTS)})")
    if g["variant"] == "authors":
        if not g["nesterov"]:
            raise ValueError(
                f"Invalid nesterov: {g['nesterov']} (variant='authors' has the authors' own momentum form; "
                "it needs nesterov=True and momentum > 0)"
            )
        if g["inner_lr"] != g["lr"]:
            raise ValueError(
                f"Invalid inner_lr: {g['inner_lr']} (variant='authors' uses one learning rate for both "
                f"loops: leave inner_lr unset or equal to lr = {g['lr']})"
            )


def _check_knobs(g: dict[str, Any]) -> None:
    """``ValueError("Invalid <name>: <value> (…)")`` for a bad knob of a param group (or the defaults)."""
    _check_variant(g)
    check_positive("lr", g["lr"], allow_zero=True)
    check_positive("inner_lr", g["inner_lr"], allow_zero=True)
    L = g["L"]
    if isinstance(L, bool) or not isinstance(L, int) or L < 1:
        raise ValueError(f"Invalid L: {L} (must be an integer ≥ 1)")
    check_positive("gamma", g["gamma"], allow_inf=True)
    check_positive("rho", g["rho"], allow_inf=True)
    check_unit("scoping", g["scoping"])
    check_positive("gamma_min", g["gamma_min"], allow_zero=True)
    check_positive("rho_min", g["rho_min"], allow_zero=True)
    check_floor(g, "gamma")
    check_floor(g, "rho")
    check_unit("alpha", g["alpha"])
    check_positive("noise", g["noise"], allow_zero=True)
    check_sgd_knobs(g)


#: The names under which :mod:`deeplandscape.optim.registry` lists this module's optimizers.
OPTIMIZERS = {"parle": Parle}
