"""Sparse gradients (``nn.Embedding(sparse=True)``) are supported by every optimizer.

Truth: the same optimizer on the same model with a dense embedding (``sparse=False``), whose gradient is
the sparse one written out. The two runs must agree to rounding (1e-12 in float64: a sparse gradient is
added into the dense update, which may round differently from adding its dense form); the NaN/Inf screen
must still catch a non-finite sparse gradient before anything changes.
"""

from __future__ import annotations

import math

import pytest
import torch

import deeplandscape.optim as dlo

from ._problems import (
    EVERY,
    WRAPPERS,
    build_any,
    embedding_loss,
    embedding_model,
    take_steps,
    weights_and_reference,
)

TOL = 1e-12


def _max_diff(a, b):
    return max((x - y).abs().max().item() for x, y in zip(a, b, strict=True))


#: SAM hands the sparse gradient at w + ε̂ to its base optimizer, and Adam takes none.
REFUSED = {"sam:adam"}


@pytest.mark.parametrize("foreach", [None, True, False])
@pytest.mark.parametrize("name", [n for n in EVERY if n not in REFUSED])
def test_sparse_gradients_give_the_dense_run(name, foreach):
    runs = []
    for sparse in (False, True):
        model = embedding_model(sparse=sparse)
        opt = build_any(name, model.parameters(), foreach=foreach)
        take_steps(model, opt, 0, 10)
        runs.append(weights_and_reference(model, opt))
    assert model["emb"].weight.grad.is_sparse
    assert _max_diff(*runs) <= TOL


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_a_base_optimizer_that_refuses_sparse_gradients_is_named_with_the_parameter(name):
    model = embedding_model(sparse=True)
    opt = build_any(name, model.parameters())
    with pytest.raises(
        RuntimeError, match=r"SAM: its base optimizer Adam .* parameter 0 \(shape \(10, 4\)\)"
    ):
        take_steps(model, opt, 0, 1)


def test_a_dense_perturbed_gradient_refused_by_a_sparse_base_is_named_with_the_parameter():
    model = embedding_model(sparse=True)
    opt = dlo.AnnealSGD([model["emb"].weight], torch.optim.SparseAdam, J=0.01, p=3, seed=0)
    with pytest.raises(RuntimeError, match=r"AnnealSGD: its base optimizer SparseAdam .* parameter 0"):
        take_steps(model, opt, 0, 1)


@pytest.mark.parametrize("wrapper", WRAPPERS)
def test_a_wrapper_without_perturbation_passes_sparse_gradients_to_its_base(wrapper):
    """AnnealSGD with J = 0, GradientNoise with η = 0, SAM with ρ = 0 are exactly ``SparseAdam`` (which
    takes sparse gradients only)."""
    off = {
        "anneal-sgd": dict(J=0.0, p=3, seed=0),
        "gradient-noise": dict(eta=0.0, seed=0),
        "sam": dict(rho=0.0),
    }
    runs = []
    for wrapped in (True, False):
        model = embedding_model(sparse=True)
        emb = [model["emb"].weight]
        opt = (
            dlo.get(wrapper)(emb, torch.optim.SparseAdam, lr=0.05, **off[wrapper])
            if wrapped
            else torch.optim.SparseAdam(emb, lr=0.05)
        )
        take_steps(model, opt, 0, 6)
        runs.append([model["emb"].weight.detach().clone()])
    assert _max_diff(*runs) == 0.0


@pytest.mark.parametrize("name", [n for n in EVERY if n not in REFUSED])
def test_non_finite_sparse_gradient_raises_before_anything_changes(name):
    model = embedding_model(sparse=True)
    opt = build_any(name, model.parameters())
    take_steps(model, opt, 0, 2)
    before = weights_and_reference(model, opt)
    opt.zero_grad()
    embedding_loss(model, 2).backward()
    grad = model["emb"].weight.grad
    values = grad._values().index_fill(1, torch.tensor([0]), math.nan)
    model["emb"].weight.grad = torch.sparse_coo_tensor(
        grad._indices(), values, grad.shape, check_invariants=True
    )
    with pytest.raises(FloatingPointError, match=r"NaN|nan"):
        if isinstance(opt, dlo.SAM):
            opt.step(lambda: None)
        else:
            opt.step()
    assert all(torch.equal(a, b) for a, b in zip(before, weights_and_reference(model, opt), strict=True))
