"""Dense symmetric operators with a known spectrum, for the spectral estimators' tests."""

from __future__ import annotations

import torch
from torch import Tensor


def with_spectrum(eigenvalues: Tensor, dtype: torch.dtype = torch.float64, seed: int = 0) -> Tensor:
    """``Q diag(λ) Qᵀ`` for a random orthogonal ``Q`` (float64, then cast to ``dtype``)."""
    lam = eigenvalues.to(torch.float64)
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(lam.numel(), lam.numel(), generator=g, dtype=torch.float64))
    a = (q * lam) @ q.T
    return ((a + a.T) / 2).to(dtype)


def top_and_bulk(top: list[float], d: int, low: float, high: float, seed: int = 0) -> Tensor:
    """The eigenvalues ``top`` and ``d − len(top)`` more drawn uniformly from ``[low, high]``."""
    g = torch.Generator().manual_seed(seed)
    bulk = low + (high - low) * torch.rand(d - len(top), generator=g, dtype=torch.float64)
    return torch.cat([torch.tensor(top, dtype=torch.float64), bulk])


#: One large outlier over a bulk near 2: λ₁ ≈ 2732 and the next four 2.09, 2.03, 2.02, 2.00.
OUTLIER_TOP = [2732.0, 2.09, 2.03, 2.02, 2.00]
#: A cluster of five top eigenvalues 1e-3 apart over a bulk in [0, 0.9].
CLUSTER_TOP = [1.0, 0.999, 0.998, 0.997, 0.996]


def eigenvalues_of(matrix: Tensor) -> Tensor:
    """The exact spectrum (descending, float64) of the matrix as stored, rounding included."""
    return torch.linalg.eigvalsh(matrix.to(torch.float64)).flip(0)
