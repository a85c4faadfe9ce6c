"""Quick runs of the landscape experiments, and their numerical cores against closed forms."""

import numpy as np
import pytest

from deeplandscape.experiments import hessian_spectrum, limit_cycles, relaxation_1d, sgd_noise
from deeplandscape.experiments.spec import resolve_config

from ._quick import run_quick


def _run(exp, tmp_path, overrides=()):
    return run_quick(exp, tmp_path, overrides)


# ---------------------------------------------------------------- relaxation-1d


def _grids(half=3.0, n=241):
    x = np.linspace(-half, half, n)
    y = np.linspace(-4 * half, 4 * half, 8 * (n - 1) + 1)
    return x, y


@pytest.mark.parametrize("a,gamma,beta", [(1.0, 0.5, 4.0), (2.5, 1.0, 10.0)])
def test_smoothings_of_a_quadratic_match_closed_forms(a, gamma, beta):
    # f = a x²/2: heat v = f + a γ/(2β); Hopf–Lax u = a x²/(2(1 + aγ));
    # Cole–Hopf u = a x²/(2(1 + aγ)) + log(1 + aγ)/(2β).
    x, y = _grids()
    f_y = 0.5 * a * y**2
    heat = relaxation_1d.heat_smoothing(f_y, x, y, gamma, beta)
    np.testing.assert_allclose(heat, 0.5 * a * x**2 + a * gamma / (2 * beta), atol=1e-6)
    hl = relaxation_1d.hopf_lax(f_y, x, y, gamma)
    np.testing.assert_allclose(hl, a * x**2 / (2 * (1 + a * gamma)), atol=2e-4)
    vis = relaxation_1d.viscous_hj(f_y, x, y, gamma, beta)
    expected = a * x**2 / (2 * (1 + a * gamma)) + np.log1p(a * gamma) / (2 * beta)
    np.testing.assert_allclose(vis, expected, atol=1e-6)


def test_viscous_hj_tends_to_hopf_lax_as_viscosity_vanishes():
    x, y = _grids()
    f_y = relaxation_1d.rugged_loss(y)
    hl = relaxation_1d.hopf_lax(f_y, x, y, 1.0)
    vis = relaxation_1d.viscous_hj(f_y, x, y, 1.0, 2000.0)
    assert np.max(np.abs(vis - hl)) < 5e-3


def test_fokker_planck_scheme_conserves_mass_and_reaches_gibbs():
    x = np.linspace(-3, 3, 151)
    h = x[1] - x[0]
    u = relaxation_1d.rugged_loss(x)
    beta = 2.0
    q = relaxation_1d.fokker_planck_generator(u, h, beta)
    np.testing.assert_allclose(q.sum(axis=1), 0.0, atol=1e-9)
    gibbs = np.exp(-2 * beta * (u - u.min()))
    gibbs /= gibbs.sum()
    np.testing.assert_allclose(gibbs @ q, 0.0, atol=1e-9 * np.abs(q).max())
    p0 = np.zeros_like(x)
    p0[10] = 1.0
    p = relaxation_1d.evolve_density(p0, u, h, beta, 200.0)
    np.testing.assert_allclose(p, gibbs, atol=1e-6)


def test_fokker_planck_ou_mean_and_variance():
    # dX = −aX dt + β^{-1/2} dB from X0 = m0: mean m0 e^{−aT}, variance (1 − e^{−2aT})/(2aβ).
    a, beta, t, m0 = 1.0, 2.0, 0.7, 1.5
    x = np.linspace(-5, 5, 1001)
    h = x[1] - x[0]
    p0 = np.exp(-((x - m0) ** 2) / (2 * 0.05**2))
    p0 /= p0.sum()
    p = relaxation_1d.evolve_density(p0, 0.5 * a * x**2, h, beta, t)
    mean = p @ x
    var = p @ (x - mean) ** 2
    assert mean == pytest.approx(m0 * np.exp(-a * t), abs=1e-3)
    expected_var = 0.05**2 * np.exp(-2 * a * t) + (1 - np.exp(-2 * a * t)) / (2 * a * beta)
    assert var == pytest.approx(expected_var, rel=1e-2)


def test_relaxation_rejects_bad_input():
    x, y = _grids(n=11)
    with pytest.raises(ValueError, match="gamma"):
        relaxation_1d.hopf_lax(y, x, y, 0.0)
    with pytest.raises(ValueError, match="beta"):
        relaxation_1d.viscous_hj(y, x, y, 1.0, -1.0)
    with pytest.raises(ValueError, match="method"):
        relaxation_1d.relax("adam", {})


def test_relaxation_1d_quick(tmp_path):
    results, out = _run(relaxation_1d.EXPERIMENT, tmp_path)
    mass = results["terminal_mass_near_global_min"]
    assert set(mass) == set(relaxation_1d.METHODS)
    assert (out / "relaxation_1d.npz").exists()
    # Thesis Fig. 4.1: SGD stays trapped near its start; the smoothed losses carry the density to the
    # wide global minimum (here each holds > 10× the mass SGD puts there, and over half the mass).
    assert mass["sgd"] < 0.1
    for m in ("heat", "viscous-hj", "non-viscous-hj"):
        assert mass[m] > 0.5 and mass[m] > 10 * mass["sgd"]
        assert abs(results["argmin_u"][m]) < 0.1


# ---------------------------------------------------------------- hessian-spectrum


def test_hessian_spectrum_slq_route_matches_exact():
    # The SLQ/Lanczos route (used above max_exact) against the dense eigenvalues of the same trained net.
    exp = hessian_spectrum.EXPERIMENT
    config = resolve_config(
        exp, "quick", 0, ["fc_hidden=2", "samples=40", "epochs=20", "slq_steps=160", "slq_probes=4"]
    )
    model, loss_fn, x, y = hessian_spectrum.build("fc-digits", config, 3)
    hessian_spectrum.train(model, loss_fn, x, y, config, 3)
    exact = hessian_spectrum.spectrum(model, loss_fn, x, y, config, 3)
    slq = hessian_spectrum.spectrum(model, loss_fn, x, y, {**config, "max_exact": 0}, 3)
    assert (exact.method, slq.method) == ("exact", "slq")
    assert np.isclose(exact.weights.sum(), 1.0) and np.isclose(slq.weights.sum(), 1.0)
    assert slq.lambda_max == pytest.approx(exact.lambda_max, rel=1e-3)
    assert slq.lambda_min == pytest.approx(exact.lambda_min, rel=1e-2, abs=1e-4)
    # Quadrature with m ≥ d steps per probe is exact for the probe's measure; the probes' average of a
    # count is an unbiased estimate: within 0.15 of the exact fraction with 4 Rademacher probes.
    for t in ("0.0001", "0.01"):
        assert abs(slq.near_zero_fraction[t] - exact.near_zero_fraction[t]) < 0.15


def test_hessian_spectrum_quick(tmp_path):
    results, out = _run(hessian_spectrum.EXPERIMENT, tmp_path)
    assert (out / "hessian_spectrum.npz").exists()
    m = results["models"][0]
    assert {"name", "params", "near_zero_fraction", "lambda_max", "lambda_min", "method"} <= m.keys()
    assert m["method"] == "exact" and m["params"] == 460
    # Thesis §3.3.1: a large peak at zero (over-parametrized: 460 weights, 100 samples), a long positive
    # and a short negative tail.
    assert m["near_zero_fraction"]["0.01"] > 0.5
    assert m["near_zero_fraction"]["0.0001"] <= m["near_zero_fraction"]["0.01"]
    assert m["lambda_max"] > 10 * abs(m["lambda_min"])


# ---------------------------------------------------------------- sgd-noise


def test_sgd_noise_quick(tmp_path):
    results, out = _run(sgd_noise.EXPERIMENT, tmp_path)
    assert (out / "sgd_noise.npz").exists()
    config = resolve_config(sgd_noise.EXPERIMENT, "quick", 0)
    (m,) = results["models"]
    assert {"name", "params", "checkpoints", "temperature"} <= m.keys()
    assert m["temperature"] == pytest.approx(config["lr"] / (2 * config["batch_size"]))  # Thesis (6.6)
    assert [c["fraction"] for c in m["checkpoints"]] == pytest.approx(config["checkpoints"], abs=0.01)
    n = m["noise_samples"]
    for c in m["checkpoints"]:
        assert {"rank_fraction", "eig_mean", "eig_std"} <= c.keys()
        # D is the covariance of N gradients: rank ≤ N − 1; N = 64 ≪ d = 1242 (< 10% of d, Thesis §6.3.2).
        assert c["rank"] <= n - 1
        assert c["rank_fraction"] == pytest.approx(c["rank"] / m["params"])
        assert c["rank_fraction"] < 0.1
        # Non-isotropic: eigenvalues spread far more than their mean (Thesis Fig. 6.1: std ≫ mean).
        assert c["eig_mean"] > 0 and c["eig_std"] > 3 * c["eig_mean"]


# ---------------------------------------------------------------- limit-cycles


def test_double_well_force_is_divergence_free_and_keeps_gibbs_state():
    # Example 6.43: ∇·(j e^{−Φ}) = 0, so e^{−Φ} stays stationary: the SDE's second moments match the
    # quadrature ones for every λ (2000 particles to t = 6, dt = 2e-3: tolerance 0.08 ≈ 4 standard errors).
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.5, 1.5, (50, 2))
    h = 1e-5
    for lam in (0.5, 1.5):

        def flux(z, lam=lam):  # j e^{−Φ} = λ J_ss with j = (−∇f) − (−∇Φ)
            return (limit_cycles.drift(z, lam) - limit_cycles.drift(z, 0.0)) * np.exp(
                -limit_cycles.potential(z)
            )[..., None]

        div = sum(
            (flux(x + h * np.eye(2)[i])[:, i] - flux(x - h * np.eye(2)[i])[:, i]) / (2 * h) for i in range(2)
        )
        np.testing.assert_allclose(div, 0.0, atol=1e-6)
    gibbs = limit_cycles.gibbs_moments()
    for lam in (0.0, 0.5, 1.5):
        pts = limit_cycles.simulate_sde(lam, 2000, 3000, 2e-3, seed=1)
        assert (pts[:, 0] ** 2).mean() == pytest.approx(gibbs["x1_sq"], abs=0.08)
        assert (pts[:, 1] ** 2).mean() == pytest.approx(gibbs["x2_sq"], abs=0.08)


def test_limit_cycles_quick(tmp_path):
    results, out = _run(limit_cycles.EXPERIMENT, tmp_path)
    assert (out / "limit_cycles.npz").exists()
    assert {"autocorrelation_lag_exceeding_band", "fft_low_to_high_ratio", "double_well"} <= results.keys()
    assert results["params"] == 917  # tiny-fc, Thesis §6.3.3
    assert results["autocorrelation_lag_exceeding_band"] >= 0 and results["fft_low_to_high_ratio"] > 0
    wells = {w["lambda"]: w for w in results["double_well"]}
    assert set(wells) == {0.0, 0.5, 1.5}
    # λ = 0: f = Φ, critical points exactly (±1, 0), the flow stops there; λ = 0.5: they move (Fig. 6.4b);
    # λ = 1.5: the flow keeps circling the origin (Fig. 6.4c).
    np.testing.assert_allclose(np.abs(wells[0.0]["critical_points"]), [[1, 0], [1, 0]], atol=1e-9)
    assert not wells[0.0]["limit_cycle"] and wells[0.0]["flow_final_speed"] < 1e-6
    assert wells[0.5]["critical_point_shift"] > 0.05
    assert wells[1.5]["limit_cycle"]
