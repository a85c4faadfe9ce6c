"""Preprocessing the papers prescribe: pixels in [−1, 1] (MNIST), contrast normalization + ZCA (CIFAR).

AnnealSGD paper §5.2 / Thesis §2.4.2: "For MNIST, we scale each pixel to lie between [−1, 1]. For CIFAR-10,
we perform global contrast normalization and ZCA-whitening (Goodfellow et al., 2013)".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def to_symmetric_unit(x: torch.Tensor, max_value: float) -> torch.Tensor:
    """Map pixels from [0, max_value] to [−1, 1]: ``x ↦ 2x/max_value − 1`` (AnnealSGD paper §5.2)."""
    if max_value <= 0:
        raise ValueError(f"max_value must be positive, got {max_value}")
    out = x.to(torch.float32) * (2.0 / max_value) - 1.0
    lo, hi = out.min().item(), out.max().item()
    if lo < -1.0 - 1e-6 or hi > 1.0 + 1e-6:
        raise ValueError(f"pixels fall outside [0, {max_value}]: mapped range is [{lo}, {hi}]")
    return out


def global_contrast_normalize(
    x: torch.Tensor, *, scale: float = 55.0, sqrt_bias: float = 0.0, eps: float = 1e-8
) -> torch.Tensor:
    """Global contrast normalization (Goodfellow et al., 2013, as used for CIFAR-10 in the Thesis §3.3.3).

    Each sample (row of the flattened ``x``) is centred and rescaled:
    ``x_i ← scale · (x_i − mean(x_i)) / max(eps, sqrt(sqrt_bias + var(x_i)))`` with the population variance;
    scale 55 is the maxout-network setting.
    """
    flat = x.reshape(x.shape[0], -1).to(torch.float64)
    centred = flat - flat.mean(dim=1, keepdim=True)
    norm = torch.sqrt(sqrt_bias + centred.pow(2).mean(dim=1, keepdim=True)).clamp_min(eps)
    return (scale * centred / norm).to(x.dtype if x.is_floating_point() else torch.float32).reshape(x.shape)


@dataclass(frozen=True)
class ZCA:
    """ZCA whitening fitted on training data (Goodfellow et al., 2013).

    With the training mean μ and covariance ``C = V diag(λ) Vᵀ``, the map is
    ``x ↦ (x − μ) W`` with the symmetric ``W = V diag((λ + ε)^{−1/2}) Vᵀ``; on the training data the
    whitened covariance is ``V diag(λ/(λ + ε)) Vᵀ ≈ I`` for ε ≪ λ.
    """

    mean: torch.Tensor
    matrix: torch.Tensor
    eps: float

    @classmethod
    def fit(cls, x: torch.Tensor, *, eps: float = 1e-2) -> ZCA:
        """Fit μ and W on ``x`` (n, ...) in float64."""
        if eps < 0:
            raise ValueError(f"eps must be non-negative, got {eps}")
        flat = x.reshape(x.shape[0], -1).to(torch.float64)
        if flat.shape[0] < 2:
            raise ValueError(f"ZCA needs at least 2 samples, got {flat.shape[0]}")
        mean = flat.mean(dim=0)
        centred = flat - mean
        cov = centred.T @ centred / flat.shape[0]
        evals, evecs = torch.linalg.eigh(cov)
        inv_sqrt = (evals.clamp_min(0.0) + eps).rsqrt()
        if not torch.isfinite(inv_sqrt).all():
            raise ValueError("ZCA covariance has zero eigenvalues; use eps > 0")
        return cls(mean=mean, matrix=(evecs * inv_sqrt) @ evecs.T, eps=eps)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Whiten ``x`` (n, ...) and return it with its original shape, as float32."""
        flat = x.reshape(x.shape[0], -1).to(torch.float64)
        return ((flat - self.mean) @ self.matrix).to(torch.float32).reshape(x.shape)
