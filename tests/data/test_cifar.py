"""CIFAR-10 reader on generated python batches, and the GCN / ZCA preprocessing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deeplandscape import data
from deeplandscape.data import ZCA, DataNotFoundError, global_contrast_normalize, to_symmetric_unit

from ._files import write_cifar_dir


def test_read_batch_layout(tmp_path):
    written = write_cifar_dir(tmp_path / "c", per_batch=4, seed=0)
    batch = data.read_cifar_batch(tmp_path / "c" / "data_batch_2")
    raw = written["data_batch_2"][b"data"]
    assert batch.x.shape == (4, 3, 32, 32) and batch.x.dtype == torch.uint8
    # Row layout: 1024 red values, then green, then blue, each a row-major 32×32 image.
    assert batch.x[1, 1, 2, 5].item() == raw[1, 1024 + 2 * 32 + 5]
    assert batch.y.tolist() == written["data_batch_2"][b"labels"]


def test_load_cifar10_without_whitening(tmp_path):
    write_cifar_dir(tmp_path / "c", per_batch=6, seed=1)
    d = data.load("cifar10", tmp_path / "c", val_fraction=0.2, gcn=False, zca=False, seed=0)
    assert d.sizes() == (24, 6, 6) and d.input_shape == (3, 32, 32)
    assert d.train.x.min() >= 0 and d.train.x.max() <= 1


def test_load_cifar10_gcn(tmp_path):
    write_cifar_dir(tmp_path / "c", per_batch=6, seed=1)
    d = data.load("cifar10", tmp_path / "c", gcn=True, zca=False)
    flat = d.test.x.reshape(6, -1).double()
    assert torch.allclose(flat.mean(1), torch.zeros(6, dtype=torch.float64), atol=1e-4)
    assert torch.allclose(flat.std(1, unbiased=False), torch.full((6,), 55.0, dtype=torch.float64), rtol=1e-4)


@pytest.mark.slow
def test_load_cifar10_full_pipeline(tmp_path):
    write_cifar_dir(tmp_path / "c", per_batch=8, seed=2)
    d = data.load("cifar10", tmp_path / "c", val_fraction=0.25)
    assert torch.isfinite(d.train.x).all() and d.train.x.shape == (30, 3, 32, 32)


def test_missing_cifar_says_how(tmp_path, monkeypatch):
    monkeypatch.delenv("DEEPLANDSCAPE_CIFAR10", raising=False)
    with pytest.raises(DataNotFoundError, match="cifar-10-batches-py"):
        data.load("cifar10")
    (tmp_path / "c").mkdir()
    with pytest.raises(DataNotFoundError, match="data_batch_1"):
        data.load("cifar10", tmp_path / "c")


def test_zca_whitens_to_identity():
    g = torch.Generator().manual_seed(0)
    d = 6
    mixing = torch.randn(d, d, generator=g, dtype=torch.float64)
    x = torch.randn(20000, d, generator=g, dtype=torch.float64) @ mixing + 3.0
    zca = ZCA.fit(x, eps=1e-10)
    w = zca(x).double()
    cov = torch.cov(w.T, correction=0)
    assert torch.allclose(cov, torch.eye(d, dtype=torch.float64), atol=1e-5)  # exact on the fit data
    assert torch.allclose(zca.matrix, zca.matrix.T)  # ZCA (not PCA) whitening is symmetric
    fresh = torch.randn(20000, d, generator=g, dtype=torch.float64) @ mixing + 3.0
    held_out = torch.cov(zca(fresh).double().T)
    # Sample covariance of 20,000 whitened Gaussians: entries deviate from I by O(1/sqrt(n)) ≈ 0.007.
    assert (held_out - torch.eye(d, dtype=torch.float64)).abs().max() < 0.05


def test_gcn_and_unit_range():
    x = torch.rand(5, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    y = global_contrast_normalize(x, scale=1.0)
    assert torch.allclose(y.reshape(5, -1).std(1, unbiased=False), torch.ones(5), atol=1e-5)
    u = to_symmetric_unit(torch.tensor([0, 51, 255], dtype=torch.uint8), 255.0)
    assert torch.allclose(u, torch.tensor([-1.0, 51 / 127.5 - 1, 1.0]))
    with pytest.raises(ValueError, match="outside"):
        to_symmetric_unit(torch.tensor([300.0]), 255.0)
    assert np.isfinite(y.numpy()).all()
