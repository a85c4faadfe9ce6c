"""Batched contractions of a symmetric p-tensor with configurations, as matrix products.

For a symmetric S ∈ R^{n×…×n} (p indices) and a batch σ ∈ R^{B×n}:

    G(σ)_i   = Σ_{j_2…j_p} S_{i j_2…j_p} σ_{j_2}⋯σ_{j_p}        (B, n)
    K(σ)_ij  = Σ_{k_3…k_p} S_{i j k_3…k_p} σ_{k_3}⋯σ_{k_p}      (B, n, n)

G is one GEMM, (B, n^{p−1}) · (n^{p−1}, n), on the (p−1)-fold outer product of σ with itself: 2·B·n^p
floating-point operations. The outer product is formed in chunks of rows only to bound the workspace
(O(chunk·n^{p−1}), O(B·n²) for p = 3): every chunk streams the whole n^p coupling tensor from memory
again, so chunks are kept large.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor

# Largest outer product formed at once (64 MiB in float32): one chunk for B = 1000 at n = 100, p = 3.
_CHUNK_ELEMENTS = 1 << 24


def symmetrize(tensor: Tensor) -> Tensor:
    """Average of ``tensor`` over all permutations of its indices (in place on a copy)."""
    p = tensor.dim()
    out = tensor.clone()
    for perm in itertools.permutations(range(p)):
        if perm != tuple(range(p)):
            out.add_(tensor.permute(perm))
    return out.div_(math.factorial(p))


def outer_power(sigma: Tensor, power: int) -> Tensor:
    """σ^{⊗power} flattened: (B, n^power); ``power=0`` gives ones of shape (B, 1)."""
    batch = sigma.shape[0]
    if power == 0:
        return torch.ones(batch, 1, dtype=sigma.dtype, device=sigma.device)
    out = sigma
    for _ in range(power - 1):
        out = (out[:, :, None] * sigma[:, None, :]).reshape(batch, -1)
    return out


def _chunk_rows(batch: int, width: int) -> int:
    return max(1, min(batch, _CHUNK_ELEMENTS // max(width, 1)))


def contract_vector(couplings: Tensor, sigma: Tensor) -> Tensor:
    """G(σ) = S·σ^{⊗(p−1)}, shape (B, n)."""
    p, n = couplings.dim(), couplings.shape[0]
    if p == 1:
        return couplings.expand(sigma.shape[0], n)
    matrix = couplings.reshape(n, -1)  # row i holds S_{i,·}
    if p == 2:
        return sigma @ matrix.T
    batch = sigma.shape[0]
    rows = _chunk_rows(batch, n ** (p - 1))
    if rows == batch:
        return outer_power(sigma, p - 1) @ matrix.T
    out = torch.empty(batch, n, dtype=sigma.dtype, device=sigma.device)
    for start in range(0, batch, rows):
        chunk = sigma[start : start + rows]
        torch.matmul(outer_power(chunk, p - 1), matrix.T, out=out[start : start + rows])
    return out


def contract_matrix(couplings: Tensor, sigma: Tensor) -> Tensor:
    """K(σ) = S·σ^{⊗(p−2)}, shape (B, n, n)."""
    p, n = couplings.dim(), couplings.shape[0]
    if p < 2:
        raise ValueError(f"contract_matrix needs p ≥ 2, got {p}")
    matrix = couplings.reshape(n * n, -1)  # row (i, j) holds S_{i j ·}
    return (outer_power(sigma, p - 2) @ matrix.T).reshape(sigma.shape[0], n, n)
