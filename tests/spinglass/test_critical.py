import math

import pytest
import torch

from deeplandscape.spinglass import PSpinGlass, group_minima, index, mean_cosine_distance, overlap


def test_index_of_p2_critical_points_is_their_eigenvalue_rank():
    """For p = 2 the critical points are the eigenvectors v_j of S; the j-th (ascending) has index j."""
    n = 8
    h = PSpinGlass(n, 2, seed=0, dtype=torch.float64)
    _, vecs = torch.linalg.eigh(h.couplings)
    sigma = math.sqrt(n) * vecs.T  # rows = eigenvectors on the sphere
    result = index(h, sigma)
    assert result.index.tolist() == list(range(n))
    assert torch.allclose(result.normalized_index, torch.arange(n, dtype=torch.float64) / (n - 1))
    assert result.grad_norm.max() < 1e-10
    # At v_j the Riemannian Hessian has eigenvalues 2√n(λ_i − λ_j), i ≠ j: none is zero for distinct λ.
    assert (result.near_zero == 0).all()
    wide = index(h, sigma, zero_tol=1e6)
    assert (wide.index == 0).all() and (wide.near_zero == n - 1).all()


def test_group_minima_and_overlap():
    base = torch.nn.functional.normalize(
        torch.randn(3, 20, generator=torch.Generator().manual_seed(0)), dim=1
    ) * math.sqrt(20)
    noise = 1e-3 * torch.randn(12, 20, generator=torch.Generator().manual_seed(1))
    sigma = base.repeat_interleave(4, dim=0) + noise
    energy = torch.arange(12, 0, -1).float()
    groups = group_minima(sigma, eps=0.01, energy=energy)
    assert groups.num_minima == 3
    assert groups.counts.tolist() == [4, 4, 4]
    assert groups.labels.tolist() == [2] * 4 + [1] * 4 + [0] * 4  # lowest energy opens group 0
    q = overlap(base, base)
    torch.testing.assert_close(torch.diagonal(q), torch.ones(3))
    with pytest.raises(ValueError, match="eps"):
        group_minima(sigma, eps=0.0)


def test_mean_cosine_distance_closed_form():
    x = torch.randn(7, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    unit = x / x.norm(dim=1, keepdim=True)
    cos = unit @ unit.T
    pairs = [(a, b) for a in range(7) for b in range(7) if a != b]
    expected = sum(1 - cos[a, b].item() for a, b in pairs) / len(pairs)
    assert mean_cosine_distance(x) == pytest.approx(expected, abs=1e-12)
    with pytest.raises(ValueError, match="at least 2"):
        mean_cosine_distance(x[:1])
