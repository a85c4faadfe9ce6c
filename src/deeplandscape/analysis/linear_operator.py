"""Symmetric linear operators ``v ↦ A v`` on ``R^d``: the interface the spectral instruments consume.

:func:`~deeplandscape.analysis.lanczos.lanczos`, :func:`~deeplandscape.analysis.slq.spectral_density` and
:func:`~deeplandscape.analysis.trace.hutchinson_trace` only ever apply ``A`` to vectors. Anything with
``dim``, ``dtype``, ``device`` and ``matvec(v) -> A v`` qualifies (a
:class:`~deeplandscape.analysis.hvp.HessianOperator`, a user class); a dense symmetric matrix is wrapped
by :class:`MatrixOperator`. :func:`to_scipy` exports any of them as a
``scipy.sparse.linalg.LinearOperator``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator
from torch import Tensor


@runtime_checkable
class SymmetricOperator(Protocol):
    """A symmetric ``d × d`` operator known through its products ``A v`` with vectors ``v ∈ R^d``."""

    dim: int
    dtype: torch.dtype
    device: torch.device

    def matvec(self, vector: Tensor) -> Tensor:
        """``A v`` for a 1-D tensor ``v`` of length ``dim``."""
        ...


class MatrixOperator:
    """A dense symmetric matrix ``A`` (a ``d × d`` tensor) as a :class:`SymmetricOperator`.

    ``ValueError`` for a NaN/Inf entry; symmetry is checked to ``atol = max(1e-8, 100 eps) · max|A|``.
    """

    def __init__(self, matrix: Tensor) -> None:
        if not isinstance(matrix, Tensor) or matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1]:
            shape = tuple(matrix.shape) if isinstance(matrix, Tensor) else type(matrix).__name__
            raise ValueError(f"Invalid matrix: shape {shape}, expected a square (d, d) tensor")
        if matrix.shape[0] == 0:
            raise ValueError("Invalid matrix: shape (0, 0), expected d >= 1")
        if not matrix.is_floating_point():
            raise ValueError(f"Invalid matrix: dtype {matrix.dtype}, expected a floating-point tensor")
        if not bool(torch.isfinite(matrix).all()):
            bad = tuple(int(i) for i in torch.nonzero(~torch.isfinite(matrix))[0])
            raise ValueError(f"Invalid matrix: entry {bad} is {float(matrix[bad])}; expected finite entries")
        scale = float(matrix.abs().max()) if matrix.numel() else 0.0
        tol = max(1e-8, 100 * torch.finfo(matrix.dtype).eps) * max(scale, 1e-300)
        if not torch.allclose(matrix, matrix.mT, rtol=0.0, atol=tol):
            raise ValueError("Invalid matrix: not symmetric (|A - Aᵀ| exceeds the tolerance)")
        self.matrix = matrix
        self.dim = int(matrix.shape[0])
        self.dtype = matrix.dtype
        self.device = matrix.device

    def matvec(self, vector: Tensor) -> Tensor:
        """``A v``."""
        return self.matrix @ vector


def as_operator(operator: SymmetricOperator | Tensor) -> SymmetricOperator:
    """Wrap a dense matrix in :class:`MatrixOperator`; pass a :class:`SymmetricOperator` through."""
    if isinstance(operator, Tensor):
        return MatrixOperator(operator)
    if not isinstance(operator, SymmetricOperator):
        raise ValueError(
            f"Invalid operator: {type(operator).__name__} has no dim/dtype/device/matvec "
            "(pass a HessianOperator, a MatrixOperator or a square tensor)"
        )
    if int(operator.dim) < 1:
        raise ValueError(f"Invalid operator: dim={operator.dim}, expected dim >= 1")
    return operator


def to_scipy(operator: SymmetricOperator | Tensor) -> LinearOperator:
    """Export ``operator`` as a ``scipy.sparse.linalg.LinearOperator`` (for ``eigsh``, ``cg``, ``minres``).

    numpy vectors are copied to the operator's device and dtype, multiplied, and copied back; the scipy
    operator's dtype is the numpy equivalent of the operator's. It is symmetric, so ``rmatvec = matvec``.
    """
    op = as_operator(operator)
    np_dtype = torch.empty((), dtype=op.dtype).numpy().dtype

    def matvec(x: np.ndarray) -> np.ndarray:
        v = torch.as_tensor(np.asarray(x).reshape(-1), dtype=op.dtype, device=op.device)
        return op.matvec(v).detach().cpu().numpy()

    def matmat(x: np.ndarray) -> np.ndarray:
        return np.stack([matvec(col) for col in np.asarray(x).T], axis=1)

    return LinearOperator(
        shape=(op.dim, op.dim), matvec=matvec, rmatvec=matvec, matmat=matmat, dtype=np_dtype
    )
