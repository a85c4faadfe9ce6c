"""Writers for small files in the standard MNIST (IDX, pickle) and CIFAR-10 (python batch) layouts."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding of a uint8 array: 0, 0, type 0x08, ndim, big-endian int32 sizes, row-major values."""
    assert array.dtype == np.uint8
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}i", *array.shape)
    return header + array.tobytes()


def write_idx_dir(directory: Path, *, n_train: int, n_test: int, seed: int, gz: bool, dotted: bool = False):
    """Four random IDX files; returns the arrays written."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    arrays["train-images-idx3-ubyte"][0] = 0
    arrays["train-images-idx3-ubyte"][1] = 255
    directory.mkdir(parents=True, exist_ok=True)
    for stem, a in arrays.items():
        name = stem.replace("-idx", ".idx") if dotted else stem
        data = idx_bytes(a)
        if gz:
            (directory / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (directory / name).write_bytes(data)
    return arrays


def mnist_pickle_triple(sizes: tuple[int, int, int], seed: int):
    rng = np.random.default_rng(seed)
    return tuple(
        (rng.integers(0, 256, (n, 784)).astype(np.float32) / 256.0, rng.integers(0, 10, n).astype(np.int64))
        for n in sizes
    )


def write_mnist_pickle(path: Path, sizes: tuple[int, int, int], seed: int):
    triple = mnist_pickle_triple(sizes, seed)
    path.write_bytes(gzip.compress(pickle.dumps(triple, protocol=2)))
    return triple


def write_cifar_dir(directory: Path, *, per_batch: int, seed: int):
    """data_batch_1..5 and test_batch as pickled dicts with bytes keys, like the real files."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        d = {
            b"batch_label": name.encode(),
            b"labels": rng.integers(0, 10, per_batch).tolist(),
            b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
            b"filenames": [f"img{i}.png".encode() for i in range(per_batch)],
        }
        (directory / name).write_bytes(pickle.dumps(d, protocol=2))
        written[name] = d
    return written
