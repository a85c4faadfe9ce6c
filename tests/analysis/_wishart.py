"""The spiked Wishart operator A = diag(5, 4, 3, 0, …) + Z Zᵀ / d (Z: d × d standard Gaussian).

Z Zᵀ/d has the Marchenko–Pastur law of ratio 1 on [0, 4], density sqrt(x(4 − x)) / (2π x) and Stieltjes
transform G(z) = ∫ ρ(x)/(z − x) dx = 1/2 − sqrt(1 − 4/z)/2 for z > 4. A rank-one additive spike θ creates an
outlier at the z > 4 solving G(z) = 1/θ (Benaych-Georges & Nadakuditi 2011), i.e. sqrt(1 − 4/z) = 1 − 2/θ,
z = θ² / (θ − 1), when θ > 2: 25/4 = 6.25, 16/3 ≈ 5.33 and 9/2 = 4.5 for θ = 5, 4, 3.
"""

from __future__ import annotations

import math

import torch
from scipy.integrate import quad
from torch import Tensor

SPIKES = (5.0, 4.0, 3.0)


def outlier(theta: float) -> float:
    return theta**2 / (theta - 1)


def mp_cdf(x: float) -> float:
    """Marchenko–Pastur (ratio 1) distribution function."""
    if x <= 0:
        return 0.0
    if x >= 4:
        return 1.0
    value, _ = quad(lambda t: math.sqrt(t * (4 - t)) / (2 * math.pi * t), 0.0, x)
    return value


class SpikedWishart:
    """``v ↦ diag(spikes) v + Z (Zᵀ v) / d`` without forming ``A``."""

    def __init__(self, d: int = 2000, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.z = torch.randn(d, d, generator=g, dtype=torch.float64)
        self.diag = torch.zeros(d, dtype=torch.float64)
        self.diag[: len(SPIKES)] = torch.tensor(SPIKES, dtype=torch.float64)
        self.dim = d
        self.dtype = torch.float64
        self.device = torch.device("cpu")

    def matvec(self, v: Tensor) -> Tensor:
        return self.diag * v + self.z @ (self.z.T @ v) / self.dim

    def trace(self) -> float:
        return float(self.diag.sum() + (self.z**2).sum() / self.dim)
