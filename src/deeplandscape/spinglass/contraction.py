"""Symmetric coupling tensors, stored packed, and their batched contractions as matrix products.

A symmetric S ∈ R^{n×…×n} (p indices) is stored by its distinct trailing multi-indices: for every sorted
c = (j_2 ≤ … ≤ j_p) one column, weighted by the number of orderings of c,

    W[i, c] = m(c) · S[i, c],   m(c) = (p − 1)! / ∏_v (multiplicity of v in c)!,

an (n, P) matrix with P = C(n + p − 2, p − 1) ≈ n^{p−1}/(p − 1)! columns (about half the n^p entries
for p = 3). Then, for a batch σ ∈ R^{B×n},

    G(σ)_i  = Σ_{j_2…j_p} S_{i j_2…j_p} σ_{j_2}⋯σ_{j_p} = Σ_c W[i, c] ∏_{j∈c} σ_j      (B, n)

is one GEMM of W with the packed monomials: half the 2·B·n^p floating-point operations of the unpacked
contraction for p = 3. The monomials are built transposed, (P, B), as products of row gathers of σᵀ
(contiguous rows of length B: memory-speed copies, where gathering columns of a (B, n²) outer product is
several times slower), and the batch is cut into chunks so that this workspace stays around 16 MB. The
Hessian kernel K(σ)_ij = S_{ij·}·σ^{⊗(p−2)} unpacks S on the fly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

# Elements of the per-chunk monomials (16 MiB in float32): ~830 rows at n = 100, ~200 at n = 200, p = 3.
_CHUNK_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class PackedSymmetric:
    """A symmetric p-tensor as W[i, c] = m(c)·S[i, c] over sorted trailing multi-indices c.

    Attributes:
        weighted: W, shape (n, P).
        multiplicity: m(c), shape (P,).
        combos: the sorted multi-index c of each column, shape (P, p − 1).
        lookup: for every flat trailing multi-index (n^{p−1} of them), its column c, shape (n^{p−1},).
        p: the order.
    """

    weighted: Tensor
    multiplicity: Tensor
    combos: Tensor
    lookup: Tensor
    p: int

    @property
    def n(self) -> int:
        return self.weighted.shape[0]

    def unpack(self) -> Tensor:
        """The full symmetric tensor S, shape (n,)*p (n^p memory)."""
        n, p = self.n, self.p
        full = (self.weighted / self.multiplicity)[:, self.lookup]
        return full.reshape((n,) * p)

    def __add__(self, other: PackedSymmetric) -> PackedSymmetric:
        return PackedSymmetric(
            self.weighted + other.weighted, self.multiplicity, self.combos, self.lookup, self.p
        )


def _multi_indices(n: int, r: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """Sorted r-multi-indices over range(n): (their flat positions in n^r, multiplicities, and the column
    of every flat index)."""
    if r == 0:
        one = torch.zeros(1, dtype=torch.long, device=device)
        return one, torch.ones(1, dtype=torch.long, device=device), one
    grid = torch.cartesian_prod(*[torch.arange(n, device=device)] * r).reshape(-1, r)
    place = n ** torch.arange(r - 1, -1, -1, device=device)
    flat_sorted = (grid.sort(dim=1).values * place).sum(1)  # flat index of each tuple's sorted version
    columns, lookup = torch.unique(flat_sorted, return_inverse=True)  # ascending: columns = sorted tuples
    counts = torch.bincount(lookup, minlength=columns.numel())  # orderings per sorted tuple = m(c)
    return columns, counts, lookup


def pack(symmetric: Tensor) -> PackedSymmetric:
    """Pack a symmetric tensor (n,)*p, p ≥ 1 (its symmetry is assumed, not checked)."""
    p, n = symmetric.dim(), symmetric.shape[0]
    flat, counts, lookup = _multi_indices(n, p - 1, symmetric.device)
    multiplicity = counts.to(symmetric.dtype)
    weighted = symmetric.reshape(n, -1)[:, flat] * multiplicity
    digits = n ** torch.arange(p - 2, -1, -1, device=symmetric.device)
    combos = (flat[:, None] // digits) % n  # (P, p − 1); p = 1 gives an empty (1, 0)
    return PackedSymmetric(weighted.contiguous(), multiplicity, combos, lookup, p)


def symmetrize(tensor: Tensor) -> Tensor:
    """Average of ``tensor`` over all permutations of its indices."""
    import itertools

    p = tensor.dim()
    out = tensor.clone()
    for perm in itertools.permutations(range(p)):
        if perm != tuple(range(p)):
            out.add_(tensor.permute(perm))
    return out.div_(math.factorial(p))


def outer_power(sigma: Tensor, power: int, out: Tensor | None = None) -> Tensor:
    """σ^{⊗power} flattened, (B, n^power), written into ``out`` if given; ``power=0`` gives ones (B, 1)."""
    batch = sigma.shape[0]
    if power == 0:
        return torch.ones(batch, 1, dtype=sigma.dtype, device=sigma.device)
    if power == 1:
        return sigma if out is None else out.copy_(sigma)
    head = sigma
    for _ in range(power - 2):
        head = (head[:, :, None] * sigma[:, None, :]).reshape(batch, -1)
    if out is None:
        return (head[:, :, None] * sigma[:, None, :]).reshape(batch, -1)
    torch.mul(head[:, :, None], sigma[:, None, :], out=out.view(batch, head.shape[1], sigma.shape[1]))
    return out


def monomials_t(sigma_t: Tensor, combos: Tensor, out: Tensor | None = None) -> Tensor:
    """∏_{j∈c} σ_j for every column c, transposed: (P, B) from σᵀ of shape (n, B)."""
    result = torch.index_select(sigma_t, 0, combos[:, 0], out=out)
    for t in range(1, combos.shape[1]):
        factor = sigma_t.index_select(0, combos[:, t])
        result = result.mul_(factor) if out is not None else result * factor
    return result


def contract_vector(packed: PackedSymmetric, sigma: Tensor) -> Tensor:
    """G(σ) = S·σ^{⊗(p−1)}, shape (B, n), from the packed couplings."""
    p, n = packed.p, packed.n
    batch = sigma.shape[0]
    if p == 1:
        return packed.weighted[:, 0].expand(batch, n)
    if p == 2:
        return sigma @ packed.weighted.T
    sigma_t = sigma.T.contiguous()
    if torch.is_grad_enabled() and sigma.requires_grad:  # differentiable path (no out= buffers)
        return (packed.weighted @ monomials_t(sigma_t, packed.combos)).T
    columns = packed.combos.shape[0]
    rows = max(1, min(batch, _CHUNK_ELEMENTS // columns))
    workspace = torch.empty(columns, rows, dtype=sigma.dtype, device=sigma.device)
    result = torch.empty(n, batch, dtype=sigma.dtype, device=sigma.device)
    for start in range(0, batch, rows):
        chunk = sigma_t[:, start : start + rows]
        m = chunk.shape[1]
        mono = monomials_t(chunk, packed.combos, out=workspace[:, :m] if m == rows else None)
        torch.matmul(packed.weighted, mono, out=result[:, start : start + m])
    return result.T


def contract_matrix(packed: PackedSymmetric, sigma: Tensor) -> Tensor:
    """K(σ) = S·σ^{⊗(p−2)}, shape (B, n, n) (unpacks S for the call)."""
    p, n = packed.p, packed.n
    if p < 2:
        raise ValueError(f"contract_matrix needs p ≥ 2, got {p}")
    matrix = packed.unpack().reshape(n * n, -1)  # row (i, j) holds S_{i j ·}
    return (outer_power(sigma, p - 2) @ matrix.T).reshape(sigma.shape[0], n, n)
