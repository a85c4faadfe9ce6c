"""Two Gaussian blobs: a linearly separable toy classification problem generated from a seed."""

from __future__ import annotations

import torch

from .splits import DataSplits, make_splits


def load_blobs(
    *,
    n: int = 1000,
    dim: int = 2,
    separation: float = 4.0,
    std: float = 1.0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> DataSplits:
    """Two classes of ⌊n/2⌋ and ⌈n/2⌉ points, ``x ~ N(±(separation/2)·e₁, std²·I_dim)``, labels 1 for the
    + blob and 0 for the − blob; the Bayes error is ``Φ(−separation/(2·std))``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 4:
        raise ValueError(f"n must be an integer >= 4, got {n!r}")
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"dim must be a positive integer, got {dim!r}")
    if not std > 0:
        raise ValueError(f"std must be positive, got {std}")
    g = torch.Generator().manual_seed(seed)
    y = torch.zeros(n, dtype=torch.long)
    y[n // 2 :] = 1
    mean = torch.zeros(n, dim)
    mean[:, 0] = (y.to(torch.float32) * 2 - 1) * separation / 2
    x = mean + std * torch.randn(n, dim, generator=g)
    return make_splits(
        "blobs", x, y, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed, num_classes=2,
        source="generated", info={"separation": separation, "std": std},
    )  # fmt: skip
