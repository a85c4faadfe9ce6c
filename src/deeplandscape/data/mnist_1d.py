"""MNIST-1D generated procedurally by the ``mnist1d`` package (``mnist1d.data.make_dataset``; no download)."""

from __future__ import annotations

import random

import numpy as np
import torch

from .splits import DataSplits, splits_with_test


def load_mnist1d(
    *, num_samples: int = 5000, val_fraction: float = 0.1, seed: int = 42, shuffle_seq: bool = False
) -> DataSplits:
    """MNIST-1D: 40-sample 1-D signals of the ten digit templates, translated, scaled, sheared and noised.

    Uses only the package's procedural path ``make_dataset`` (never ``get_dataset``, which may download).
    Its own 80/20 train/test split is kept (test = the last 20%); ``val_fraction`` of the training part is
    held out with ``seed``. ``make_dataset`` seeds numpy's and Python's global RNGs, so their states are
    saved and restored around the call. Inputs are (n, 40) float32 (standardized by the package), labels
    int64 0…9.
    """
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as err:
        raise ImportError(
            "MNIST-1D needs the 'mnist1d' package: pip install mnist1d (it generates the data locally)"
        ) from err
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 20:
        raise ValueError(f"num_samples must be an integer >= 20, got {num_samples!r}")
    args = get_dataset_args()
    args.num_samples = num_samples
    args.seed = seed
    args.shuffle_seq = shuffle_seq
    np_state, py_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    try:
        d = make_dataset(args)
    finally:
        np.random.set_state(np_state)  # noqa: NPY002
        random.setstate(py_state)
    return splits_with_test(
        "mnist1d",
        torch.as_tensor(d["x"], dtype=torch.float32),
        torch.as_tensor(d["y"], dtype=torch.long),
        torch.as_tensor(d["x_test"], dtype=torch.float32),
        torch.as_tensor(d["y_test"], dtype=torch.long),
        val_fraction=val_fraction,
        seed=seed,
        num_classes=10,
        source="mnist1d.data.make_dataset",
    )
