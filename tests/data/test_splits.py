"""Splits are disjoint, cover the data, and are reproducible from the seed."""

from __future__ import annotations

import pytest
import torch

from deeplandscape import data
from deeplandscape.data import split_indices


def test_split_indices_disjoint_covering_reproducible():
    a = split_indices(1000, val_fraction=0.1, test_fraction=0.2, seed=7)
    b = split_indices(1000, val_fraction=0.1, test_fraction=0.2, seed=7)
    c = split_indices(1000, val_fraction=0.1, test_fraction=0.2, seed=8)
    assert (len(a.train), len(a.val), len(a.test)) == (700, 100, 200)
    allidx = torch.cat([a.train, a.val, a.test])
    assert torch.equal(allidx.sort().values, torch.arange(1000))
    assert torch.equal(a.test, b.test) and torch.equal(a.val, b.val)
    assert not torch.equal(a.test, c.test)


@pytest.mark.parametrize("name", ["digits", "blobs", "chars", "mnist1d"])
def test_loaded_splits_disjoint_and_reproducible(name):
    kw = {"num_samples": 600} if name == "mnist1d" else {}
    d1, d2 = data.load(name, seed=1, **kw), data.load(name, seed=1, **kw)
    d3 = data.load(name, seed=2, **kw)
    for part in ("train", "val", "test"):
        assert torch.equal(getattr(d1, part).x, getattr(d2, part).x)
        assert torch.equal(getattr(d1, part).y, getattr(d2, part).y)
    assert not torch.equal(d1.test.x, d3.test.x)
    # Disjoint as sets of samples: no row of one split occurs in another (rows are distinct in these sets
    # except for digits, whose pool is checked through the index partition above).
    rows = {p: {tuple(r.flatten().tolist()) for r in getattr(d1, p).x} for p in ("train", "val", "test")}
    if name != "digits":
        assert not rows["train"] & rows["val"] and not rows["train"] & rows["test"]
        assert not rows["val"] & rows["test"]
    assert d1.input_shape == tuple(d1.train.x.shape[1:])


def test_digits_sizes_and_range():
    d = data.load("digits", val_fraction=0.1, test_fraction=0.2, seed=0)
    assert sum(d.sizes()) == 1797 and d.num_classes == 10
    x = torch.cat([d.train.x, d.val.x, d.test.x])
    assert x.min() == -1.0 and x.max() == 1.0
    # Pixel value 16 maps to 1, 0 to -1, 8 to 0: the values are on the grid 2k/16 - 1.
    assert torch.allclose((x + 1) * 8, ((x + 1) * 8).round(), atol=1e-5)


def test_data_loader_seeded():
    d = data.load("blobs", n=100)
    order = [torch.cat([xb for xb, _ in data.data_loader(d.train, 16, seed=s)]) for s in (0, 0, 1)]
    assert torch.equal(order[0], order[1]) and not torch.equal(order[0], order[2])
    assert torch.equal(order[0].sort(dim=0).values, d.train.x.sort(dim=0).values)
    with pytest.raises(ValueError, match="batch_size"):
        data.data_loader(d.train, 0)


def test_bad_fractions_and_names():
    with pytest.raises(ValueError, match="val_fraction"):
        split_indices(10, val_fraction=1.5, test_fraction=0.1, seed=0)
    with pytest.raises(ValueError, match="no training samples"):
        split_indices(10, val_fraction=0.5, test_fraction=0.5, seed=0)
    with pytest.raises(ValueError, match="unknown data set"):
        data.load("imagenet")
    assert set(data.available()) >= {"digits", "mnist1d", "mnist", "mnist-10x10", "cifar10", "chars"}
