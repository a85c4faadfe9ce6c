import math

import pytest
import torch

from deeplandscape.spinglass import PSpinGlass, SplitPSpinGlass
from deeplandscape.spinglass.geometry import project_tangent, retract


def _autograd_energy_grad(h, sigma):
    x = sigma.clone().requires_grad_(True)
    return torch.autograd.grad(h.energy(x).sum(), x)[0]


@pytest.mark.parametrize("p", [2, 3, 4])
@pytest.mark.parametrize("field_std", [0.0, 0.7])
def test_grad_and_hessian_match_autograd_float64(p, field_std):
    h = PSpinGlass(7, p, coupling=1.3, field_std=field_std, seed=1, dtype=torch.float64)
    sigma = h.random_configurations(5, seed=2)
    torch.testing.assert_close(h.grad(sigma), _autograd_energy_grad(h, sigma), rtol=1e-12, atol=1e-12)
    dense = torch.stack([torch.func.hessian(lambda s: h._energy_and_grad(s[None])[0][0])(s) for s in sigma])
    torch.testing.assert_close(h.hessian(sigma), dense, rtol=1e-11, atol=1e-11)


def test_energy_equals_the_unsymmetrized_definition():
    """H(σ) = J n^{-(p-1)/2} Σ J_{ijk} σ_i σ_j σ_k − h·σ with the raw disorder drawn from the same seed."""
    n, p, seed = 6, 3, 5
    h = PSpinGlass(n, p, coupling=0.8, field_std=0.5, seed=seed, dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)
    raw = torch.randn((n,) * p, generator=gen, dtype=torch.float64)
    field = 0.5 * torch.randn(n, generator=gen, dtype=torch.float64)
    sigma = h.random_configurations(4, seed=0)
    expected = 0.8 * n ** (-(p - 1) / 2) * torch.einsum("ijk,bi,bj,bk->b", raw, sigma, sigma, sigma)
    expected = expected - sigma @ field
    torch.testing.assert_close(h.energy(sigma), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("p", [2, 3, 5])
def test_euler_identity_without_field(p):
    h = PSpinGlass(6, p, seed=3, dtype=torch.float64)
    sigma = h.random_configurations(8, seed=4)
    energy, grad = h.energy_and_grad(sigma)
    torch.testing.assert_close((sigma * grad).sum(1), p * energy, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("p", [2, 3])
def test_riemannian_hessian_matches_second_differences_along_geodesics(p):
    """d²/dt² H(γ(t)) at t = 0 equals vᵀ Hess_M H v for the geodesic γ(t) = cos(t‖v‖/√n)σ +
    √n sin(t‖v‖/√n) v/‖v‖ through σ with unit tangent velocity v."""
    n = 9
    h = PSpinGlass(n, p, field_std=0.4, seed=7, dtype=torch.float64)
    sigma = h.random_configurations(3, seed=8)
    v = project_tangent(
        sigma, torch.randn(3, n, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    )
    v = v / v.norm(dim=1, keepdim=True)
    root_n = math.sqrt(n)

    def along(t):
        return math.cos(t / root_n) * sigma + root_n * math.sin(t / root_n) * v

    eps = 1e-4
    second = (h.energy(along(eps)) - 2 * h.energy(sigma) + h.energy(along(-eps))) / eps**2
    hess = h.riemannian_hessian(sigma)
    quad = torch.einsum("bi,bij,bj->b", v, hess, v)
    torch.testing.assert_close(quad, second, rtol=1e-6, atol=1e-6)
    # The tangent-basis form has the same spectrum as the ambient form without its zero normal mode.
    tangent = torch.linalg.eigvalsh(h.riemannian_hessian(sigma, basis="tangent"))
    ambient = torch.linalg.eigvalsh(hess)
    normal_zero = ambient.abs().argmin(dim=1)
    for b in range(3):
        keep = torch.ones(n, dtype=torch.bool)
        keep[normal_zero[b]] = False
        torch.testing.assert_close(tangent[b], ambient[b][keep], rtol=1e-10, atol=1e-10)
    # The normal direction is in the kernel of the ambient form.
    torch.testing.assert_close(
        hess @ sigma[:, :, None], torch.zeros(3, n, 1, dtype=torch.float64), atol=1e-10, rtol=0
    )


def test_riemannian_grad_is_tangent_and_matches_geodesic_first_difference():
    h = PSpinGlass(10, 3, field_std=0.3, seed=0, dtype=torch.float64)
    sigma = h.random_configurations(4, seed=1)
    g = h.riemannian_grad(sigma)
    torch.testing.assert_close((g * sigma).sum(1), torch.zeros(4, dtype=torch.float64), atol=1e-11, rtol=0)
    v = torch.randn(4, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    v = project_tangent(sigma, v)
    eps = 1e-6
    diff = (h.energy(retract(sigma + eps * v)) - h.energy(retract(sigma - eps * v))) / (2 * eps)
    torch.testing.assert_close(diff, (g * v).sum(1), rtol=1e-6, atol=1e-6)


def test_variance_of_energy_over_random_configurations_is_n():
    """For coupling 1 and no field Var H(σ) = n over σ uniform on the sphere, up to O(1/n) corrections.
    With R = 4000 configurations the standard error of Var/n is √(2/R) ≈ 0.022; tolerance 0.1."""
    n = 60
    h = PSpinGlass(n, 3, seed=11)
    energies = h.energy(h.random_configurations(4000, seed=12)).double()
    assert abs(energies.var().item() / n - 1) < 0.1
    assert abs(energies.mean().item()) / math.sqrt(n) < 0.1  # mean 0, standard error 1/√R in these units


def test_coupling_scales_and_field_shares_disorder():
    a = PSpinGlass(8, 3, seed=4, dtype=torch.float64)
    b = PSpinGlass(8, 3, seed=4, coupling=2.5, field_std=1.5, dtype=torch.float64)
    torch.testing.assert_close(b.couplings, a.couplings)
    sigma = a.random_configurations(3, seed=0)
    torch.testing.assert_close(b.energy(sigma), 2.5 * a.energy(sigma) - sigma @ b.field)
    assert PSpinGlass(8, 3, seed=4, field_std=3.0).field.std() > 0


def test_split_glass_sums_to_total_and_has_the_right_law():
    h = SplitPSpinGlass(8, 3, parts=5, field_std=0.5, seed=0, dtype=torch.float64)
    sigma = h.random_configurations(6, seed=1)
    energy, grad = h.energy_and_grad(sigma)
    parts = [h.component_energy_and_grad(sigma, q) for q in range(5)]
    torch.testing.assert_close(sum(e for e, _ in parts), energy, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(sum(g for _, g in parts), grad, rtol=1e-12, atol=1e-12)
    # Each summand's disorder has variance 1/P: over the n^p entries of the off-diagonal symmetrized part,
    # Var S_ijk (distinct i,j,k) = 1/(6P). 56 distinct-index triples per part, 5 parts: 280·6 entries.
    big = SplitPSpinGlass(30, 3, parts=4, seed=2, dtype=torch.float64)
    i, j, k = torch.meshgrid(*(torch.arange(30),) * 3, indexing="ij")
    distinct = (i != j) & (j != k) & (i != k)
    var = big.components[0].unpack()[distinct].var().item()
    assert abs(var * 6 * 4 - 1) < 0.05  # 24360 correlated-by-6 entries → ≈ 4060 independent ones
    with pytest.raises(ValueError, match="part"):
        h.component_energy_and_grad(sigma, 5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 1, "p": 3}, "Invalid n"),
        ({"n": 5, "p": 1}, "Invalid p"),
        ({"n": 5, "p": 2.5}, "Invalid p"),
        ({"n": 5, "p": 3, "field_std": -1.0}, "Invalid field_std"),
        ({"n": 5, "p": 3, "coupling": float("nan")}, "Invalid coupling"),
        ({"n": 5, "p": 3, "seed": -3}, "Invalid seed"),
        ({"n": 5, "p": 3, "dtype": torch.int64}, "Invalid dtype"),
    ],
)
def test_constructor_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PSpinGlass(**kwargs)


def test_configurations_are_validated():
    h = PSpinGlass(5, 3, seed=0)
    good = h.random_configurations(2, seed=0)
    with pytest.raises(ValueError, match=r"shape \(2, 4\)"):
        h.energy(good[:, :4])
    with pytest.raises(ValueError, match="not on the sphere"):
        h.grad(2 * good)
    with pytest.raises(ValueError, match="NaN"):
        h.energy(torch.full((1, 5), float("nan")))
    with pytest.raises(ValueError, match="dtype"):
        h.energy(good.double())
    with pytest.raises(ValueError, match="basis"):
        h.riemannian_hessian(good, basis="polar")
    assert h.energy(good[0]).shape == (1,)  # a single configuration is a batch of one


def test_seed_reproducibility():
    a, b = PSpinGlass(6, 3, seed=42), PSpinGlass(6, 3, seed=42)
    assert torch.equal(a.couplings, b.couplings)
    assert torch.equal(a.random_configurations(3, seed=1), b.random_configurations(3, seed=1))
    c = PSpinGlass(6, 3)
    assert torch.equal(PSpinGlass(6, 3, seed=c.seed).couplings, c.couplings)


@pytest.mark.parametrize("p", [3, 4])
def test_chunked_contraction_equals_single_chunk(monkeypatch, p):
    import deeplandscape.spinglass.contraction as contraction

    n = 7
    h = PSpinGlass(n, p, field_std=0.2, seed=6, dtype=torch.float64)
    sigma = h.random_configurations(11, seed=7)
    whole = h.energy_and_grad(sigma)
    monkeypatch.setattr(contraction, "_CHUNK_ELEMENTS", 3 * n ** (p - 1))  # 3 rows, last chunk short
    chunked = h.energy_and_grad(sigma)
    torch.testing.assert_close(chunked, whole, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("p", [1, 2, 3, 4])
def test_packing_round_trips_and_halves_storage(p):
    from deeplandscape.spinglass.contraction import outer_power, pack, symmetrize

    n = 6
    sym = symmetrize(torch.randn((n,) * p, dtype=torch.float64, generator=torch.Generator().manual_seed(p)))
    packed = pack(sym)
    torch.testing.assert_close(packed.unpack(), sym, rtol=1e-15, atol=1e-15)
    assert packed.weighted.numel() == n * math.comb(n + p - 2, p - 1)
    assert packed.multiplicity.sum() == n ** (p - 1)  # every ordered trailing index counted once
    if p >= 2:  # G(σ) from the packed form equals the dense contraction
        from deeplandscape.spinglass.contraction import contract_vector

        sigma = torch.randn(4, n, dtype=torch.float64)
        dense = outer_power(sigma, p - 1) @ sym.reshape(n, -1).T
        torch.testing.assert_close(contract_vector(packed, sigma), dense, rtol=1e-12, atol=1e-12)
