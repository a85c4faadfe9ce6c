"""scikit-learn's handwritten digits (8×8, 1,797 images shipped inside scikit-learn; no download)."""

from __future__ import annotations

import torch

from .preprocess import to_symmetric_unit
from .splits import DataSplits, make_splits


def load_digits(*, val_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0) -> DataSplits:
    """The 8×8 digits as (n, 1, 8, 8) float32 images in [−1, 1] (pixel values 0…16 mapped by
    ``2x/16 − 1``, the MNIST convention of the AnnealSGD paper §5.2) with int64 labels 0…9, split by
    :func:`~deeplandscape.data.splits.split_indices`.
    """
    from sklearn.datasets import load_digits as _sk_load_digits

    bunch = _sk_load_digits()
    x = to_symmetric_unit(torch.as_tensor(bunch.images, dtype=torch.float32), 16.0).unsqueeze(1)
    y = torch.as_tensor(bunch.target, dtype=torch.long)
    return make_splits(
        "digits", x, y, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed, num_classes=10,
        source="sklearn.datasets.load_digits",
    )  # fmt: skip
