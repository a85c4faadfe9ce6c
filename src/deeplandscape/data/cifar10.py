"""CIFAR-10 from the standard python-pickle batches, with global contrast normalization and ZCA whitening.

The batches (``data_batch_1`` … ``data_batch_5``, ``test_batch`` in ``cifar-10-batches-py/``) are read
from a directory the user points at (argument or ``$DEEPLANDSCAPE_CIFAR10``); nothing is downloaded.
Each batch is a pickled dict with ``data`` (n, 3072) uint8 rows (1024 red, 1024 green, 1024 blue values,
row-major 32×32) and ``labels`` (n ints).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ._pickle import load_arrays_pickle
from .preprocess import ZCA, global_contrast_normalize
from .splits import DataNotFoundError, DataSplits, Split, splits_with_test

ENV_VAR = "DEEPLANDSCAPE_CIFAR10"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
HOW_TO_PROVIDE = (
    "CIFAR-10 is not downloaded by deeplandscape. Extract the python version (cifar-10-python.tar.gz from "
    "https://www.cs.toronto.edu/~kriz/cifar.html) and pass path=<.../cifar-10-batches-py> or set "
    f"{ENV_VAR} to that directory; it must hold data_batch_1 … data_batch_5 and test_batch."
)


def read_cifar_batch(path: str | os.PathLike) -> Split:
    """One batch file as a :class:`Split` of images (n, 3, 32, 32) uint8 and labels (n,) int64."""
    d = load_arrays_pickle(Path(path).read_bytes())
    if not isinstance(d, dict):
        raise ValueError(f"{path}: expected a pickled dict, got {type(d).__name__}")
    d = {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}
    if "data" not in d or "labels" not in d:
        raise ValueError(f"{path}: batch dict lacks 'data' or 'labels' (keys: {sorted(d)})")
    data = np.asarray(d["data"], dtype=np.uint8)
    labels = np.asarray(d["labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or labels.shape != (data.shape[0],):
        raise ValueError(f"{path}: data {data.shape} / labels {labels.shape}; expected (n, 3072) and (n,)")
    return Split(torch.as_tensor(data.reshape(-1, 3, 32, 32)), torch.as_tensor(labels))


def load_cifar10(
    path: str | os.PathLike | None = None,
    *,
    val_fraction: float = 0.1,
    seed: int = 0,
    gcn: bool = True,
    gcn_scale: float = 55.0,
    zca: bool = True,
    zca_eps: float = 1e-2,
) -> DataSplits:
    """CIFAR-10 as (n, 3, 32, 32) float32 with int64 labels, preprocessed as the Thesis §3.3.3 states:
    global contrast normalization then ZCA whitening (Goodfellow et al., 2013), ZCA fitted on the
    training split only. A seeded ``val_fraction`` of the 50,000 training images is held out.
    Without ``gcn``/``zca`` pixels are mapped to [0, 1].
    """
    raw = path if path is not None else os.environ.get(ENV_VAR)
    if not raw:
        raise DataNotFoundError(f"CIFAR-10 was requested but no path was given. {HOW_TO_PROVIDE}")
    root = Path(raw).expanduser()
    missing = [b for b in (*TRAIN_BATCHES, TEST_BATCH) if not (root / b).is_file()]
    if missing:
        raise DataNotFoundError(f"CIFAR-10 directory {root} lacks {', '.join(missing)}. {HOW_TO_PROVIDE}")
    parts = [read_cifar_batch(root / b) for b in TRAIN_BATCHES]
    x_train = torch.cat([p.x for p in parts]).to(torch.float32) / 255.0
    y_train = torch.cat([p.y for p in parts])
    test = read_cifar_batch(root / TEST_BATCH)
    x_test, y_test = test.x.to(torch.float32) / 255.0, test.y
    splits = splits_with_test(
        "cifar10", x_train, y_train, x_test, y_test, val_fraction=val_fraction, seed=seed, num_classes=10,
        source=str(root), info={"gcn": gcn, "zca": zca},
    )  # fmt: skip
    return preprocess_gcn_zca(splits, gcn=gcn, gcn_scale=gcn_scale, zca=zca, zca_eps=zca_eps)


def preprocess_gcn_zca(
    splits: DataSplits, *, gcn: bool = True, gcn_scale: float = 55.0, zca: bool = True, zca_eps: float = 1e-2
) -> DataSplits:
    """Apply GCN to every split and a ZCA map fitted on the training split to all three."""
    from dataclasses import replace

    parts = {"train": splits.train, "val": splits.val, "test": splits.test}
    if gcn:
        parts = {k: Split(global_contrast_normalize(s.x, scale=gcn_scale), s.y) for k, s in parts.items()}
    if zca:
        whiten = ZCA.fit(parts["train"].x, eps=zca_eps)
        parts = {k: Split(whiten(s.x), s.y) for k, s in parts.items()}
    return replace(splits, **parts)
