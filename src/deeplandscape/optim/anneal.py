"""AnnealSGD (a.k.a. Trivialized-SGD): a fixed random field added to the gradient, annealed to zero.

AnnealSGD paper Alg. 1 and §4.4 (Thesis Alg. 1, eq. (2.19)–(2.20)). A field h ∼ J√(p(p−2))·N(0, I) is
drawn once; at iteration i the base optimizer sees the gradient ∇f(w) + h_i with

    τ_i = n (e^{−i/τ0} − 1/2)                           eq. (13)
    h_i = (1 + 2τ_i/n)^{1/2} h                           eq. (12), Alg. 1 line 9

so that the perturbation starts at √2·h (the trivialized regime, B = −1/2) and decays through the
polynomial band (B = O(1/n)) to zero (the original, exponential regime).

Schedules (the paper reports "exponential and linear decay to similar experimental results"), written
with u(i) for e^{−i/τ0} in eq. (13):

- ``"exponential"``: u(i) = e^{−i/τ0} (eq. (13));
- ``"linear"``: u(i) = max(1 − i/τ0, 0), the first-order expansion of e^{−i/τ0} stopped at zero, so that
  the field vanishes after τ0 iterations.

Scalings:

- ``"critical"`` (eq. (12), the paper's choice): h_i = (1 + 2τ_i/n)^{1/2} h = (2u(i))^{1/2} h;
- ``"minima"`` (eq. (14), the local-minima edge scaling of Thm. 4):
  h_i = (1 + κ_i log n / n^{1/3})^{1/2} h. The paper gives eq. (14) without a schedule for κ; here κ is
  annealed like τ in eq. (13), κ_i = κ(2u(i) − 1), from +κ to −κ, and |κ log n / n^{1/3}| ≤ 1 is required
  so that the factor stays ≥ 0.

n and p follow §5.2: p is the number of weight layers (parameter tensors with ≥ 2 dimensions: a linear or
convolution kernel; biases and normalization scales belong to their layer) and n = (#weights / p)^{1/2},
#weights counting every parameter optimized.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from . import _kernels as K
from ._common import check, standard_normal_
from ._perturbed import PerturbedGradientOptimizer, delta_sign

SCHEDULES = ("exponential", "linear")
SCALINGS = ("critical", "minima")


@dataclass(frozen=True)
class NetworkSize:
    """The spin-glass size of a network (AnnealSGD paper §5.2): p layers of n "neurons"."""

    p: int  #: number of weight layers (parameter tensors with ≥ 2 dimensions)
    n: float  #: (num_weights / p)^{1/2}; NaN when p = 0
    num_weights: int  #: number of scalar parameters


def estimate_network_size(params: nn.Module | Iterable[Tensor]) -> NetworkSize:
    """p = number of weight layers and n = (#weights/p)^{1/2} (AnnealSGD paper §5.2).

    ``params`` is a module or an iterable of tensors (or of param-group dicts). A weight layer is a
    parameter tensor with at least 2 dimensions (the kernel of a linear or convolution layer); #weights
    counts all scalar parameters.
    """
    if isinstance(params, nn.Module):
        tensors = list(params.parameters())
    else:
        tensors = []
        for item in params:
            if isinstance(item, dict):
                tensors.extend(item["params"] if not isinstance(item["params"], Tensor) else [item["params"]])
            else:
                tensors.append(item)
    num_weights = sum(t.numel() for t in tensors)
    p = sum(1 for t in tensors if t.dim() >= 2)
    n = math.sqrt(num_weights / p) if p > 0 else math.nan
    return NetworkSize(p=p, n=n, num_weights=num_weights)


def field_scale(
    i: int,
    *,
    tau0: float,
    schedule: str = "exponential",
    scaling: str = "critical",
    n: float = 1.0,
    kappa: float = 1.0,
) -> float:
    """The factor s_i with h_i = s_i·h at iteration i (AnnealSGD paper eq. (12)–(14), Alg. 1 line 9).

    ``critical``: s_i = (1 + 2τ_i/n)^{1/2} with τ_i = n(u(i) − 1/2) (eq. (12)–(13)), i.e. s_i = (2u(i))^{1/2};
    ``minima``: s_i = (1 + κ_i log n / n^{1/3})^{1/2} with κ_i = κ(2u(i) − 1) (eq. (14)).
    u(i) = e^{−i/τ0} (``exponential``) or max(1 − i/τ0, 0) (``linear``).
    """
    u = math.exp(-i / tau0) if schedule == "exponential" else max(1.0 - i / tau0, 0.0)
    if scaling == "critical":
        tau = n * (u - 0.5)
        factor = 1.0 + 2.0 * tau / n
    else:
        kappa_i = kappa * (2.0 * u - 1.0)
        factor = 1.0 + kappa_i * math.log(n) / n ** (1.0 / 3.0)
    return math.sqrt(max(factor, 0.0))  # factor ≥ 0 up to rounding (validated for "minima")


def _materialize(item: Any) -> Any:
    """A param group with its ``params`` as a list (so that they can be counted before construction)."""
    if isinstance(item, dict) and not isinstance(item["params"], Tensor):
        return {**item, "params": list(item["params"])}
    return item


class AnnealSGD(PerturbedGradientOptimizer):
    """AnnealSGD (AnnealSGD paper Alg. 1, §4.4; Thesis Alg. 1): base optimizer on ∇f(w) + h_i.

    h ∼ J√(p(p−2))·N(0, I) is drawn once per parameter from the optimizer's seeded generator and kept in
    ``state[p]["field"]``; h_i = s_i h with s_i from :func:`field_scale` (eq. (12)–(14)), i = the group's
    step count. The base optimizer (any ``torch.optim.Optimizer`` class, default ``torch.optim.SGD``) gets
    ``base_kwargs`` (``lr``, ``momentum``, ``nesterov``, ``betas``, …) which, like the AnnealSGD knobs, live
    in the param groups. The paper uses SGD with Nesterov momentum and Adam as base.

    Args:
        params: parameters or param groups (per-group overrides of every knob are allowed).
        base: the base optimizer class.
        J: coupling; the field's standard deviation is v_c = J√(p(p−2)) (Alg. 1 line 4). Default 1e-4, the
            value of the paper's CNN experiments (§5.3–5.5); the MLP of §5.3 used 1e-3.
        tau0: annealing time constant τ0 in iterations (eq. (13)); default 1000 (§5.3–5.5).
        schedule: ``"exponential"`` (eq. (13)) or ``"linear"``.
        scaling: ``"critical"`` (eq. (12)) or ``"minima"`` (eq. (14)).
        kappa: κ of eq. (14), used with ``scaling="minima"``.
        n, p: network width and depth of §5.2; when ``None``, p is the number of weight tensors among all
            parameters and n = (#weights / p)^{1/2}. p ≥ 3 is required (v_c = 0 for p = 2).
        seed: seed of the generator that draws h (``None``: drawn from torch's global generator).
        **base_kwargs: arguments of ``base``.

    A parameter whose ``grad`` is ``None`` is skipped. After ``step()``, ``p.grad`` holds the unperturbed
    gradient again. With the base optimizer's ``maximize=True`` the run is the one on −f (the base sees
    ∇f − h_i). A sparse gradient is handed to the base optimizer as the dense ∇f + h_i (h is dense).
    """

    def __init__(
        self,
        params: Iterable[Any],
        base: type[Optimizer] = torch.optim.SGD,
        *,
        J: float = 1e-4,
        tau0: float = 1000.0,
        schedule: str = "exponential",
        scaling: str = "critical",
        kappa: float = 1.0,
        n: float | None = None,
        p: int | None = None,
        seed: int | None = None,
        **base_kwargs: Any,
    ) -> None:
        defaults = dict(J=J, tau0=tau0, schedule=schedule, scaling=scaling, kappa=kappa, n=n, p=p)
        self._check_knobs(defaults)
        params = [_materialize(g) for g in params]
        self.size = estimate_network_size(params)
        super().__init__(params, defaults, base, base_kwargs, seed)

    @staticmethod
    def _check_knobs(g: dict[str, Any]) -> None:
        check("J", g["J"], low=0.0)
        check("tau0", g["tau0"], low=0.0, low_open=True)
        check("schedule", g["schedule"], choices=SCHEDULES)
        check("scaling", g["scaling"], choices=SCALINGS)
        check("kappa", g["kappa"], low=0.0)
        if g["n"] is not None:
            check("n", g["n"], low=0.0, low_open=True)
        if g["p"] is not None:
            check("p", g["p"], low=3, integer=True)

    def _size_of(self, g: dict[str, Any]) -> tuple[int, float]:
        """(p, n) of a param group: its own, or estimated from all parameters (§5.2); validated."""
        self._check_knobs(g)
        p = g["p"]
        if p is None:
            if self.size.p < 3:
                raise ValueError(
                    f"Invalid p: {self.size.p} (estimated as the number of weight tensors with ≥ 2 dims; "
                    "v_c = J√(p(p−2)) needs p ≥ 3; pass p explicitly)"
                )
            p = self.size.p
        n = math.sqrt(self.size.num_weights / p) if g["n"] is None else g["n"]  # §5.2, with the group's p
        check("n", n, low=0.0, low_open=True)
        if g["scaling"] == "minima":
            edge = g["kappa"] * math.log(n) / n ** (1.0 / 3.0)
            if abs(edge) > 1.0:
                raise ValueError(
                    f"Invalid kappa: {g['kappa']} (eq. (14) needs |kappa·log(n)/n^(1/3)| ≤ 1 so that the "
                    f"field stays real; here n = {n:g} gives {edge:g})"
                )
        return p, n

    def _check_group(self, g: dict[str, Any]) -> None:
        self._size_of(g)

    def _required_state(self, p: Tensor, saved: dict[str, Any] | None) -> tuple[str, ...]:
        return ("field",)

    def _init_group(self, group: dict[str, Any]) -> None:
        group["p"], group["n"] = self._size_of(group)
        v_c = group["J"] * math.sqrt(group["p"] * (group["p"] - 2))
        for param in group["params"]:
            state = self.state[param]
            if "field" not in state:
                gen = self.generator(param.device)
                if param.is_complex():  # N(0, 1) in each real component, as torch.view_as_real(param)
                    xi = standard_normal_(torch.empty_like(param, memory_format=torch.contiguous_format), gen)
                else:
                    xi = torch.randn(param.shape, generator=gen, dtype=param.dtype, device=param.device)
                state["field"] = xi.mul_(v_c)

    def scale(self, group: dict[str, Any] | None = None) -> float:
        """s_i of the group's next step (h_i = s_i h), group 0 by default."""
        group = self.param_groups[0] if group is None else group
        return field_scale(
            group["step"],
            tau0=group["tau0"],
            schedule=group["schedule"],
            scaling=group["scaling"],
            n=group["n"],
            kappa=group["kappa"],
        )

    def _perturbs(self, group: dict[str, Any]) -> bool:
        return group["J"] != 0

    def _perturbed_grads(
        self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor], foreach: bool
    ) -> list[Tensor]:
        """∇f + s_i h (Alg. 1 line 10; ∇f − s_i h with ``maximize``), in work buffers."""
        outs = [self.scratch(p, "grad") for p in params]
        fields = [self.state[p]["field"] for p in params]
        K.sum_into_(outs, grads, fields, delta_sign(group) * self.scale(group), foreach)
        return outs

    @torch.no_grad()
    def alignment(self) -> float:
        """|hᵀw| over all parameters: the alignment of the weights with the field (AnnealSGD paper Fig. 4)."""
        total = 0.0
        for group in self.param_groups:
            for p in group["params"]:
                h = self.state[p].get("field")
                if (
                    h is not None
                ):  # a complex parameter as its pairs of reals (.double() drops imaginary parts)
                    h, w = (torch.view_as_real(t) if t.is_complex() else t for t in (h, p.detach()))
                    total += float(torch.dot(h.flatten().double(), w.flatten().double()))
        return abs(total)


#: The names under which :mod:`deeplandscape.optim.registry` lists this module's optimizers.
OPTIMIZERS = {"anneal-sgd": AnnealSGD, "trivialized-sgd": AnnealSGD}
