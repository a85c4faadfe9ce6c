"""Estimates of the experiments' largest allocations, checked before a run starts (``Experiment.memory``).

Each function returns bytes, counted from the code that allocates (the factors are stated). They are meant
to refuse sizes that cannot fit in memory before anything is written, not to budget a run to the byte.
Sizes too large for a float give ``inf``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

FLOAT32, FLOAT64 = 4, 8


def _power(base: float, exponent: float) -> float:
    """``base ** exponent`` as a float, ``inf`` instead of an overflow."""
    if base <= 0:
        return 0.0
    log = exponent * math.log(base)
    return math.inf if log > 700 else math.exp(log)


def pspin_couplings(n: int, p: int, itemsize: int = FLOAT32, parts: int = 1) -> float:
    """Peak of building and using ``PSpinGlass(n, p)`` (``SplitPSpinGlass`` with ``parts``): the n^p Gaussian
    disorder and its symmetrized copy while one is drawn, the packed couplings of every part and of their
    sum (n·C(n+p−2, p−1) numbers each, about n^p/(p−1)!), one unpacked S when Hessians are taken
    (``contract_matrix``), and the int64 index arrays of the packing (n^{p−1} tuples of p − 1 indices,
    sorted, and the lookup)."""
    full = _power(n, p)
    columns = math.lgamma(n + p - 1) - math.lgamma(p) - math.lgamma(n)  # log C(n + p − 2, p − 1)
    packed = n * math.exp(columns) if full < math.inf else full
    indices = FLOAT64 * (p + 1) * _power(n, p - 1)
    return itemsize * (3 * full + (parts + 1) * packed) + indices


def configurations(count: int, n: int, itemsize: int = FLOAT32, copies: int = 16) -> float:
    """``count`` configurations of ``n`` numbers in batched descent: the starts, the iterate, the final
    points, the gradient, its projection, the step and the retraction, the transposed batch and the
    contraction's output, then the saved endpoints and their float64 copies (about sixteen copies: measured
    223 MB of peak memory above the imports for floor with n = 20, 200,000 runs, against 256 MB here)."""
    return float(copies) * count * n * itemsize


def batched_hessians(count: int, n: int, itemsize: int = FLOAT64) -> float:
    """``count`` n × n Hessians at once (the index of endpoints, Newton steps): the matrices, their
    projection to the tangent space and the eigensolver's copy."""
    return 3.0 * count * n * n * itemsize


def dense_hessian(d: int, itemsize: int = FLOAT32) -> float:
    """The dense Hessian of ``d`` parameters: the identity, the d Hessian–vector products, their transpose,
    the symmetrized matrix and the eigensolver's copy (5·d² numbers)."""
    return 5.0 * d * d * itemsize


def parameter_count(build: Callable[[], nn.Module]) -> int:
    """The number of parameters of the network ``build()`` makes, built on the meta device (no memory)."""
    with torch.device("meta"):
        return sum(p.numel() for p in build().parameters())
