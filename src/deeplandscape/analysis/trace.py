"""Hutchinson's estimator of the trace of a symmetric operator, with its standard error.

For Rademacher probes ``z_l ∈ {−1, +1}^d`` (``E[z zᵀ] = I``), ``E[zᵀ A z] = tr A`` and

    tr A ≈ t̂ = (1/n) Σ_l z_lᵀ A z_l,    SE(t̂) = s / √n,

with ``s`` the sample standard deviation of the ``n`` values ``z_lᵀ A z_l`` (Hutchinson 1990). The variance
of one Rademacher sample is ``2 (‖A‖_F² − Σ_i A_ii²)``, the smallest among i.i.d. probes with
``E[z zᵀ] = I``. For a Hessian, ``tr H = Δf`` is the Laplacian of the loss and ``tr H / d`` the arithmetic
mean of its spectrum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from deeplandscape.analysis.linear_operator import SymmetricOperator, as_operator


@dataclass(frozen=True)
class TraceEstimate:
    """``tr A`` by Hutchinson.

    Attributes:
        trace: the estimate ``t̂``.
        std_error: ``s/√n`` (NaN for one probe).
        samples: ``(n,)`` the values ``z_lᵀ A z_l``.
        num_matvecs: operator applications used (``n``).
    """

    trace: float
    std_error: float
    samples: Tensor
    num_matvecs: int


def hutchinson_trace(
    operator: SymmetricOperator | Tensor, *, num_probes: int = 100, seed: int | torch.Generator = 0
) -> TraceEstimate:
    """``tr A ≈ (1/n) Σ_l z_lᵀ A z_l`` with Rademacher ``z_l``, and its standard error (module docstring).

    Args:
        operator: a :class:`~deeplandscape.analysis.linear_operator.SymmetricOperator` or a dense tensor.
        num_probes: ``n ≥ 1``.
        seed: seed or ``torch.Generator`` for the probes (drawn on the CPU).
    """
    op = as_operator(operator)
    if not isinstance(num_probes, int) or num_probes < 1:
        raise ValueError(f"Invalid num_probes: {num_probes}, expected an integer >= 1")
    generator = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(int(seed))
    samples = torch.empty(num_probes, dtype=torch.float64)
    for i in range(num_probes):
        z = torch.randint(0, 2, (op.dim,), generator=generator).to(dtype=op.dtype, device=op.device) * 2 - 1
        samples[i] = float(z @ op.matvec(z))
        if not math.isfinite(float(samples[i])):
            raise ValueError(f"Invalid operator: zᵀ A z = {float(samples[i])} for probe {i}; expected finite")
    err = float(samples.std() / math.sqrt(num_probes)) if num_probes > 1 else float("nan")
    return TraceEstimate(trace=float(samples.mean()), std_error=err, samples=samples, num_matvecs=num_probes)
