import itertools
import math

import numpy as np
import pytest
from scipy.integrate import quad

from deeplandscape.spinglass import theory


@pytest.mark.parametrize("p", [3, 4, 6])
def test_complexity_is_continuous_at_minus_e_inf_and_nondecreasing(p):
    einf = theory.e_inf(p)
    for k in [None, 0, 1, 5]:
        left = theory.complexity(-einf * (1 + 1e-9), p, k)
        right = theory.complexity(-einf * (1 - 1e-9), p, k)
        assert abs(left - right) < 1e-6
        u = np.linspace(-einf - 0.5, 1.0, 2001)
        theta = theory.complexity(u, p, k)
        assert np.all(np.diff(theta) >= -1e-12)


def test_i1_equals_the_integral_of_the_semicircle_tail():
    """I_1 vanishes at −E_∞ and dI_1/du = −(2/E_∞²)√(u² − E_∞²) below it (the GOE semicircle tail):
    the closed form must equal the quadrature of that derivative."""
    p = 3
    einf = theory.e_inf(p)
    for u in [-1.7, -2.0, -3.0]:
        integral, _ = quad(lambda s: -(2 / einf**2) * math.sqrt(s * s - einf**2), -einf, u)
        assert abs(theory.rate_i1(u, p) - integral) < 1e-9


def test_ek_are_zeros_and_ordered():
    for p in [3, 4, 5]:
        ek = [theory.e_k(p, k) for k in range(6)]
        for k, e in enumerate(ek):
            assert abs(theory.complexity(-e, p, k)) < 1e-10
        assert all(a > b for a, b in itertools.pairwise(ek))
        assert ek[-1] > theory.e_inf(p)
    # Sagun et al. §2.1.1 quote, for p = 3, −N·1.657 (ground state) and −N·1.633 (floor).
    assert round(theory.e0(3), 3) == 1.657
    assert round(theory.e_inf(3), 3) == 1.633


def test_theta_total_dominates_theta_k_and_minima_dominate_saddles_below_e_inf():
    """Choromanska Cor. 4.1: Θ_k < Θ_0 for k > 0 below −E_∞; and Θ ≥ Θ_0 everywhere."""
    p = 3
    u = np.linspace(-1.70, -theory.e_inf(p) - 1e-6, 50)
    assert np.all(theory.complexity(u, p, 1) < theory.complexity(u, p, 0))
    assert np.all(theory.complexity(u, p) >= theory.complexity(u, p, 0) - 1e-15)
    assert theory.complexity(0.5, p) == pytest.approx(0.5 * math.log(2))


def test_field_parameter_and_critical_field():
    for p in [3, 4, 7]:
        for coupling in [0.5, 1.0, 2.0]:
            nu_c = theory.critical_field(p, coupling)
            assert abs(theory.field_parameter(p, nu_c, coupling)) < 1e-14
            assert abs(theory.B(p, nu_c, coupling)) < 1e-14  # at ν = ν_c, B = 0
            assert theory.field_parameter(p, 0.0, coupling) == pytest.approx(1 - 2 / p)
            assert (
                theory.field_parameter(p, 0.9 * nu_c, coupling)
                > 0
                > theory.field_parameter(p, 1.1 * nu_c, coupling)
            )
            for b in [-0.5, 0.0, 0.2]:
                nu = theory.field_for_parameter(p, b, coupling)
                assert theory.field_parameter(p, nu, coupling) == pytest.approx(b, abs=1e-12)


def test_paper_regimes_of_section_5_1():
    n = 100
    assert theory.regime(n, 3, 1 / n).name == "exponential"
    assert theory.regime(n, 3, math.sqrt(3) * (1 - 1 / n) ** 0.5).name == "polynomial"
    trivial = theory.regime(n, 3, 3.0)
    assert trivial.name == "trivial" and trivial.critical_points == 2 and trivial.minima == 1


def test_fyodorov_counts_agree_between_eq9_and_eq10():
    """Eq. (9)'s exponential branch at B = |τ|/n reduces to n·eq. (10)'s τ ≪ −1 branch as n → ∞."""
    tau = -8.0
    n = 10**7
    ratio = theory.expected_critical_points(n, -tau / n) / (n * theory.expected_critical_points_scaling(tau))
    assert ratio == pytest.approx(1.0, rel=1e-3)
    assert theory.expected_critical_points(1000, -3 / 1000) == 2.0
    assert theory.expected_critical_points(1000, -0.5 / 1000) == pytest.approx(
        2 * 1000 / math.sqrt(math.pi) * 0.5**-1.5
    )


def test_anneal_schedule():
    n, tau0 = 300.0, 500.0
    assert theory.anneal_tau(0, n, tau0) == pytest.approx(n / 2)
    assert theory.anneal_field_scale(0, n, tau0) == pytest.approx(math.sqrt(2))
    assert theory.anneal_field_scale(tau0 * math.log(2), n, tau0) == pytest.approx(1.0)
    steps = np.arange(0, 5000, 100)
    assert np.all(np.diff(theory.anneal_field_scale(steps, n, tau0)) < 0)
    assert theory.minima_field_scale(1000, 0.0) == 1.0


def test_bad_input():
    with pytest.raises(ValueError, match="Invalid p"):
        theory.e_inf(1)
    with pytest.raises(ValueError, match="Invalid k"):
        theory.e_k(3, -1)
    with pytest.raises(ValueError, match="Invalid nu"):
        theory.field_parameter(3, -1.0)
    with pytest.raises(ValueError, match="Invalid u"):
        theory.rate_i1(-1.0, 3)
    with pytest.raises(ValueError, match="Invalid tau0"):
        theory.anneal_tau(1, 10, 0)
