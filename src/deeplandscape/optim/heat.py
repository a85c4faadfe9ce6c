"""Heat: gradient descent on the loss smoothed by the heat equation (Thesis §4.6.1.3, eq. (4.43), (4.28)).

    x ← x − (η/L) Σ_{i=1..L} ∇f_b(x + ε^i),    ε^i ∼ N(0, γ I)                       eq. (4.43)

the convolution ∇f ∗ G_γ of eq. (4.28) estimated by an average over L Gaussian perturbations of x. One
``step()`` per mini-batch gradient: the model's parameters hold the perturbed point x + ε^i at which the
next gradient is taken; the gradients of a cycle are summed and every L-th step updates x with
(Nesterov) momentum, then a fresh perturbation is drawn. The variance is scoped like Entropy-SGD's scope,
γ_t = γ0(1 − γ1)^t with t the number of outer updates ("other details such as adding momentum … and scoping
of the parameter γ are standard", §4.6.1.3).

Degenerate case (exact): L = 1 and γ = 0 give SGD (with the same momentum, Nesterov and weight decay).
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


class Heat(RelaxationOptimizer):
    """Heat-equation smoothing (Thesis §4.6.1.3): x ← x − η·M(mean of ∇f_b(x + ε^i) over a cycle of L steps).

    Args:
        params: parameters or param groups. Parameters that require a gradient are perturbed to x + ε once
            every param group is validated, at construction (or in ``add_param_group``), so build the
            optimizer before the first forward pass.
        lr: η (default 0.1, the outer step size of §4.6.1.1).
        L: gradients averaged per update (default 20, §4.6.1.3).
        gamma: variance γ0 ≥ 0 of the perturbations. The Thesis gives no value; the default 1e-4 is the
            variance β^{-1}γ of the kernel G_{β^{-1}γ} in eq. (4.28) with Entropy-SGD's β^{-1} = 1e-8 and
            γ0 = 1e4.
        scoping: γ1 ∈ [0, 1) in γ_t = γ0(1 − γ1)^t (default 1e-3, as Entropy-SGD, §3.2.3).
        momentum, nesterov: momentum of the outer update (default 0.9, Nesterov).
        weight_decay: λ, added as λ·(x + ε) to each gradient (default 0).
        seed: seed of the perturbations (``None``: drawn from torch's global generator).
        foreach: use ``torch._foreach_*`` kernels (``None``: yes unless a gradient is sparse).

    State per parameter: ``reference`` (x), ``grad_sum``, ``grads`` (how many gradients the sum holds),
    ``outer_momentum`` (when momentum > 0). A parameter whose ``grad`` is ``None`` is skipped: it stays at
    its perturbed point and adds nothing to its sum; the outer update averages each parameter's own
    gradients of the cycle and leaves a parameter that had none where it is. ``state_dict()`` also holds
    each parameter's current point x + ε (``point``), which ``load_state_dict`` puts back into the
    parameters: a Heat built on a model loaded from a checkpoint (which perturbs it once more) resumes
    exactly once its state is loaded.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.1,
        L: int = 20,
        gamma: float = 1e-4,
        scoping: float = 1e-3,
        momentum: float = 0.9,
        nesterov: bool = True,
        weight_decay: float = 0.0,
        *,
        seed: int | None = None,
        foreach: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            L=L,
            gamma=gamma,
            scoping=scoping,
            momentum=momentum,
            nesterov=nesterov,
            weight_decay=weight_decay,
            foreach=foreach,
            step=0,
            cycle_step=0,
            outer_step=0,
        )
        self._check_group(defaults)
        super().__init__(params, defaults, seed)
        for group in self.param_groups:  # every group is valid: only now are the parameters moved
            self._start_group(group)
        self._constructed = True

    def _check_group(self, g: dict[str, Any]) -> None:
        super()._check_group(g)
        check("gamma", g["gamma"], low=0.0)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a param group: validate it, then store x and move its parameters to x + ε."""
        super().add_param_group(param_group)
        if self._constructed:
            self._start_group(self.param_groups[-1])

    _constructed = False  # set once __init__ has added (and validated) every param group

    def _start_group(self, group: dict[str, Any]) -> None:
        """x ← the parameters that require a gradient, then parameters ← x + ε."""
        params = [p for p in group["params"] if p.requires_grad]
        with torch.no_grad():
            for p in params:
                self.state[p]["reference"] = p.detach().clone()
                self.state[p]["grad_sum"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                self.state[p]["grads"] = 0
            self._perturb(group, params, use_foreach(group["foreach"], params))

    def _perturb(self, group: dict[str, Any], params: list[Tensor], foreach: bool) -> None:
        """Parameters ← x + √γ_t ε with a fresh ε ∼ N(0, I)."""
        if not params:
            return
        xs = [self.state[p]["reference"] for p in params]
        std = math.sqrt(self.scope(group))
        if std > 0:
            K.sum_into_(params, xs, self.randn_like_params(params), std, foreach)
        else:
            K.copy_(params, xs, foreach)

    def _required_state(self, p: Tensor, saved: dict[str, Any] | None) -> Iterable[str]:
        return ("reference", "grad_sum") if p.requires_grad else ()

    def state_dict(self) -> dict[str, Any]:
        """The state, with each parameter's current point x + ε as ``point`` (see the class docstring)."""
        sd = super().state_dict()
        index = 0
        for group in self.param_groups:
            for p in group["params"]:
                if "reference" in self.state.get(p, {}):  # a new dict: torch hands out the live state
                    sd["state"][index] = {**sd["state"][index], "point": p.detach().clone()}
                index += 1
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state written by :meth:`state_dict` (checked first); put its points into the parameters."""
        self._check_loadable(state_dict)
        state_dict = dict(state_dict)
        state = {k: dict(v) for k, v in state_dict["state"].items()}
        points = {k: st.pop("point") for k, st in state.items() if "point" in st}
        super().load_state_dict({**state_dict, "state": state})
        saved_ids = [i for g in state_dict["param_groups"] for i in g["params"]]
        with torch.no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    st = self.state.get(p)
                    if st is not None and "reference" in st:
                        st.setdefault("grads", group["cycle_step"])  # states saved before it was kept
            params = [p for g in self.param_groups for p in g["params"]]
            for pid, p in zip(saved_ids, params, strict=True):
                if pid in points:
                    p.copy_(points[pid])

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:  # type: ignore[override]
        """Add ∇f_b(x + ε) to the cycle's sums; after every L-th step update x (eq. (4.43)); re-perturb."""
        self._refuse_inside_reference()
        loss = closure_loss(closure)
        work = collect_grads(self.param_groups, keep=lambda p: "reference" in self.state.get(p, {}))
        for group, (params, grads) in zip(self.param_groups, work, strict=True):
            if params:
                self._group_step(group, params, grads)
        return loss

    def _group_step(self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor]) -> None:
        foreach = use_foreach(group["foreach"], params, grads)
        wd = group["weight_decay"]
        sums = [self.state[p]["grad_sum"] for p in params]
        if foreach:
            torch._foreach_add_(sums, grads)
            if wd != 0:
                torch._foreach_add_(sums, params, alpha=wd)
        else:
            for s, g, p in zip(sums, grads, params, strict=True):
                s.add_(g)
                if wd != 0:
                    s.add_(p, alpha=wd)
        for p in params:
            self.state[p]["grads"] += 1
        group["step"] += 1
        group["cycle_step"] += 1
        moved = params
        if group["cycle_step"] >= group["L"]:
            had = [p for p in group["params"] if self.state.get(p, {}).get("grads", 0) > 0]
            self._outer_update(group, had, use_foreach(group["foreach"], had))
            group["cycle_step"] = 0
            group["outer_step"] += 1
            moved = had
        self._perturb(group, moved, foreach)

    def _outer_update(self, group: dict[str, Any], params: list[Tensor], foreach: bool) -> None:
        """x ← x − η·M(Σ/k), k the gradients in Σ (L when every step gave one); Σ ← 0 (eq. (4.43))."""
        xs = [self.state[p]["reference"] for p in params]
        sums = [self.state[p]["grad_sum"] for p in params]
        counts = [self.state[p]["grads"] for p in params]
        if foreach:  # Σ/k in place: Σ restarts from 0 below
            torch._foreach_div_(sums, counts)
        else:
            for s, k in zip(sums, counts, strict=True):
                s.div_(k)
        mu = group["momentum"]
        bufs = [zeros_buffer(self.state[p], "outer_momentum", p) for p in params] if mu != 0 else []
        K.momentum_step_(
            xs, sums, bufs, lr=group["lr"], momentum=mu, nesterov=group["nesterov"], foreach=foreach
        )
        if foreach:
            torch._foreach_zero_(sums)
        else:
            for s in sums:
                s.zero_()
        for p in params:
            self.state[p]["grads"] = 0


#: The names under which :mod:`deeplandscape.optim.registry` lists this module's optimizers.
OPTIMIZERS = {"heat": Heat}
