"""Annealed, resampled Gaussian gradient noise (Neelakantan et al. 2015): baseline of AnnealSGD paper §5.6.

At step t the base optimizer sees g_t + ε_t with a fresh ε_t ∼ N(0, σ_t² I),

    σ_t² = η / (1 + t)^γ,

η the initial variance and γ the decay exponent (Neelakantan et al. use η ∈ {0.01, 0.3, 1.0}, γ = 0.55).
Unlike AnnealSGD's fixed field, the direction changes at every step (AnnealSGD paper §5.6, Fig. 4).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from . import _kernels as K
from ._common import check
from ._perturbed import PerturbedGradientOptimizer, delta_sign


def noise_std(t: int, eta: float, gamma: float) -> float:
    """σ_t = (η / (1 + t)^γ)^{1/2}, the standard deviation of the gradient noise at step t (t = 0, 1, …)."""
    return math.sqrt(eta / (1.0 + t) ** gamma)


class GradientNoise(PerturbedGradientOptimizer):
    """Base optimizer on g_t + ε_t, ε_t ∼ N(0, η/(1+t)^γ · I) resampled every step (Neelakantan et al. 2015).

    Args:
        params: parameters or param groups.
        base: the base optimizer class (default ``torch.optim.SGD``); ``**base_kwargs`` go to it.
        eta: initial noise variance η ≥ 0 (default 0.01, the smallest value of Neelakantan et al.);
            η = 0 gives the base optimizer exactly.
        gamma: decay exponent γ ≥ 0 (default 0.55, Neelakantan et al.).
        seed: seed of the noise generator (``None``: drawn from torch's global generator).

    t is the group's step count (0 at the first step). A parameter whose ``grad`` is ``None`` is skipped and
    gets no noise drawn. After ``step()``, ``p.grad`` holds the noiseless gradient again. With the base
    optimizer's ``maximize=True`` the run is the one on −f (the base sees g − σ_t ε). A sparse gradient is
    handed to the base optimizer as the dense g + σ_t ε when η > 0. Complex parameters get N(0, σ_t²) in each
    real component.
    """

    def __init__(
        self,
        params: Iterable[Any],
        base: type[Optimizer] = torch.optim.SGD,
        *,
        eta: float = 0.01,
        gamma: float = 0.55,
        seed: int | None = None,
        **base_kwargs: Any,
    ) -> None:
        defaults = dict(eta=eta, gamma=gamma)
        self._check_group(defaults)
        super().__init__(params, defaults, base, base_kwargs, seed)

    def _check_group(self, g: dict[str, Any]) -> None:
        check("eta", g["eta"], low=0.0)
        check("gamma", g["gamma"], low=0.0)

    def _perturbs(self, group: dict[str, Any]) -> bool:
        return group["eta"] != 0

    def _perturbed_grads(
        self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor], foreach: bool
    ) -> list[Tensor]:
        """g + σ_t ε (g − σ_t ε with ``maximize``), ε ∼ N(0, I) drawn in parameter order, written over the
        noise buffers."""
        std = noise_std(group["step"], group["eta"], group["gamma"])
        noises = self.randn_like_params(params)
        K.sum_into_(noises, grads, noises, delta_sign(group) * std, foreach)
        return noises


#: The names under which :mod:`deeplandscape.optim.registry` lists this module's optimizers.
OPTIMIZERS = {"gradient-noise": GradientNoise}
