"""Splitting a data set between Parle's replicas (Thesis §5.5).

Each replica x^a trains on its own Ξ^a with Ξ = ⋃_a Ξ^a, all Ξ^a of the same size and every sample in at
least one of them. The default is a disjoint split (each sample in exactly one Ξ^a, sizes differing by at
most one); ``fraction`` > 1/n gives the overlapping splits of §5.5 (e.g. n = 3 replicas with 50% each).
"""

from __future__ import annotations

import math
from collections.abc import Sized

import torch
from torch.utils.data import Dataset, Subset

__all__ = ["split_dataset"]


def split_dataset(dataset: Dataset, n: int, *, fraction: float | None = None, seed: int = 0) -> list[Subset]:
    """Ξ^1, …, Ξ^n for n replicas (Thesis §5.5): index a is replica a's subset (e.g. its process rank).

    A seeded permutation π of the N indices is cut into n windows starting at ⌊aN/n⌋: of consecutive
    length (⌊(a+1)N/n⌋ − ⌊aN/n⌋) when ``fraction`` is ``None`` (a disjoint partition), or of length
    ⌈fraction·N⌉ taken cyclically when ``fraction`` ∈ [1/n, 1] (windows overlap and still cover Ξ).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"Invalid n: {n} (must be an integer ≥ 1)")
    if not isinstance(dataset, Sized):
        raise ValueError(f"Invalid dataset: {type(dataset).__name__} has no len()")
    size = len(dataset)
    if size < n:
        raise ValueError(f"Invalid n: {n} (the data set has only {size} samples)")
    if fraction is not None and not (1.0 / n <= fraction <= 1.0):
        raise ValueError(f"Invalid fraction: {fraction} (allowed range [1/n, 1] = [{1.0 / n:g}, 1])")
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(size, generator=gen).tolist()
    starts = [a * size // n for a in range(n + 1)]
    if fraction is None:
        return [Subset(dataset, perm[starts[a] : starts[a + 1]]) for a in range(n)]
    m = math.ceil(fraction * size)
    return [Subset(dataset, [perm[(starts[a] + i) % size] for i in range(m)]) for a in range(n)]
