"""Mini-batch noise of SGD: the diffusion matrix ``D(x)``, its spectrum and rank, and the temperature.

Thesis Lemma 6.3: with per-sample gradients ``g_k = ∇f_k(x)`` and ``g = ∇f(x) = (1/N) Σ_k g_k``, a mini-batch
gradient ``∇f_b`` of ``b`` samples drawn *with* replacement has ``var(∇f_b) = D_w(x)/b`` with

    D_w(x) = (1/N) Σ_k g_k g_kᵀ − g gᵀ = (1/N) Cᵀ C,    C = G − 1 gᵀ   (eq. 6.4)

(``G`` is the ``N × d`` matrix of the ``g_k``). Drawn *without* replacement,
``var(∇f_b) = (1/b)(1 − b/N) D_wo(x)`` with

    D_wo(x) = (1/(N−1)) Σ_k g_k g_kᵀ − (N/(N−1)) g gᵀ = N/(N−1) · D_w(x).

(The extracted eq. 6.5 prints the coefficient of ``g gᵀ`` as ``1 − 1/(N−1)``; the derivation that follows it
in the Thesis, ``Σ_{i≠j} g_i g_jᵀ = N² g gᵀ − Σ_k g_k g_kᵀ`` with ``cov(1_i, 1_j) = −b(N−b)/(N²(N−1))``, gives
``N/(N−1) = 1 + 1/(N−1)``, which is what is implemented and what the tests check by enumerating all
mini-batches.)

Spectrum (Thesis §6.3.2): ``D = Aᵀ A`` with ``A = C/√N`` (times ``√(N/(N−1))`` without replacement) has
the same non-zero eigenvalues as the ``N × N`` Gram matrix ``A Aᵀ``; when ``d > N`` they are computed from it
(``O(N·d)`` memory, ``O(N²·d)`` time, the ``d × d`` matrix never formed) and the other ``d − N``
eigenvalues are exactly zero; otherwise ``D`` itself (``d × d``) is diagonalized. The rank counts
eigenvalues above numpy's ``matrix_rank`` threshold ``λ_max · d · eps`` (Thesis §6.3.2, footnote 1), and
the mean and standard deviation are over all ``d`` eigenvalues, as in Thesis Figs. 6.1–6.2.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from deeplandscape.analysis._functional import all_finite
from deeplandscape.analysis._model import Batch, LossFn, Output
from deeplandscape.analysis.per_sample import per_sample_gradients

SAMPLING = ("with_replacement", "without_replacement")
METHODS = ("auto", "gram", "dense")


@dataclass(frozen=True)
class DiffusionSpectrum:
    """Eigenvalues of ``D(x)`` and the statistics of Thesis Figs. 6.1–6.2.

    Attributes:
        eigenvalues: computed eigenvalues, descending, float64: ``min(N, d)`` of them by the Gram route (the
            remaining ``d − N`` are exactly zero), ``d`` by the dense route.
        rank: ``#{λ > λ_max · d · eps}`` (numpy's ``matrix_rank`` rule; ``eps`` of the gradients' dtype).
        rank_threshold: that threshold.
        relative_rank: ``rank / d``.
        mean: ``(1/d) Σ λ = tr D / d`` over all ``d`` eigenvalues.
        std: their standard deviation (population, zeros included).
        trace: ``tr D``.
        num_params: ``d``.
        num_samples: ``N``.
        method: ``"gram"`` or ``"dense"``.
        sampling: ``"with_replacement"`` (``D_w``, eq. 6.4) or ``"without_replacement"`` (``D_wo``).
    """

    eigenvalues: Tensor
    rank: int
    rank_threshold: float
    relative_rank: float
    mean: float
    std: float
    trace: float
    num_params: int
    num_samples: int
    method: str
    sampling: str


@dataclass(frozen=True)
class DiffusionMatrix:
    """The dense ``d × d`` diffusion matrix (small ``d`` only) and how it was formed."""

    matrix: Tensor
    num_samples: int
    sampling: str


def _check_gradients(gradients: Tensor, sampling: str) -> tuple[int, int]:
    if not isinstance(gradients, Tensor) or gradients.dim() != 2:
        shape = tuple(gradients.shape) if isinstance(gradients, Tensor) else type(gradients).__name__
        raise ValueError(f"Invalid gradients: shape {shape}, expected (N, d) per-sample gradients")
    n, d = gradients.shape
    if n < 2 or d < 1:
        raise ValueError(f"Invalid gradients: shape ({n}, {d}), expected N >= 2 samples and d >= 1")
    if sampling not in SAMPLING:
        raise ValueError(f"Invalid sampling: {sampling!r}, expected one of {SAMPLING}")
    return n, d


def _finite_mean(gradients: Tensor) -> Tensor:
    """``ḡ``, with a ``ValueError`` if ``G`` has a NaN/Inf (every one reaches the mean of its column, so
    only a non-finite mean needs the element-wise check: one pass over ``G`` instead of two)."""
    mean = gradients.mean(dim=0)
    if not all_finite(mean) and not bool(torch.isfinite(gradients).all()):
        raise ValueError("Invalid gradients: contain NaN or Inf")
    if not all_finite(mean):
        raise ValueError("Invalid gradients: their mean overflows the dtype")
    return mean


def _scale(n: int, sampling: str) -> float:
    """``D = scale · Cᵀ C``: ``1/N`` with replacement, ``1/(N−1)`` without (``N/(N−1) · D_w``)."""
    return 1.0 / n if sampling == "with_replacement" else 1.0 / (n - 1)


def _chunks(n: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def diffusion_matrix(gradients: Tensor, *, sampling: str = "with_replacement") -> DiffusionMatrix:
    """Dense ``D_w = (1/N) Σ g_k g_kᵀ − g gᵀ`` (eq. 6.4) or ``D_wo = N/(N−1) D_w`` from ``(N, d)`` gradients.

    ``O(d²)`` memory: for small models and tests; use :func:`diffusion_spectrum_from_gradients` otherwise.
    """
    n, _ = _check_gradients(gradients, sampling)
    mean = _finite_mean(gradients)
    second = gradients.T @ gradients / n
    matrix = (second - torch.outer(mean, mean)) * (n * _scale(n, sampling))
    return DiffusionMatrix(matrix=(matrix + matrix.T) / 2, num_samples=n, sampling=sampling)


def diffusion_spectrum_from_gradients(
    gradients: Tensor,
    *,
    sampling: str = "with_replacement",
    method: str = "auto",
    chunk_size: int = 256,
    overwrite: bool = False,
) -> DiffusionSpectrum:
    """Spectrum of ``D(x)`` from per-sample gradients ``G`` (``N × d``), by the Gram route if ``d > N``.

    Args:
        gradients: ``(N, d)``, row ``k`` is ``g_k``; not modified unless ``overwrite``.
        sampling: ``"with_replacement"`` (``D_w``, eq. 6.4) or ``"without_replacement"`` (``N/(N−1) D_w``).
        method: ``"auto"`` (Gram if ``d > N``, else dense), ``"gram"`` or ``"dense"``.
        chunk_size: rows of ``G`` centred at a time when ``G`` is kept (extra memory ``O(chunk_size · d)``).
        overwrite: centre ``G`` in place (``G`` then holds ``C = G − 1 gᵀ``): no extra ``O(N·d)`` memory,
            and the product ``C Cᵀ`` (or ``Cᵀ C``) is one matrix multiplication.

    The products ``CᵀC`` or ``CCᵀ`` are formed in the gradients' dtype from the centred gradients (never as
    ``G Gᵀ`` minus the mean's part, which cancels catastrophically when the mean gradient dominates), the
    eigenvalues computed in float64.
    """
    n, d = _check_gradients(gradients, sampling)
    if method not in METHODS:
        raise ValueError(f"Invalid method: {method!r}, expected one of {METHODS}")
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"Invalid chunk_size: {chunk_size}, expected an integer >= 1")
    if method == "auto":
        method = "gram" if d > n else "dense"
    mean = _finite_mean(gradients)
    if overwrite:
        centred = gradients.sub_(mean)
        small = centred @ centred.T if method == "gram" else centred.T @ centred
    elif method == "gram":
        parts = _chunks(n, chunk_size)
        small = torch.empty(n, n, dtype=gradients.dtype, device=gradients.device)
        for i, rows_i in enumerate(parts):
            ci = gradients[rows_i] - mean
            for rows_j in parts[i:]:
                block = ci @ (gradients[rows_j] - mean).T
                small[rows_i, rows_j] = block
                small[rows_j, rows_i] = block.T
    else:
        small = torch.zeros(d, d, dtype=gradients.dtype, device=gradients.device)
        for rows in _chunks(n, chunk_size):
            c = gradients[rows] - mean
            small.addmm_(c.T, c)
    small = small.to(torch.float64) * _scale(n, sampling)
    eigenvalues = torch.linalg.eigvalsh((small + small.T) / 2).flip(0)
    lam_max = float(eigenvalues.abs().max())
    threshold = lam_max * d * torch.finfo(gradients.dtype).eps
    rank = int((eigenvalues.abs() > threshold).sum())
    total = float(eigenvalues.sum())
    mean_eig = total / d
    var = float((eigenvalues**2).sum()) / d - mean_eig**2
    return DiffusionSpectrum(
        eigenvalues=eigenvalues.cpu(),
        rank=rank,
        rank_threshold=threshold,
        relative_rank=rank / d,
        mean=mean_eig,
        std=math.sqrt(max(var, 0.0)),
        trace=total,
        num_params=d,
        num_samples=n,
        method=method,
        sampling=sampling,
    )


def diffusion_spectrum(
    model: nn.Module,
    loss_fn: LossFn,
    data: Iterable[Batch] | Batch,
    *,
    sampling: str = "with_replacement",
    method: str = "auto",
    train: bool = False,
    chunk_size: int | None = None,
    output: Output = None,
) -> DiffusionSpectrum:
    """Spectrum, rank, mean and std of the diffusion matrix ``D(x)`` of a model over a data set.

    Per-sample gradients by :func:`~deeplandscape.analysis.per_sample.per_sample_gradients` (eval mode by
    default, as in Thesis §6.3.1; the model is restored exactly; ``output`` as there), then
    :func:`diffusion_spectrum_from_gradients`, centring them in place. Memory: the ``N × d`` gradient
    matrix and ``O(N²)``.
    """
    grads = per_sample_gradients(
        model, loss_fn, data, train=train, chunk_size=chunk_size, output=output
    ).gradients
    return diffusion_spectrum_from_gradients(grads, sampling=sampling, method=method, overwrite=True)


@dataclass(frozen=True)
class SGDTemperature:
    """The temperature ``β^{-1}`` of SGD's diffusion ``dX = −∇f dt + √(2β^{-1} D(X)) dB`` (Thesis Thm. 6.5).

    Attributes:
        with_replacement: ``β_w^{-1} = η / (2b)`` (eq. 6.6).
        without_replacement: ``β_wo^{-1} = η/(2b) · (1 − b/N)`` (eq. 6.7, Remark 6.31); ``None`` if ``N`` is
            not given.
    """

    lr: float
    batch_size: int
    num_samples: int | None
    with_replacement: float
    without_replacement: float | None


def sgd_temperature(lr: float, batch_size: int, num_samples: int | None = None) -> SGDTemperature:
    """``β^{-1} = η/(2b)`` with replacement and ``η/(2b)(1 − b/N)`` without (Thesis eqs. 6.6–6.7).

    (The extracted eq. 6.7 reads ``1 − β/N``; the factor is ``1 − b/N`` as derived in the proof of Lemma 6.3
    and restated in Remark 6.31.)
    """
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"Invalid lr: {lr}, expected a finite value > 0")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"Invalid batch_size: {batch_size}, expected an integer >= 1")
    wo = None
    if num_samples is not None:
        if not isinstance(num_samples, int) or num_samples < batch_size:
            raise ValueError(
                f"Invalid num_samples: {num_samples}, expected an integer >= batch_size={batch_size}"
            )
        wo = lr / (2 * batch_size) * (1 - batch_size / num_samples)
    return SGDTemperature(
        lr=float(lr),
        batch_size=batch_size,
        num_samples=num_samples,
        with_replacement=lr / (2 * batch_size),
        without_replacement=wo,
    )
