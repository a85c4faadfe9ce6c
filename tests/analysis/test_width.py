import math

import numpy as np
import pytest
import torch
from torch import nn

from deeplandscape.analysis.width import (
    local_entropy,
    local_entropy_energy,
    robust_width,
    robust_width_energy,
    robust_width_from_estimates,
)

from ._unchanged import assert_unchanged, busy_data, busy_model, snapshot


def _quadratic(d: int = 4, seed: int = 0):
    """f(y) = ½ (y − a)ᵀ A (y − a) + c with A ≻ 0: the Gaussian integral of f_γ has a closed form."""
    g = torch.Generator().manual_seed(seed)
    q = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))[0]
    lam = torch.logspace(0.5, -1, d, dtype=torch.float64)
    a = torch.randn(d, generator=g, dtype=torch.float64)
    A = q @ torch.diag(lam) @ q.T
    c = 0.3
    return (lambda y: 0.5 * (y - a) @ A @ (y - a) + c), A, a, c, lam


def _closed_form(A, a, c, x, gamma, beta):
    # −(1/β) log E_{y~N(x, γ/β I)} e^{−β f(y)} = c + (1/2β) log det(I + γA) + ½ (x−a)ᵀ A (I + γA)⁻¹ (x−a)
    eye = torch.eye(A.shape[0], dtype=torch.float64)
    m = A @ torch.linalg.inv(eye + gamma * A)
    return float(c + torch.logdet(eye + gamma * A) / (2 * beta) + 0.5 * (x - a) @ m @ (x - a))


@pytest.mark.parametrize(("gamma", "beta"), [(0.2, 1.0), (1.0, 2.0)])
def test_local_entropy_matches_gaussian_closed_form(gamma, beta):
    f, A, a, c, _ = _quadratic()
    x = a + 0.4 * torch.ones(4, dtype=torch.float64)
    result = local_entropy_energy(
        f, x, gamma, beta=beta, n_chains=8, n_steps=150, burnin=60, n_nodes=6, seed=3
    )
    exact = _closed_form(A, a, c, x, gamma, beta)
    assert abs(result.value - exact) < 4 * result.standard_error
    assert result.standard_error < 0.05 * abs(exact)
    assert 0.3 < result.acceptance < 0.9
    assert result.loss == pytest.approx(float(f(x)))
    assert result.excess == pytest.approx(result.value - result.loss)
    d = 4
    assert result.value_def33 == pytest.approx(
        result.value - d / (2 * beta) * math.log(2 * math.pi * gamma / beta)
    )
    assert result.n_gradients == 8 * 6 * (60 + 150 + 1) + 1


def test_local_entropy_is_reproducible_and_seeded():
    f, _, a, _, _ = _quadratic()
    kwargs = {"n_chains": 2, "n_steps": 20, "burnin": 5, "n_nodes": 2}
    r1 = local_entropy_energy(f, a, 0.5, seed=1, **kwargs)
    r2 = local_entropy_energy(f, a, 0.5, seed=1, **kwargs)
    r3 = local_entropy_energy(f, a, 0.5, seed=2, **kwargs)
    assert r1.value == r2.value
    assert r1.value != r3.value
    looped = local_entropy_energy(f, a, 0.5, seed=1, vectorize=False, **kwargs)
    assert looped.value == pytest.approx(r1.value, rel=1e-12)  # same random numbers, chain by chain


def test_energy_that_vmap_cannot_handle_falls_back_to_the_loop():
    f, _, a, _, _ = _quadratic()

    def energy(y):
        if float(y.detach().sum()) > 1e9:  # data-dependent control flow: not vmap-able
            return y.sum()
        return f(y)

    kwargs = {"n_chains": 2, "n_steps": 20, "burnin": 5, "n_nodes": 2, "seed": 4}
    fallback = local_entropy_energy(energy, a, 0.5, **kwargs)
    assert fallback.value == pytest.approx(local_entropy_energy(f, a, 0.5, **kwargs).value, rel=1e-12)


def test_robust_width_brackets_the_closed_form():
    f, _, a, _, lam = _quadratic()
    # at the minimum, f_γ − f = (1/2) Σ log(1 + γ λ_i): solve = ε for γ* by bisection
    epsilon = 0.3
    lo, hi = 0.0, 100.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if 0.5 * float(torch.log1p(mid * lam).sum()) <= epsilon else (lo, mid)
    gamma_true = lo
    grid = gamma_true * np.array([0.25, 0.5, 1 / 1.5, 1.5, 2.0, 4.0])
    width = robust_width_energy(f, a, epsilon, grid, n_chains=4, n_steps=100, burnin=40, n_nodes=4, seed=0)
    assert width.gamma_star == pytest.approx(grid[2])
    assert width.upper == pytest.approx(grid[3])
    assert width.gamma_star < gamma_true < width.upper
    assert len(width.gammas) == 4  # the scan stops at the first exceedance
    exact = 0.5 * np.log1p(np.outer(width.gammas, lam.numpy())).sum(axis=1)
    assert np.all(np.abs(width.excess - exact) < 4 * width.standard_errors + 1e-12)


def test_local_entropy_of_a_model_and_the_model_is_unchanged():
    model, data = busy_model(), busy_data()
    before = snapshot(model)
    result = local_entropy(
        model, nn.CrossEntropyLoss(), data, 1e-3, n_chains=2, n_steps=10, burnin=5, n_nodes=2
    )
    assert_unchanged(model, before)
    assert math.isfinite(result.value) and result.standard_error >= 0
    width = robust_width(
        model, nn.CrossEntropyLoss(), data, 1e-2, [1e-4], n_chains=2, n_steps=5, burnin=2, n_nodes=1
    )
    assert_unchanged(model, before)
    assert width.gammas.tolist() == [1e-4]


def test_width_rejects_bad_input():
    f, _, a, _, _ = _quadratic()
    with pytest.raises(ValueError, match="gamma: -1"):
        local_entropy_energy(f, a, -1.0)
    with pytest.raises(ValueError, match="beta"):
        local_entropy_energy(f, a, 1.0, beta=float("inf"))
    with pytest.raises(ValueError, match="n_chains: 1"):
        local_entropy_energy(f, a, 1.0, n_chains=1)
    with pytest.raises(ValueError, match="x: shape"):
        local_entropy_energy(f, a[None], 1.0)
    with pytest.raises(ValueError, match="energy: returned shape"):
        local_entropy_energy(lambda y: y, a, 1.0)
    with pytest.raises(ValueError, match="Non-finite energy"):
        local_entropy_energy(lambda y: y.sum() / 0.0, a, 1.0)
    with pytest.raises(ValueError, match="gammas"):
        robust_width_energy(f, a, 0.1, [1.0, 0.5])
    with pytest.raises(ValueError, match="epsilon"):
        robust_width_energy(f, a, 0.0)
    with pytest.raises(ValueError, match="estimates: gammas"):
        robust_width_from_estimates([], 0.1)
    with pytest.raises(ValueError, match="no trainable"):
        local_entropy(nn.ReLU(), nn.MSELoss(), (torch.zeros(2, 1), torch.zeros(2, 1)), 1.0)
