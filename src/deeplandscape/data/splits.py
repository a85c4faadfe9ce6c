"""Fixed, disjoint, seeded train/validation/test splits and a seeded DataLoader wrapper for all data sets."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch.utils.data import DataLoader, TensorDataset


class DataNotFoundError(FileNotFoundError):
    """A data set that must be provided by the user is missing; the message says how to provide it."""


@dataclass(frozen=True)
class Split:
    """One part of a data set: inputs ``x`` (n, ...), targets ``y``: (n,) classes or (n, C) soft labels."""

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        if self.x.shape[0] != self.y.shape[0]:
            raise ValueError(f"x has {self.x.shape[0]} samples but y has {self.y.shape[0]}")

    def __len__(self) -> int:
        return self.x.shape[0]


@dataclass(frozen=True)
class DataSplits:
    """A data set as three disjoint parts plus what a model needs to know about it.

    ``input_shape`` excludes the batch dimension; ``num_classes`` is the number of outputs a classifier
    needs (the vocabulary size for character data); ``source`` says where the data came from.
    """

    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    input_shape: tuple[int, ...]
    source: str = ""
    info: dict = field(default_factory=dict, compare=False)

    def sizes(self) -> tuple[int, int, int]:
        """(train, validation, test) sample counts."""
        return len(self.train), len(self.val), len(self.test)


@dataclass(frozen=True)
class SplitIndices:
    """Disjoint index sets covering ``range(n)`` (each sorted)."""

    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor


def _check_fraction(name: str, value: float) -> float:
    if not (isinstance(value, int | float) and 0.0 <= value < 1.0):
        raise ValueError(f"{name} must lie in [0, 1), got {value!r}")
    return float(value)


def split_indices(n: int, *, val_fraction: float, test_fraction: float, seed: int) -> SplitIndices:
    """A seeded random partition of ``range(n)`` into train/validation/test.

    A permutation π drawn from ``torch.Generator().manual_seed(seed)`` is cut into
    ``n_test = ⌈n·test_fraction⌉``, ``n_val = ⌈n·val_fraction⌉`` and the remaining training indices.
    """
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    val_fraction = _check_fraction("val_fraction", val_fraction)
    test_fraction = _check_fraction("test_fraction", test_fraction)
    n_test = math.ceil(n * test_fraction)
    n_val = math.ceil(n * val_fraction)
    if n_test + n_val >= n:
        raise ValueError(
            f"val_fraction={val_fraction} and test_fraction={test_fraction} leave no training samples "
            f"of n={n}"
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    test, val, train = perm[:n_test], perm[n_test : n_test + n_val], perm[n_test + n_val :]
    return SplitIndices(train.sort().values, val.sort().values, test.sort().values)


def make_splits(
    name: str,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    num_classes: int,
    source: str = "",
    info: dict | None = None,
) -> DataSplits:
    """Cut one pool of samples into :class:`DataSplits` with :func:`split_indices`."""
    idx = split_indices(x.shape[0], val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
    return DataSplits(
        name=name,
        train=Split(x[idx.train], y[idx.train]),
        val=Split(x[idx.val], y[idx.val]),
        test=Split(x[idx.test], y[idx.test]),
        num_classes=num_classes,
        input_shape=tuple(x.shape[1:]),
        source=source,
        info=dict(info or {}),
    )


def splits_with_test(
    name: str,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    *,
    val_fraction: float,
    seed: int,
    num_classes: int,
    source: str = "",
    info: dict | None = None,
) -> DataSplits:
    """Hold out a seeded fraction of a given training set as validation; the test set is kept as given.

    AnnealSGD paper §5.2: "we use a subset of size 12% of the total training data as a validation set".
    """
    idx = split_indices(x_train.shape[0], val_fraction=val_fraction, test_fraction=0.0, seed=seed)
    return DataSplits(
        name=name,
        train=Split(x_train[idx.train], y_train[idx.train]),
        val=Split(x_train[idx.val], y_train[idx.val]),
        test=Split(x_test, y_test),
        num_classes=num_classes,
        input_shape=tuple(x_train.shape[1:]),
        source=source,
        info=dict(info or {}),
    )


def data_loader(
    split: Split, batch_size: int, *, shuffle: bool = True, seed: int = 0, drop_last: bool = False
) -> DataLoader:
    """A ``DataLoader`` over a :class:`Split`; shuffling uses its own generator seeded with ``seed``."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(
        TensorDataset(split.x, split.y),
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        drop_last=drop_last,
    )
