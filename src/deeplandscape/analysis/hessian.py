"""The exact dense Hessian of a small model's data-set loss, and its full eigendecomposition.

``H = [H e_1, …, H e_d]``: one Hessian–vector product per basis vector ``e_j`` (see
:mod:`deeplandscape.analysis.hvp`), vectorized with ``vmap``, then symmetrized ``(H + Hᵀ)/2``. Its
eigenvalues give the index of a critical point exactly (Choromanska et al. §5.1 compute the full Hessian
spectrum of small networks; Thesis §3.3.1 does the same for networks of ~50k weights). Memory is
``O(d²)``: meant for ``d`` up to a few thousand.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from deeplandscape.analysis._model import Batch, LossFn, Output
from deeplandscape.analysis.hvp import HessianOperator


@dataclass(frozen=True)
class ExactHessian:
    """The dense Hessian and its spectrum.

    Attributes:
        matrix: ``(d, d)`` symmetrized Hessian ``(H + Hᵀ)/2``.
        eigenvalues: ascending, ``(d,)``.
        eigenvectors: ``(d, d)``, column ``i`` belongs to ``eigenvalues[i]`` (``None`` unless requested).
        asymmetry: ``max |H − Hᵀ|`` before symmetrization (rounding error of the products).
        num_hvps: Hessian–vector products used (``d``).
    """

    matrix: Tensor
    eigenvalues: Tensor
    eigenvectors: Tensor | None
    asymmetry: float
    num_hvps: int


def exact_hessian(
    model: nn.Module,
    loss_fn: LossFn,
    data: Iterable[Batch] | Batch,
    *,
    train: bool = False,
    eigenvectors: bool = False,
    max_params: int = 10_000,
    chunk_size: int = 32,
    mode: str = "auto",
    output: Output = None,
) -> ExactHessian:
    """Dense ``∇²f(x)`` of ``f = Σ_b n_b ℓ_b / N`` over the trainable parameters, with ``eigh``/``eigvalsh``.

    Args:
        model, loss_fn, data, train, mode, output: as for
            :class:`~deeplandscape.analysis.hvp.HessianOperator`.
        eigenvectors: also return the eigenvectors (``torch.linalg.eigh``).
        max_params: refuse models with more trainable parameters (the matrix needs ``d²`` entries).
        chunk_size: basis vectors per vectorized batch of HVPs.
    """
    op = HessianOperator(model, loss_fn, data, train=train, mode=mode, output=output)
    if op.dim > max_params:
        raise ValueError(
            f"Invalid model: {op.dim} trainable parameters, exact_hessian allows at most max_params="
            f"{max_params} (use lanczos/spectral_density on a HessianOperator instead)"
        )
    eye = torch.eye(op.dim, dtype=op.dtype, device=op.device)
    raw = op.matmat(eye, chunk_size=chunk_size)
    asymmetry = float((raw - raw.T).abs().max())
    matrix = (raw + raw.T) / 2
    if eigenvectors:
        values, vectors = torch.linalg.eigh(matrix)
    else:
        values, vectors = torch.linalg.eigvalsh(matrix), None
    return ExactHessian(
        matrix=matrix, eigenvalues=values, eigenvectors=vectors, asymmetry=asymmetry, num_hvps=op.num_matvecs
    )
