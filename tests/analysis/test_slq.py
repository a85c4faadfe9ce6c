import math

import pytest
import torch

from deeplandscape.analysis.slq import spectral_density
from deeplandscape.analysis.spectrum import density_statistics, spectrum_statistics

from ._curvature_cases import single_thread  # noqa: F401
from ._spectra import OUTLIER_TOP, top_and_bulk, with_spectrum
from ._wishart import SPIKES, SpikedWishart, mp_cdf, outlier


@pytest.fixture(scope="module")
def wishart_density():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module scope runs before the per-test single_thread fixture
    try:
        op = SpikedWishart(d=2000, seed=0)
        return op, spectral_density(op, num_probes=6, num_steps=80, seed=2)
    finally:
        torch.set_num_threads(threads)


def test_spiked_wishart_bulk_on_zero_four(wishart_density):
    op, density = wishart_density
    assert density.num_matvecs == 6 * 80
    # Mass: all but the 3 outliers (3/d of the spectrum) lies in the Marchenko–Pastur bulk [0, 4].
    bulk, _ = density.mass(-0.05, 4.1)
    assert bulk == pytest.approx(1 - len(SPIKES) / op.dim, abs=0.01)
    # Distribution function against Marchenko–Pastur (quadrature resolution ~ 1/num_steps).
    for x in (0.25, 0.5, 1.0, 2.0, 3.0):
        cdf, _ = density.mass(-1.0, x)
        assert cdf == pytest.approx(mp_cdf(x), abs=0.03), x
    # The smoothed density integrates to 1 and its first moment is tr A / d within 3 standard errors.
    assert float(torch.trapezoid(density.density, density.grid)) == pytest.approx(1.0, abs=1e-3)
    first, first_err = density.moment(1)
    assert abs(first - op.trace() / op.dim) <= 3 * first_err + 1e-12
    # The outliers are nodes of the quadrature: each Lanczos run resolves the top of the spectrum.
    top = density.nodes.nan_to_num(-1.0).max(dim=1).values
    assert torch.all((top - outlier(SPIKES[0])).abs() < 0.15)


def test_density_statistics_of_wishart(wishart_density):
    op, density = wishart_density
    stats = density_statistics(density, threshold=1e-3)
    assert stats.index == pytest.approx(0.0, abs=1e-9)  # the operator is positive semi-definite
    assert stats.arithmetic_mean == pytest.approx(
        op.trace() / op.dim, abs=3 * stats.std_error["arithmetic_mean"]
    )
    assert stats.num_eigenvalues == op.dim


def test_indefinite_matrix_index_and_defaults():
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(200, 200, generator=g, dtype=torch.float64))
    values = torch.cat([-torch.ones(50), torch.zeros(50), torch.ones(100)]).double()
    a = q @ torch.diag(values) @ q.T
    density = spectral_density(a, num_probes=10, num_steps=30, seed=0)
    # Three distinct eigenvalues: Lanczos stops after 3 steps with exact quadrature.
    assert density.num_matvecs == 30
    stats = density_statistics(density)
    assert stats.normalized_index == pytest.approx(0.25, abs=3 * stats.std_error["normalized_index"] + 1e-9)
    assert stats.fraction_near_zero == pytest.approx(
        0.25, abs=3 * stats.std_error["fraction_near_zero"] + 1e-9
    )
    assert density.sigma == pytest.approx(0.02)


def test_bad_input_errors():
    a = torch.eye(3, dtype=torch.float64)
    for kwargs, match in [
        ({"num_probes": 0}, "Invalid num_probes: 0"),
        ({"num_steps": 0}, "Invalid num_steps: 0"),
        ({"num_points": 1}, "Invalid num_points: 1"),
        ({"sigma": -1.0}, "Invalid sigma: -1.0"),
    ]:
        with pytest.raises(ValueError, match=match):
            spectral_density(a, **kwargs)


def test_slq_on_a_model_leaves_it_unchanged():
    from torch import nn

    from deeplandscape.analysis.hvp import HessianOperator

    from ._curvature_cases import assert_unchanged, busy_model, snapshot

    model = busy_model()
    before = snapshot(model)
    data = (torch.randn(4, 2, 6, 6, dtype=torch.float64), torch.tensor([0, 1, 2, 0]))
    density = spectral_density(HessianOperator(model, nn.CrossEntropyLoss(), data), num_probes=2, num_steps=5)
    assert density.num_matvecs == 10
    assert_unchanged(model, before)


def test_float32_quadrature_with_an_outlier_runs_every_step_and_matches_the_exact_spectrum():
    """λ₁ = 2732 over a bulk in [0, 1.95]: float32 Lanczos must not mistake the bulk's small β_j (compared
    with the outlier) for an invariant Krylov space; the bulk's mass in [0, 1] against the exact count."""
    lam = top_and_bulk(OUTLIER_TOP, 400, 0.0, 1.95)
    exact = float(((lam >= 0) & (lam <= 1.0)).double().mean())
    masses = {}
    for dtype in (torch.float32, torch.float64):
        density = spectral_density(with_spectrum(lam, dtype), num_probes=8, num_steps=40, seed=3)
        assert density.num_matvecs == 8 * 40  # the requested steps: the space is not exhausted
        assert bool(torch.isfinite(density.nodes).all())
        mass, err = density.mass(0.0, 1.0)
        assert abs(mass - exact) <= 4 * err + 2 / 40, (dtype, mass, exact)  # noise + node spacing
        masses[dtype] = mass
        top = density.nodes.max(dim=1).values
        torch.testing.assert_close(top, torch.full_like(top, 2732.0), rtol=1e-5, atol=0)
    assert masses[torch.float32] == pytest.approx(masses[torch.float64], abs=1e-3)


def test_exhausted_krylov_space_still_stops_early():
    """Three distinct eigenvalues in float32 too: the space is exhausted after 3 steps."""
    values = torch.cat([-torch.ones(30), torch.zeros(30), 2 * torch.ones(40)])
    for dtype in (torch.float32, torch.float64):
        density = spectral_density(with_spectrum(values, dtype), num_probes=4, num_steps=20)
        assert density.num_matvecs == 4 * 3, dtype


def _bulk_through_zero(seed: int) -> torch.Tensor:
    """An outlier at 50 over a continuous bulk uniform on [−0.5, 1.5], d = 600."""
    g = torch.Generator().manual_seed(seed)
    return torch.cat([torch.tensor([50.0]), -0.5 + 2 * torch.rand(599, generator=g, dtype=torch.float64)])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_probe_bounds_hold_exactly_for_its_spectral_measure(seed):
    """Chebyshev–Markov–Stieltjes: with one probe v, [lower, upper] contains μ_v([a, b]) =
    Σ_j (vᵀu_j)² 1[a ≤ λ_j ≤ b] / ‖v‖², computed from the eigendecomposition, for every interval."""
    lam = _bulk_through_zero(seed)
    a = with_spectrum(lam, seed=seed)
    values, vectors = torch.linalg.eigh(a)
    density = spectral_density(a, num_probes=1, num_steps=25, seed=seed)
    v = torch.randint(0, 2, (a.shape[0],), generator=torch.Generator().manual_seed(seed)).double() * 2 - 1
    weights = (vectors.T @ v) ** 2 / float(v @ v)
    for low, high, closed in [
        (-0.05, 0.05, "both"), (-1e-3, 1e-3, "both"), (-math.inf, -1e-3, "neither"), (0.2, 0.9, "left"),
        (1.0, math.inf, "right"), (-0.5, 1.5, "both"),
    ]:  # fmt: skip
        count = density.count(low, high, closed=closed)
        inside = {
            "both": (values >= low) & (values <= high),
            "left": (values >= low) & (values < high),
            "right": (values > low) & (values <= high),
            "neither": (values > low) & (values < high),
        }[closed]
        exact = float(weights[inside].sum())
        assert count.lower - 1e-12 <= exact <= count.upper + 1e-12, (low, high, count)
        if count.resolved:
            assert count.lower - 1e-12 <= count.fraction <= count.upper + 1e-12


@pytest.mark.parametrize("seed", [0, 1])
def test_counts_in_a_continuous_bulk_through_zero_bracket_the_exact_counts(seed):
    """A near-zero fraction used to come out as "0 ± 0" against a true 7%: now every interval contains the
    exact fraction, the resolvable ones have an estimate, and |λ| ≤ 1e-3 is reported unresolved (NaN)."""
    lam = _bulk_through_zero(seed)
    density = spectral_density(with_spectrum(lam, seed=seed), num_probes=8, num_steps=50, seed=seed)
    for threshold in (1e-3, 0.07, 0.3):
        stats = density_statistics(density, threshold=threshold)
        exact = spectrum_statistics(lam, threshold=threshold)
        for key in ("normalized_index", "fraction_near_zero"):
            low, high = stats.intervals[key]
            assert low <= getattr(exact, key) <= high, (threshold, key, low, high)
        resolved = stats.resolved["fraction_near_zero"]
        assert resolved == (threshold > 1e-3)
        if resolved:
            assert 0 < stats.fraction_near_zero < 1 and "fraction_near_zero" not in stats.reasons
        else:
            assert math.isnan(stats.fraction_near_zero) and math.isnan(stats.num_near_zero)
            assert "narrower than the quadrature's node spacing" in stats.reasons["fraction_near_zero"]
            assert stats.intervals["fraction_near_zero"][1] > 0.01  # the bound says what is not known


@pytest.mark.parametrize("factory", ["tiny_mlp", "tiny_cnn"])
def test_counts_of_small_networks_bracket_their_exact_hessian_spectra(factory):
    from torch import nn

    from deeplandscape.analysis import examples
    from deeplandscape.analysis.hessian import exact_hessian
    from deeplandscape.analysis.hvp import HessianOperator

    model = getattr(examples, factory)(**({} if factory == "tiny_mlp" else {"channels": 2})).double()
    data = examples.gaussian_blobs() if factory == "tiny_mlp" else examples.image_blobs(n=48)
    data = [(x.double(), y) for x, y in data]
    exact = exact_hessian(model, nn.CrossEntropyLoss(), data).eigenvalues
    op = HessianOperator(model, nn.CrossEntropyLoss(), data)
    density = spectral_density(op, num_probes=5, num_steps=30)
    for threshold in (1e-3, 0.05):
        stats = density_statistics(density, threshold=threshold)
        truth = spectrum_statistics(exact, threshold=threshold)
        for key in ("normalized_index", "fraction_near_zero"):
            low, high = stats.intervals[key]
            assert low <= getattr(truth, key) <= high, (threshold, key, low, high, getattr(truth, key))
    assert not density_statistics(density, threshold=1e-3).resolved["fraction_near_zero"]


def test_exhausted_quadrature_counts_exactly():
    """Three distinct eigenvalues: every probe's Krylov space is exhausted, the quadrature is exact and the
    bounds close on the exact fractions."""
    values = torch.cat([-torch.ones(30), torch.zeros(30), 2 * torch.ones(40)]).double()
    density = spectral_density(with_spectrum(values), num_probes=6, num_steps=10)
    assert bool(density.exhausted.all())
    stats = density_statistics(density, threshold=1e-3)
    for key in ("normalized_index", "fraction_near_zero"):
        low, high = stats.intervals[key]
        assert stats.resolved[key] and low <= getattr(stats, key) <= high
        assert high - low <= 2 * 2.58 * stats.std_error[key] + 1e-12  # only the probe noise (t_5 = 2.57)


@pytest.mark.slow
def test_readme_example_counts_bracket_the_exact_index():
    """The README's MLP (1,669 parameters, float32 SLQ as the README runs it) against its float64 exact
    Hessian: the index used to be reported as 461 ± 7 against the exact count."""
    import copy

    from torch import nn

    from deeplandscape.analysis.hessian import exact_hessian
    from deeplandscape.analysis.hvp import HessianOperator

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 64), nn.Tanh(), nn.Linear(64, 5))
    x, y = torch.randn(512, 20), torch.randint(0, 5, (512,))
    data = [(x[i : i + 128], y[i : i + 128]) for i in range(0, 512, 128)]
    loss = nn.CrossEntropyLoss()
    density = spectral_density(HessianOperator(model, loss, data), num_probes=8, num_steps=80)
    stats = density_statistics(density, threshold=1e-3)
    exact = exact_hessian(copy.deepcopy(model).double(), loss, [(a.double(), b) for a, b in data])
    truth = spectrum_statistics(exact.eigenvalues, threshold=1e-3)
    for key in ("normalized_index", "fraction_near_zero"):
        low, high = stats.intervals[key]
        assert low <= getattr(truth, key) <= high, (key, low, high, getattr(truth, key))
