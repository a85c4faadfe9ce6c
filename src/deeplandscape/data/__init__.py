"""Data sets as fixed, disjoint, seeded train/validation/test splits (:class:`DataSplits`).

``load(name, **kw)`` returns one, ``available()`` lists the names, ``data_loader(split, batch_size)`` wraps a
split in a seeded ``DataLoader``. Nothing is downloaded: embedded or generated data sets work offline, and
real MNIST / CIFAR-10 are read from files the user points at (a missing one raises
:class:`DataNotFoundError` saying how to provide it).
"""

from __future__ import annotations

from collections.abc import Callable

from .blobs import load_blobs
from .chars import ASCII96, generate_text, load_chars
from .cifar10 import load_cifar10, preprocess_gcn_zca, read_cifar_batch
from .digits import load_digits
from .mnist import load_mnist, mnist_arrays, parse_idx, read_idx, read_mnist_idx_dir, read_mnist_pickle
from .mnist_1d import load_mnist1d
from .mnist_small import downsample, load_mnist_7x7_5class, load_mnist_10x10, load_mnist_small
from .preprocess import ZCA, global_contrast_normalize, to_symmetric_unit
from .splits import (
    DataNotFoundError,
    DataSplits,
    Split,
    SplitIndices,
    data_loader,
    make_splits,
    split_indices,
    splits_with_test,
)
from .teacher import load_teacher_labelled, soft_labels

LOADERS: dict[str, Callable[..., DataSplits]] = {
    "digits": load_digits,
    "mnist1d": load_mnist1d,
    "mnist": load_mnist,
    "mnist-10x10": load_mnist_10x10,
    "mnist-7x7-5class": load_mnist_7x7_5class,
    "teacher": load_teacher_labelled,
    "blobs": load_blobs,
    "cifar10": load_cifar10,
    "chars": load_chars,
}


def available() -> list[str]:
    """Names accepted by :func:`load`."""
    return list(LOADERS)


def load(name: str, *args, **kw) -> DataSplits:
    """Load the data set ``name`` (see :func:`available`); arguments go to its loader."""
    if name not in LOADERS:
        raise ValueError(f"unknown data set name={name!r}; available: {', '.join(LOADERS)}")
    return LOADERS[name](*args, **kw)


__all__ = [
    "ASCII96",
    "LOADERS",
    "ZCA",
    "DataNotFoundError",
    "DataSplits",
    "Split",
    "SplitIndices",
    "available",
    "data_loader",
    "downsample",
    "generate_text",
    "global_contrast_normalize",
    "load",
    "load_blobs",
    "load_chars",
    "load_cifar10",
    "load_digits",
    "load_mnist",
    "load_mnist1d",
    "load_mnist_7x7_5class",
    "load_mnist_10x10",
    "load_mnist_small",
    "load_teacher_labelled",
    "make_splits",
    "mnist_arrays",
    "parse_idx",
    "preprocess_gcn_zca",
    "read_cifar_batch",
    "read_idx",
    "read_mnist_idx_dir",
    "read_mnist_pickle",
    "soft_labels",
    "split_indices",
    "splits_with_test",
    "to_symmetric_unit",
]
