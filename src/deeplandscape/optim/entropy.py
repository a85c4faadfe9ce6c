"""Entropy-SGD and Entropy-Adam: descent on Local Entropy (Thesis Ch. 3, Alg. 2; §3.2.2–3.2.3, §4.6.1.1).

Alg. 2 with one ``step()`` per mini-batch gradient. With x the reference weights, y the inner iterate (held
by the model's parameters), z the running average and γ_t = γ0(1 − γ1)^t the scope after t outer updates:

    at the start of a cycle:  y = x,  z ← x,  inner momentum ← 0                         (Alg. 2 line 1)
    each step (ℓ = 1..L):     y ← y − η[M(∇f_b(y) + λy) + γ_t^{-1}(y − x)] + √(2η β^{-1}) ε   (lines 3–4)
                              z ← αz + (1 − α) y,   ε ∼ N(0, I)                          (line 5)
    after the L-th step:      x ← x − η′·M′(x − z);  y ← x                        (line 6, scaled, §3.2.3)

M is (Nesterov) momentum on the inner loop; it acts on the gradient of f only (the coupling and the noise
are added after it, so the proximal pull is not accumulated by the buffer) and its buffer restarts with
each cycle; without momentum the inner step is exactly lines 3–4. M′, the momentum of the outer update, is
off by default: this is how the authors' code for the experiments of Thesis §3.3 runs (see
:class:`EntropySGD` for the sources of every default). λ is the weight decay, taken as part of f (an L2
term of the loss), so it enters the inner loop only. The outer update is the scaled form
x ← x − η′(x − z) of §3.2.3 (the unscaled Alg. 2 line 6 is η′ = η/γ); with η′ = 1 and no M′ it is x ← z.
For Entropy-Adam (§3.3.5) the outer direction x − z is handed to Adam instead: "Adam with the Local
Entropy gradient".

Degenerate case (exact): L = 1, γ = ∞, α = 0, η′ = 1, β^{-1} = 0 and no momentum give SGD with lr = η.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from . import _kernels as K
from ._common import check, closure_loss, collect_grads, use_foreach
from ._relaxation import RelaxationOptimizer, zeros_buffer


class EntropySGD(RelaxationOptimizer):
    """Entropy-SGD (Thesis Alg. 2, §3.2.2–3.2.3, §4.6.1.1); one ``step()`` per mini-batch gradient.

    The defaults are the authors' own working settings for MNIST: the Thesis's §3.3.2 and the code the
    authors published for those experiments (github.com/ucla-vision/entropy-sgd: ``entropyoptim.lua``, the
    optimizer, and ``train.lua``, its settings, run as its README says with ``-L 20 --gamma 1e-4
    --scoping 1e-3 --noise 1e-4``). Where the two differ the code is followed and the Thesis's value named.

    Args:
        params: parameters or param groups.
        lr: η′ of the scaled outer update x ← x − η′(x − z). Default 1: §3.2.3 ("we can further set η′ = 1",
            i.e. x ← z), §3.3.2 and ``train.lua`` (η′ = 1 for the first two epochs of MNIST). The authors drop
            it by 10× after epoch 2 (§3.3.2; ``train.lua``: 1, 0.1, 0.01 for LeNet); §4.6.1.1 uses 0.1 dropped
            by 5× every 3 epochs. Use an LR scheduler (README).
        inner_lr: η of the Langevin loop (default 0.1: §3.3.2, §4.6.1.1; ``lclr`` in the code).
        L: Langevin steps per outer update (default 20: §3.3.2, §4.6.1.1).
        gamma: initial scope γ0 > 0, may be ``inf`` (no coupling) (default 1e4: §3.3.2; the code's coupling
            ``--gamma 1e-4`` is 1/γ0).
        scoping: γ1 ∈ [0, 1) in γ_t = γ0(1 − γ1)^t, t = outer updates (default 1e-3: §3.3.2, "decreases by a
            factor of 1 + 10^{-3} after each parameter update"; the code's ``--scoping 1e-3``).
        alpha: α of the average z ← αz + (1 − α)y (default 0.75, the code: ``lmx:mul(beta1):add(1-beta1,
            lx)`` with ``beta1 = 0.75``; the Thesis's text, §3.2.2 and §4.6.1.1, writes α = 0.25).
        noise: thermal noise β^{-1} ≥ 0 (default 1e-8: the code adds ``noise``·√(2η)·ε with ``--noise 1e-4``,
            i.e. β^{-1} = 1e-8, as §4.6.1.1 and §3.3.3 state; §3.3.2 writes 1e-6).
        momentum, nesterov: momentum M of the inner loop, restarted each cycle (default 0.9 with Nesterov:
            ``train.lua``'s ``momentum = 0.9, nesterov = true``, applied by ``entropyoptim.lua`` in the
            Langevin loop, whose buffer is zeroed at every call).
        weight_decay: λ, an L2 term of the loss, applied in the inner loop (default 0).
        outer_momentum, outer_nesterov: momentum M′ of the outer update (default 0, none: in
            ``entropyoptim.lua`` the outer step is x ← x − η′(x − ⟨x′⟩), the momentum-filtered gradient being
            discarded when L > 0; the Thesis's text, §3.2.2 and §3.3.2, says Nesterov's momentum was used in
            both loops). The authors' later PyTorch port (``python/optim.py``) does apply Nesterov momentum
            0.9 to the outer step, with η′ = 0.1 (``python/train.py``): ``lr=0.1, outer_momentum=0.9,
            outer_nesterov=True`` reproduces it. With η′ = 1, outer momentum 0.9 overshoots: x moves by about
            1.9(x − z).
        seed: seed of the thermal noise (``None``: drawn from torch's global generator).
        foreach: use ``torch._foreach_*`` kernels (``None``: yes unless a gradient is sparse).

    State per parameter: ``reference`` (x), ``average`` (z; none when α = 0, where z is the last inner
    iterate y, which the parameter holds; after the L-th step of a cycle it holds that outer update's
    direction x − z until the next cycle starts it from x), ``inner_momentum`` (when momentum > 0),
    ``outer_momentum`` (when outer_momentum > 0). A parameter whose ``grad`` is ``None`` gets no inner move
    at that step (its clock is its group's); a parameter that never had a gradient holds no state and is
    never moved. Sparse gradients (``nn.Embedding(sparse=True)``) are supported (single-tensor path).
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1.0,
        inner_lr: float = 0.1,
        L: int = 20,
        gamma: float = 1e4,
        scoping: float = 1e-3,
        alpha: float = 0.75,
        noise: float = 1e-8,
        momentum: float = 0.9,
        nesterov: bool = True,
        weight_decay: float = 0.0,
        outer_momentum: float = 0.0,
        outer_nesterov: bool = False,
        *,
        seed: int | None = None,
        foreach: bool | None = None,
    ) -> None:
        outer = dict(outer_momentum=outer_momentum, outer_nesterov=outer_nesterov)
        knobs = dict(lr=lr, inner_lr=inner_lr, L=L, gamma=gamma, scoping=scoping, alpha=alpha, noise=noise,
                     momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)  # fmt: skip
        self._setup(params, knobs, outer, seed, foreach)

    def _setup(
        self,
        params: Iterable[Any],
        knobs: dict[str, Any],
        outer: dict[str, Any],
        seed: int | None,
        foreach: bool | None,
    ) -> None:
        """Validate the defaults (common knobs plus those of the outer update) and build the optimizer."""
        defaults = {**knobs, **outer, "foreach": foreach, "step": 0, "cycle_step": 0, "outer_step": 0}
        self._check_group(defaults)
        super().__init__(params, defaults, seed)

    def _check_group(self, g: dict[str, Any]) -> None:
        super()._check_group(g)
        check("inner_lr", g["inner_lr"], low=0.0)
        check("gamma", g["gamma"], low=0.0, low_open=True, allow_inf=True)
        check("alpha", g["alpha"], low=0.0, high=1.0)
        check("noise", g["noise"], low=0.0)
        self._check_outer(g)

    def _check_outer(self, g: dict[str, Any]) -> None:
        check("outer_momentum", g["outer_momentum"], low=0.0, high=1.0, high_open=True)
        check("outer_nesterov", g["outer_nesterov"], choices=(False, True))

    def _required_state(self, p: Tensor, saved: dict[str, Any] | None) -> Iterable[str]:
        return ("reference",) if saved else ()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state written by :meth:`state_dict` (checked first; nothing is loaded from a bad one).

        A state saved before ``outer_momentum`` existed (when ``momentum``/``nesterov`` acted on both loops)
        loads with ``outer_momentum = momentum`` and ``outer_nesterov = nesterov``, its meaning then.
        """
        groups = state_dict.get("param_groups") if isinstance(state_dict, dict) else None
        if groups and all("outer_momentum" not in g and "momentum" in g for g in groups):
            groups = [{**g, "outer_momentum": g["momentum"], "outer_nesterov": g["nesterov"]} for g in groups]
            state_dict = {**state_dict, "param_groups": groups}
        super().load_state_dict(state_dict)

    def _new_state(self, p: Tensor, group: dict[str, Any]) -> None:
        self.state[p]["reference"] = p.detach().clone()

    def _outer_direction(
        self, group: dict[str, Any], params: list[Tensor], foreach: bool
    ) -> tuple[list[Tensor], list[Tensor]]:
        """x and x − z at the end of a cycle, z being the average or, with α = 0, the last inner iterate y.

        x − z is written over z (or y): both restart from x after the outer update, and reusing them spares
        a parameter-sized allocation per outer step.
        """
        xs = [self.state[p]["reference"] for p in params]
        zs = list(params) if group["alpha"] == 0 else [self.state[p]["average"] for p in params]
        K.sum_into_(zs, xs, zs, -1.0, foreach)
        return xs, zs

    def _outer_update(self, group: dict[str, Any], params: list[Tensor], foreach: bool) -> None:
        """x ← x − η′·M′(x − z) (Thesis §3.2.3)."""
        xs, ds = self._outer_direction(group, params, foreach)
        mu = group["outer_momentum"]
        bufs = [zeros_buffer(self.state[p], "outer_momentum", p) for p in params] if mu != 0 else []
        K.momentum_step_(
            xs, ds, bufs, lr=group["lr"], momentum=mu, nesterov=group["outer_nesterov"], foreach=foreach
        )

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:  # type: ignore[override]
        """One Langevin step on y (Alg. 2 lines 3–5); after every L-th, the outer update (line 6)."""
        self._refuse_inside_reference()
        loss = closure_loss(closure)
        work = collect_grads(self.param_groups)
        for group, (params, grads) in zip(self.param_groups, work, strict=True):
            if params:
                self._group_step(group, params, grads)
        return loss

    def _group_step(self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor]) -> None:
        foreach = use_foreach(group["foreach"], params, grads)
        for p in params:
            if "reference" not in self.state.get(p, {}):
                self._new_state(p, group)
        tracked = [p for p in group["params"] if "reference" in self.state.get(p, {})]
        mu = group["momentum"]
        averaged = group["alpha"] != 0
        for p in tracked:
            st = self.state[p]
            if not averaged:  # α = 0 (HJ): z is the last iterate y itself, no buffer
                st.pop("average", None)
            elif "average" not in st:  # a first step, or α was 0 until now (so z = y)
                st["average"] = p.detach().clone()
            elif group["cycle_step"] == 0:  # Alg. 2 line 1: z ← x (y = x already holds)
                st["average"].copy_(st["reference"])
            if group["cycle_step"] == 0 and mu != 0:
                zeros_buffer(st, "inner_momentum", p).zero_()
        gamma_t = self.scope(group)
        if gamma_t == 0:
            raise FloatingPointError(
                f"scope gamma_t underflowed to 0 after {group['outer_step']} outer steps "
                f"(gamma={group['gamma']}, scoping={group['scoping']})"
            )
        coupling = 0.0 if math.isinf(gamma_t) else 1.0 / gamma_t
        eta = group["inner_lr"]
        std = math.sqrt(2.0 * eta * group["noise"])
        K.coupled_sgd_step_(
            params,
            grads,
            [self.state[p]["reference"] for p in params],
            [self.state[p] for p in params],
            "inner_momentum",
            lr=eta,
            c=coupling,
            weight_decay=group["weight_decay"],
            momentum=mu,
            nesterov=group["nesterov"],
            foreach=foreach,
        )
        if std > 0:
            K.add_(params, self.randn_like_params(params), std, foreach)
        if averaged:  # Alg. 2 line 5: z ← αz + (1 − α)y
            K.lerp_([self.state[p]["average"] for p in tracked], tracked, 1.0 - group["alpha"], foreach)
        group["step"] += 1
        group["cycle_step"] += 1
        if group["cycle_step"] >= group["L"]:
            self._outer_update(group, tracked, foreach)
            K.copy_(tracked, [self.state[p]["reference"] for p in tracked], foreach)
            group["cycle_step"] = 0
            group["outer_step"] += 1


class EntropyAdam(EntropySGD):
    """Entropy-Adam (Thesis §3.3.5): Entropy-SGD whose outer update is Adam on the direction x − z.

    "Adam with the Local Entropy gradient (which is computed via SGLD)". Inner loop as in
    :class:`EntropySGD` (``momentum``/``nesterov`` act there only). Defaults from the char-LSTM experiment of
    §3.3.5: lr = η′ = 0.01 (halved at each epoch there), L = 5, fixed γ = 100 (scoping = 0), Adam's
    β1 = 0.5 ("we set β1 = 0.5 for Entropy-Adam", after Table 3.1); inner_lr = 0.1 and noise = 1e-8 are the
    Thesis's values for the other networks (§3.3.2–3.3.4), α = 0.75 the authors' code (as
    :class:`EntropySGD`), β2 = 0.999 and eps = 1e-8 Adam's defaults. State adds ``exp_avg`` and
    ``exp_avg_sq``; Adam's step count is the group's ``outer_step``. Complex parameters are updated as pairs
    of reals, as ``torch.optim.Adam`` does.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.01,
        inner_lr: float = 0.1,
        L: int = 5,
        gamma: float = 100.0,
        scoping: float = 0.0,
        alpha: float = 0.75,
        noise: float = 1e-8,
        momentum: float = 0.9,
        nesterov: bool = True,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.5, 0.999),
        eps: float = 1e-8,
        *,
        seed: int | None = None,
        foreach: bool | None = None,
    ) -> None:
        outer = dict(betas=tuple(betas) if isinstance(betas, (tuple, list)) else betas, eps=eps)
        knobs = dict(lr=lr, inner_lr=inner_lr, L=L, gamma=gamma, scoping=scoping, alpha=alpha, noise=noise,
                     momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)  # fmt: skip
        self._setup(params, knobs, outer, seed, foreach)

    def _check_outer(self, g: dict[str, Any]) -> None:
        betas = g["betas"]
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
            raise ValueError(f"Invalid betas: {betas!r} (must be a pair of real numbers in [0, 1))")
        check("betas[0]", betas[0], low=0.0, high=1.0, high_open=True)
        check("betas[1]", betas[1], low=0.0, high=1.0, high_open=True)
        check("eps", g["eps"], low=0.0)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state written by :meth:`state_dict` (checked first; nothing is loaded from a bad one)."""
        super(EntropySGD, self).load_state_dict(state_dict)

    def _outer_update(self, group: dict[str, Any], params: list[Tensor], foreach: bool) -> None:
        """x ← Adam(x, d = x − z) with lr = η′ (Thesis §3.3.5)."""
        xs, ds = self._outer_direction(group, params, foreach)
        ms = [zeros_buffer(self.state[p], "exp_avg", p) for p in params]
        vs = [zeros_buffer(self.state[p], "exp_avg_sq", p) for p in params]
        K.adam_step_(
            xs,
            ds,
            ms,
            vs,
            t=group["outer_step"] + 1,
            lr=group["lr"],
            betas=group["betas"],
            eps=group["eps"],
            foreach=foreach,
        )


#: The names under which :mod:`deeplandscape.optim.registry` lists this module's optimizers.
OPTIMIZERS = {"entropy-sgd": EntropySGD, "entropy-adam": EntropyAdam}
