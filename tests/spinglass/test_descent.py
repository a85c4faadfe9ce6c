import math

import pytest
import torch

from deeplandscape.spinglass import (
    PSpinGlass,
    SplitPSpinGlass,
    descend,
    group_minima,
    index,
    mean_cosine_distance,
)
from deeplandscape.spinglass.geometry import blocks


def test_p2_minima_and_maxima_are_extreme_eigenvectors():
    """For p = 2, H(σ) = n^{-1/2} σᵀSσ: GD ends at ±(eigenvector of the smallest eigenvalue of S) with
    H = √n λ_min, and GD on −H at the largest one with H = √n λ_max (all other eigenvectors are saddles)."""
    n = 16
    h = PSpinGlass(n, 2, seed=3, dtype=torch.float64)
    flipped = PSpinGlass(n, 2, seed=3, coupling=-1.0, dtype=torch.float64)
    evals, evecs = torch.linalg.eigh(h.couplings)
    starts = h.random_configurations(20, seed=4)
    low = descend(h, starts, lr=0.2, tol=1e-9, max_steps=50_000)
    high = descend(flipped, starts, lr=0.2, tol=1e-9, max_steps=50_000)
    assert low.converged.all() and high.converged.all()
    torch.testing.assert_close(
        low.energy, torch.full((20,), math.sqrt(n) * evals[0].item(), dtype=torch.float64)
    )
    torch.testing.assert_close(
        -high.energy, torch.full((20,), math.sqrt(n) * evals[-1].item(), dtype=torch.float64)
    )
    for result, vec in ((low, evecs[:, 0]), (high, evecs[:, -1])):
        cos = (result.sigma @ vec).abs() / math.sqrt(n)
        assert (cos > 1 - 1e-8).all()


def test_large_field_leaves_a_single_minimum():
    """ν ≫ ν_c = √3: every start reaches the same point, aligned with h (overlap ≈ 1)."""
    h = PSpinGlass(40, 3, field_std=10.0, seed=1)
    result = descend(h, h.random_configurations(64, seed=2), tol=1e-4)
    assert result.converged.all()
    groups = group_minima(result.sigma, eps=1e-3)
    assert groups.num_minima == 1
    assert mean_cosine_distance(result.sigma) < 1e-4
    alignment = (result.sigma[0] @ h.field) / (h.field.norm() * math.sqrt(40))
    assert alignment > 0.98


def test_no_field_gives_many_minima_at_the_floor():
    h = PSpinGlass(50, 3, seed=5)
    result = descend(h, h.random_configurations(100, seed=6))
    assert result.converged.all()
    assert index(h, result.sigma).is_minimum.all()
    assert group_minima(result.sigma, energy=result.energy).num_minima > 10
    e = result.energy_per_spin
    assert (e > -1.657 - 0.05).all() and e.mean() < -1.4


def test_stopped_configurations_cost_nothing_and_steps_are_reported():
    h = PSpinGlass(30, 3, seed=0)
    starts = h.random_configurations(16, seed=1)
    result = descend(h, starts, max_steps=10_000)
    assert result.converged.all()
    assert result.gradient_evaluations == int((result.steps + 1).sum())
    # A batch of one follows exactly the same path as that configuration inside the batch.
    alone = descend(h, starts[3:4], max_steps=10_000)
    assert alone.steps.item() == result.steps[3].item()
    torch.testing.assert_close(alone.sigma[0], result.sigma[3], rtol=1e-4, atol=1e-4)


def test_results_are_on_the_sphere_and_trajectory_is_monotone_for_small_steps():
    h = PSpinGlass(30, 3, seed=2, dtype=torch.float64)
    result = descend(h, h.random_configurations(8, seed=3), lr=0.05, record_every=10, max_steps=3000)
    assert torch.allclose(result.sigma.norm(dim=1), torch.full((8,), math.sqrt(30), dtype=torch.float64))
    traj = result.trajectory
    assert traj.shape[1] == 8 and result.trajectory_steps[0] == 0
    assert (traj[1:] - traj[:-1] <= 1e-12).all()
    torch.testing.assert_close(traj[-1], result.energy_per_spin)


def test_sgd_on_a_split_glass_reaches_the_floor_like_gd():
    """Sagun et al. Fig. 7: SGD with one summand per step reaches the same band as GD."""
    parts = 4
    h = SplitPSpinGlass(30, 3, parts=parts, seed=4)
    starts = h.random_configurations(16, seed=5)
    gd = descend(h, starts, lr=0.1, max_steps=1000)
    sgd = descend(h, starts, lr=0.1, method="sgd", max_steps=1000 * parts)
    assert abs(sgd.energy_per_spin.mean() - gd.energy_per_spin.mean()) < 0.05
    assert sgd.energy_per_spin.mean() < -1.4
    rnd = descend(h, starts, lr=0.1, method="sgd", order="random", seed=0, max_steps=50)
    again = descend(h, starts, lr=0.1, method="sgd", order="random", seed=0, max_steps=50)
    assert torch.equal(rnd.sigma, again.sigma)


def test_tripartite_blocks_stay_on_their_spheres():
    from deeplandscape.spinglass import TripartiteSpinGlass

    h = TripartiteSpinGlass(10, seed=0)
    result = descend(h, h.random_configurations(4, seed=1), max_steps=500)
    norms = blocks(result.sigma, 3).norm(dim=-1)
    assert torch.allclose(norms, torch.full_like(norms, math.sqrt(10)), rtol=1e-5)


def test_bad_arguments_and_divergence():
    h = PSpinGlass(10, 3, seed=0)
    s = h.random_configurations(2, seed=0)
    for kwargs, match in [
        ({"lr": 0.0}, "Invalid lr"),
        ({"lr": float("inf")}, "Invalid lr"),
        ({"tol": -1.0}, "Invalid tol"),
        ({"max_steps": 0}, "Invalid max_steps"),
        ({"method": "adam"}, "Invalid method"),
        ({"method": "sgd"}, "SplitPSpinGlass"),
        ({"order": "sorted"}, "Invalid order"),
    ]:
        with pytest.raises(ValueError, match=match):
            descend(h, s, **kwargs)
    with pytest.raises(ValueError, match="sigma0"):
        descend(h, 3 * s)
    with pytest.raises(FloatingPointError, match="step"):
        descend(h, s, lr=1e38, max_steps=10)
