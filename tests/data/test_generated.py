"""Generated and embedded data sets: MNIST-1D, blobs, the character corpus, teacher-labelled data."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

from deeplandscape import data, nets
from deeplandscape.data import DataNotFoundError


def test_mnist1d_generated_and_global_state_kept():
    # make_dataset seeds numpy's and Python's global generators; the loader must restore them.
    np.random.seed(123)  # noqa: NPY002
    random.seed(123)
    before_np, before_py = np.random.rand(), random.random()  # noqa: NPY002
    np.random.seed(123)  # noqa: NPY002
    random.seed(123)
    d = data.load("mnist1d", num_samples=500, val_fraction=0.1, seed=5)
    assert np.random.rand() == before_np and random.random() == before_py  # noqa: NPY002
    assert d.sizes() == (360, 40, 100) and d.input_shape == (40,)
    assert set(d.train.y.tolist()) == set(range(10))


def test_blobs_statistics():
    d = data.load("blobs", n=4000, dim=3, separation=4.0, std=0.5, seed=0)
    x = torch.cat([d.train.x, d.val.x, d.test.x])
    y = torch.cat([d.train.y, d.val.y, d.test.y])
    for label, sign in ((1, 1.0), (0, -1.0)):
        xs = x[y == label]
        # Mean of 2000 N(±2, 0.25) draws: standard error 0.5/sqrt(2000) ≈ 0.011; 5-sigma band.
        assert abs(xs[:, 0].mean().item() - sign * 2.0) < 5 * 0.5 / len(xs) ** 0.5
        assert abs(xs[:, 1:].std().item() - 0.5) < 0.03
    with pytest.raises(ValueError, match="std"):
        data.load("blobs", std=0.0)


def test_char_corpus_generated():
    text = data.generate_text(lines=256, line_length=32, seed=0)
    lines = text.split("\n")[:-1]
    assert len(lines) == 256 and all(len(line) == 32 for line in lines)
    assert set(text) <= set(data.ASCII96) and len(data.ASCII96) == 96
    d = data.load("chars", seq_len=32, seed=0)
    assert d.num_classes == 96 and d.input_shape == (32,)
    # Targets are the inputs shifted by one character.
    assert torch.equal(d.train.y[:, :-1], d.train.x[:, 1:])
    decoded = "".join(d.info["vocab"][i] for i in d.train.x[0].tolist())
    assert decoded in text


def test_char_corpus_from_file(tmp_path):
    (tmp_path / "book.txt").write_text("the quick brown fox jumps over the lazy dog\n" * 20, encoding="utf-8")
    d = data.load("chars", tmp_path / "book.txt", seq_len=10)
    assert d.info["vocab"] == "".join(sorted(set("the quick brown fox jumps over the lazy dog\n")))
    assert sum(d.sizes()) == (20 * 44 - 1) // 10
    with pytest.raises(DataNotFoundError, match="plain-text"):
        data.load("chars", tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="outside the vocabulary"):
        data.load("chars", text="héllo world " * 10, vocab=data.ASCII96)


def test_teacher_soft_labels_match_softmax():
    teacher = nets.get("tiny-fc", seed=0)
    teacher.train()
    x = torch.randn(200, 1, 7, 7, generator=torch.Generator().manual_seed(0))
    d = data.load("teacher", teacher=teacher, x=x, seed=0, temperature=2.0)
    assert teacher.training  # mode restored
    # Independent truth: the teacher's eval-mode forward written out in float64.
    lin1, bn, lin2 = teacher.net[1], teacher.net[2], teacher.net[4]
    flat = x.reshape(200, -1).double()
    h = flat @ lin1.weight.double().T + lin1.bias.double()
    h = (h - bn.running_mean.double()) / torch.sqrt(bn.running_var.double() + bn.eps)
    h = torch.relu(h * bn.weight.double() + bn.bias.double())
    q = torch.softmax((h @ lin2.weight.double().T + lin2.bias.double()) / 2.0, dim=1)
    idx = data.split_indices(200, val_fraction=0.1, test_fraction=0.2, seed=0)
    assert torch.allclose(d.test.y.double(), q[idx.test], atol=1e-6)
    assert d.num_classes == 5 and torch.allclose(d.train.y.sum(1), torch.ones(len(d.train)), atol=1e-6)
    with pytest.raises(ValueError, match="teacher="):
        data.load("teacher")
    with pytest.raises(ValueError, match="temperature"):
        data.soft_labels(nn.Identity(), x, temperature=0.0)
