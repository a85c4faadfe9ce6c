"""Diagonal of the empirical Fisher information, ``diag I = E[g²] − (E g)²`` (Thesis §3.3.1).

With per-sample gradients ``g_k = ∇f_k(x)`` over the ``N`` samples of a data set, element-wise

    diag I = (1/N) Σ_k g_k ⊙ g_k − ḡ ⊙ ḡ = (1/N) Σ_k (g_k − ḡ)²,    ḡ = (1/N) Σ_k g_k.

The Thesis uses it as a proxy for the Hessian's eigenvalues of a large network (All-CNN, §3.3.1); it is
also the diagonal of the diffusion matrix ``D(x)`` of Thesis Lemma 6.3 (eq. 6.4). Per-batch means and
centred sums of squares are merged with Chan et al.'s pairwise update (no cancellation between the two
moments, ``O(d)`` memory whatever ``N``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from deeplandscape.analysis._functional import FunctionalLoss
from deeplandscape.analysis._model import Batch, LossFn, Output, preserved
from deeplandscape.analysis.per_sample import PerSampleGradientIterator


@dataclass(frozen=True)
class FisherDiagonal:
    """``diag I = E[g²] − (E g)²`` over the data set.

    Attributes:
        diagonal: ``(d,)`` flat, parameters in ``named_parameters`` order.
        per_parameter: the same values by parameter name, in the parameters' shapes.
        mean_gradient: ``(d,)`` ``ḡ``, the full-data gradient.
        num_samples: ``N``.
    """

    diagonal: Tensor
    per_parameter: dict[str, Tensor]
    mean_gradient: Tensor
    num_samples: int


def fisher_diagonal(
    model: nn.Module,
    loss_fn: LossFn,
    data: Iterable[Batch] | Batch,
    *,
    train: bool = False,
    chunk_size: int | None = None,
    output: Output = None,
) -> FisherDiagonal:
    """``diag I = (1/N) Σ_k g_k² − ḡ²`` from per-sample gradients (module docstring; Thesis §3.3.1).

    Args:
        model, loss_fn, data, train, chunk_size, output: as for
            :func:`~deeplandscape.analysis.per_sample.per_sample_gradients` (the same exact ``g_k``, by
            the same methods); only ``O(d)`` is kept between batches.
    """
    loss = FunctionalLoss(model, loss_fn, data, train=train, output=output)
    batches = PerSampleGradientIterator(loss, chunk_size=chunk_size)
    mean = torch.zeros(loss.dim, dtype=loss.dtype, device=loss.device)
    m2 = torch.zeros(loss.dim, dtype=loss.dtype, device=loss.device)
    count = 0
    with preserved(model, train=loss.train):
        for _, grads, _ in batches:
            n = grads.shape[0]
            batch_mean = grads.mean(dim=0)
            grads.sub_(batch_mean).square_()  # the iterator's own buffer: centred and squared in place
            batch_m2 = grads.sum(dim=0)
            delta = batch_mean - mean
            total = count + n
            mean = mean + delta * (n / total)
            m2 = m2 + batch_m2 + delta**2 * (count * n / total)
            count = total
    diagonal = m2 / count
    return FisherDiagonal(
        diagonal=diagonal,
        per_parameter=loss.unflatten(diagonal),
        mean_gradient=mean,
        num_samples=count,
    )
