"""The landscape experiments: numerical cores against closed forms, every claim held / did not hold / not
decidable on synthetic results, and quick runs."""

import copy
import math

import numpy as np
import pytest
import torch
from scipy import stats

from deeplandscape import nets
from deeplandscape.experiments import hessian_spectrum, limit_cycles, relaxation_1d, sgd_noise
from deeplandscape.experiments.claims import HELD, NOT_CHECKED, NOT_HELD, UNDECIDABLE, RunData
from deeplandscape.experiments.spec import resolve_config

from ..data._files import write_cifar_dir
from ._quick import run_quick


def _claim(experiment, short):
    (claim,) = [c for c in experiment.CLAIMS if c.id == f"{experiment.EXPERIMENT.name}.{short}"]
    return claim


def _verdict(experiment, short, results, config=None):
    config = config or resolve_config(experiment.EXPERIMENT, "quick", 0)
    return _claim(experiment, short).evaluate(RunData(results, config))


def _edit(results, path, value):
    out = copy.deepcopy(results)
    target = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return out


# ---------------------------------------------------------------- relaxation-1d: numerical cores


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


def test_evolution_in_steps_equals_one_step():
    x = np.linspace(-3, 3, 121)
    u, p0 = relaxation_1d.rugged_loss(x), np.exp(-((x + 2) ** 2))
    p0 /= p0.sum()
    steps = relaxation_1d.evolve_in_steps(p0, u, x[1] - x[0], 3.0, 5.0, 10)
    np.testing.assert_allclose(
        steps[-1], relaxation_1d.evolve_density(p0, u, x[1] - x[0], 3.0, 5.0), atol=1e-10
    )
    np.testing.assert_allclose(
        steps[4], relaxation_1d.evolve_density(p0, u, x[1] - x[0], 3.0, 2.5), atol=1e-10
    )


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


def test_start_basin_lies_between_the_maxima_around_the_minimum_reached_by_descent():
    x = np.linspace(-4, 4, 801)
    f = np.cos(np.pi * x)  # minima at odd integers, maxima at even integers
    lo, hi = relaxation_1d.start_basin(f, int(np.argmin(np.abs(x + 2.8))))
    assert x[lo] == pytest.approx(-4.0) and x[hi] == pytest.approx(-2.0)
    lo, hi = relaxation_1d.start_basin(f, int(np.argmin(np.abs(x - 0.3))))
    assert x[lo] == pytest.approx(0.0) and x[hi] == pytest.approx(2.0)


def test_relaxation_rejects_bad_input():
    x, y = _grids(n=11)
    with pytest.raises(ValueError, match="gamma"):
        relaxation_1d.hopf_lax(y, x, y, 0.0)
    with pytest.raises(ValueError, match="beta"):
        relaxation_1d.viscous_hj(y, x, y, 1.0, -1.0)
    with pytest.raises(ValueError, match="method"):
        relaxation_1d.relax("adam", {})
    with pytest.raises(ValueError, match="grid must be odd"):
        resolve_config(relaxation_1d.EXPERIMENT, "quick", 0, ["grid=200"])


# ---------------------------------------------------------------- relaxation-1d: claims


def _r1d_method(mass=0.8, basin=0.01, half=5.0, curvature=0.05, argmin=0.0):
    values = {
        "mass_near_global_min": mass,
        "mass_in_start_basin": basin,
        "half_time": half,
        "min_curvature": curvature,
        "argmin_u": argmin,
        "expected_loss": 0.1,
    }
    return {**values, "coarse": dict(values)}


def _r1d():
    return {
        "methods": {
            "sgd": _r1d_method(mass=0.05, basin=0.8, half=None, curvature=-8.0),
            "heat": _r1d_method(),
            "viscous-hj": _r1d_method(mass=0.7, half=9.0),
            "non-viscous-hj": _r1d_method(mass=0.65, half=11.0, curvature=-10.0),
        },
        "initial_mass_near_global_min": 0.0,
        "grid_step": 0.01,
        "time_step": 0.2,
    }


R1D_CASES = {  # claim: (path, value that breaks it, value that straddles its bound)
    "sgd-trapped": (("methods", "sgd", "mass_in_start_basin"), 0.2, 0.53),
    "viscous-concentrates": (("methods", "viscous-hj", "mass_near_global_min"), 0.3, 0.53),
    "non-viscous-concentrates": (("methods", "non-viscous-hj", "mass_near_global_min"), 0.3, 0.53),
    "heat-concentrates": (("methods", "heat", "mass_near_global_min"), 0.3, 0.53),
    "viscous-convex": (("methods", "viscous-hj", "min_curvature"), -0.5, 0.02),
    "non-viscous-nonconvex": (("methods", "non-viscous-hj", "min_curvature"), 0.5, 0.02),
    "non-viscous-slower": (("methods", "non-viscous-hj", "half_time"), 7.0, 9.1),
}


def _on_both_grids(results, path, fine, coarse=None):
    out = _edit(results, path, fine)
    return _edit(out, (*path[:-1], "coarse", path[-1]), fine if coarse is None else coarse)


@pytest.mark.parametrize("short", sorted(R1D_CASES))
def test_relaxation_claims_held_not_held_and_straddling(short):
    path, broken, near = R1D_CASES[short]
    good = _r1d()
    assert _verdict(relaxation_1d, short, good).status == HELD
    assert _verdict(relaxation_1d, short, _on_both_grids(good, path, broken)).status == NOT_HELD
    # the coarse grid 0.06 away: the interval ± the discretisation error straddles the bound
    verdict = _verdict(relaxation_1d, short, _on_both_grids(good, path, near, near - 0.06))
    assert verdict.status == UNDECIDABLE, verdict


def test_relaxation_interval_is_the_discretisation_error_and_a_missing_half_time_is_undecidable():
    r = _edit(_r1d(), ("methods", "viscous-hj", "coarse", "mass_near_global_min"), 0.64)
    s = _verdict(relaxation_1d, "viscous-concentrates", r).statistic
    assert (s.estimate, s.ci_low, s.ci_high) == pytest.approx((0.7, 0.64, 0.76))
    # t½ difference: ± (the two grid errors + one time step)
    r = _edit(_r1d(), ("methods", "non-viscous-hj", "coarse", "half_time"), 10.0)
    s = _verdict(relaxation_1d, "non-viscous-slower", r).statistic
    assert (s.estimate, s.ci_low, s.ci_high) == pytest.approx((2.0, 2.0 - 1.2, 2.0 + 1.2))
    r = _edit(_r1d(), ("methods", "viscous-hj", "half_time"), None)
    assert _verdict(relaxation_1d, "non-viscous-slower", r).status == UNDECIDABLE
    assert (
        _verdict(
            relaxation_1d,
            "viscous-convex",
            _on_both_grids(_r1d(), ("methods", "viscous-hj", "argmin_u"), 2.0),
        ).status
        == NOT_HELD
    )


@pytest.mark.slow
def test_relaxation_1d_quick(tmp_path):
    results, out = run_quick(relaxation_1d.EXPERIMENT, tmp_path)
    assert (out / "relaxation_1d.npz").exists()
    m = results["methods"]
    assert set(m) == set(relaxation_1d.METHODS)
    # Thesis Fig. 4.1 on our example: SGD stays next to its start; the smoothed losses carry the density
    # to the wide global minimum; the viscous solution is convex, the non-viscous one is not.
    assert m["sgd"]["mass_in_start_basin"] > 0.5 and m["sgd"]["mass_near_global_min"] < 0.2
    for k in ("heat", "viscous-hj", "non-viscous-hj"):
        assert m[k]["mass_near_global_min"] > 0.5 and abs(m[k]["argmin_u"]) < 0.1
    assert m["viscous-hj"]["min_curvature"] > 0 > m["non-viscous-hj"]["min_curvature"]


# ---------------------------------------------------------------- hessian-spectrum


def _count(fraction, lower=None, upper=None, reason=""):
    resolved = fraction is not None
    return {
        "fraction": fraction,
        "lower": fraction if lower is None else lower,
        "upper": fraction if upper is None else upper,
        "resolved": resolved,
        "reason": reason,
    }


def _hs_model(name, seed, fraction, lmax=10.0, lmin=-0.05, method="exact"):
    return {
        "name": name,
        "seed": seed,
        "params": 2000,
        "samples": 256,
        "train_loss": 0.01,
        "train_accuracy": 1.0,
        "method": method,
        "near_zero": {f"{t:g}": _count(fraction) for t in hessian_spectrum.THRESHOLDS},
        "lambda_max": {"value": lmax, "low": lmax, "high": lmax},
        "lambda_min": {"value": lmin, "low": lmin, "high": lmin},
        "zero_tolerance": 1e-12,
    }


def _hs(fractions=(0.96, 0.97), **kw):
    models = [_hs_model(f, s, fr, **kw) for f in ("smallfc", "small-lenet") for s, fr in enumerate(fractions)]
    return {"data": "digits", "width": "narrow", "models": models, "fisher": []}


def test_peak_claims_held_not_held_straddling_unresolved_and_not_run():
    assert _verdict(hessian_spectrum, "peak-small-lenet", _hs()).status == HELD
    assert _verdict(hessian_spectrum, "peak-smallfc", _hs((0.5, 0.55))).status == NOT_HELD
    assert _verdict(hessian_spectrum, "peak-small-lenet", _hs((0.85, 0.93))).status == UNDECIDABLE
    assert _verdict(hessian_spectrum, "peak-char-lstm", _hs()).status == NOT_CHECKED
    # a quadrature that did not resolve the threshold: its bounds straddle, the reason says why
    r = _hs()
    for m in r["models"]:
        m["near_zero"]["0.0001"] = _count(None, 0.0, 1.0, "the interval is narrower than the node spacing")
    v = _verdict(hessian_spectrum, "peak-small-lenet", r)
    assert v.status == UNDECIDABLE and "not resolved" in v.reason
    # bounds that lie above the criterion decide the claim even without a point estimate
    for m in r["models"]:
        m["near_zero"]["0.0001"] = _count(None, 0.93, 0.99, "not resolved")
    assert _verdict(hessian_spectrum, "peak-small-lenet", r).status == HELD


def test_near_zero_statistic_is_the_t_interval_of_the_seeds_bounds():
    counts = [_count(None, 0.90, 0.95), _count(None, 0.92, 0.99)]
    s = hessian_spectrum.near_zero_statistic("f", counts)
    t = stats.t.ppf(0.975, 1)
    assert s.ci_low == pytest.approx(0.91 - t * np.std([0.90, 0.92], ddof=1) / math.sqrt(2))
    assert s.ci_high == pytest.approx(0.97 + t * np.std([0.95, 0.99], ddof=1) / math.sqrt(2))
    assert s.estimate == pytest.approx(np.mean([0.925, 0.955]))


def test_tail_saddle_extreme_and_fisher_claims():
    assert _verdict(hessian_spectrum, "tails", _hs()).status == HELD
    assert _verdict(hessian_spectrum, "tails", _hs(lmax=1.0, lmin=-0.5)).status == NOT_HELD
    one_seed = _hs(fractions=(0.96,))
    assert _verdict(hessian_spectrum, "tails", one_seed).status == UNDECIDABLE  # no interval from one seed
    assert _verdict(hessian_spectrum, "saddle", _hs()).status == HELD
    assert _verdict(hessian_spectrum, "saddle", _hs(lmin=1e-3)).status == NOT_HELD  # a minimum
    r = _hs()  # Lanczos: λ_min lies in [θ − r, θ]; θ above −rounding: not shown to be a saddle
    r["models"][0]["lambda_min"] = {"value": 1e-15, "low": -0.1, "high": 1e-15}
    assert _verdict(hessian_spectrum, "saddle", r).status == UNDECIDABLE
    assert _verdict(hessian_spectrum, "extremes", _hs()).status == NOT_CHECKED  # not the Thesis's net
    paper = resolve_config(hessian_spectrum.EXPERIMENT, "paper", 0, ["mnist_path=x"])
    assert _verdict(hessian_spectrum, "extremes", _hs(lmax=38.0, lmin=-0.4), paper).status == HELD
    assert _verdict(hessian_spectrum, "extremes", _hs(lmax=5.0, lmin=-0.4), paper).status == NOT_HELD
    fisher = [
        {"name": "allcnn", "seed": s, "data": "cifar10", "below": {"1e-05": f}}
        for s, f in enumerate((0.96, 0.97))
    ]
    assert _verdict(hessian_spectrum, "fisher", {**_hs(), "fisher": fisher}).status == HELD
    fisher[0]["below"]["1e-05"], fisher[1]["below"]["1e-05"] = 0.5, 0.52
    assert _verdict(hessian_spectrum, "fisher", {**_hs(), "fisher": fisher}).status == NOT_HELD
    fisher[0]["data"] = "generated stand-in"
    assert _verdict(hessian_spectrum, "fisher", {**_hs(), "fisher": fisher}).status == NOT_CHECKED


def _trained_fc():
    config = resolve_config(
        hessian_spectrum.EXPERIMENT, "quick", 0, ["fc_hidden=2", "samples=40", "epochs=20"]
    )
    model, loss_fn, x, y = hessian_spectrum.build("smallfc", config, 3)
    hessian_spectrum.train("smallfc", model, loss_fn, x, y, config, 3)
    return config, model, loss_fn, x, y


def test_exact_spectrum_is_float64_and_matches_a_dense_torch_func_hessian():
    config, model, loss_fn, x, y = _trained_fc()
    values, arrays = hessian_spectrum.exact_spectrum(model, loss_fn, x, y, config)
    params = {k: v.detach().double() for k, v in model.named_parameters()}

    def loss(flat):
        chunks = dict(zip(params, torch.split(flat, [v.numel() for v in params.values()]), strict=True))
        shaped = {k: c.view_as(params[k]) for k, c in chunks.items()}
        return loss_fn(torch.func.functional_call(model, shaped, (x.double(),)), y)

    flat = torch.cat([v.flatten() for v in params.values()])
    oracle = torch.linalg.eigvalsh(torch.func.hessian(loss)(flat)).numpy()
    np.testing.assert_allclose(np.sort(arrays["eigenvalues"]), oracle, atol=1e-10)
    for t in hessian_spectrum.THRESHOLDS:
        assert values["near_zero"][f"{t:g}"]["fraction"] == pytest.approx(np.mean(np.abs(oracle) <= t))
    assert values["lambda_min"]["value"] == pytest.approx(oracle.min(), abs=1e-12)


def test_slq_bounds_contain_the_exact_spectrum():
    # The SLQ route (used above max_exact) against the exact eigenvalues of the same trained net: the
    # count bounds include the quadrature's bias, the Lanczos intervals the true extremes.
    config, model, loss_fn, x, y = _trained_fc()
    exact, _ = hessian_spectrum.exact_spectrum(model, loss_fn, x, y, config)
    model32 = model.float()
    slq, arrays = hessian_spectrum.slq_spectrum(model32, loss_fn, x, y, {**config, "slq_steps": 30}, 3)
    assert slq["method"] == "slq" and np.isclose(arrays["weights"].sum(), 1.0)
    for t in ("1e-05", "0.0001", "0.01"):
        c = slq["near_zero"][t]
        assert c["lower"] - 1e-6 <= exact["near_zero"][t]["fraction"] <= c["upper"] + 1e-6
    tol = 1e-4 * exact["lambda_max"]["value"]  # float32 products against the float64 spectrum
    assert slq["lambda_max"]["low"] - tol <= exact["lambda_max"]["value"] <= slq["lambda_max"]["high"] + tol
    assert slq["lambda_min"]["low"] - tol <= exact["lambda_min"]["value"] <= slq["lambda_min"]["high"] + tol


def test_fisher_entries_match_a_per_sample_loop():
    """The Fisher diagonal of a small-allcnn (float64, eval mode) equals the variance over samples of
    per-sample gradients computed one sample at a time by autograd (entries ≥ 0)."""
    model = nets.get("small-allcnn", seed=1).double().eval()
    x, y = hessian_spectrum.cifar_standin(6, seed=2)
    x = x.double()
    loss_fn = torch.nn.CrossEntropyLoss()
    diag = hessian_spectrum.fisher_entries(model, loss_fn, x, y, batch_size=4)  # batches of 4 and 2
    grads = []
    for k in range(6):
        model.zero_grad()
        loss_fn(model(x[k : k + 1]), y[k : k + 1]).backward()
        grads.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]))
    g = torch.stack(grads)
    direct = ((g - g.mean(0)) ** 2).mean(0)
    assert diag.shape == (26_982,) and (diag >= 0).all()
    np.testing.assert_allclose(diag.numpy(), direct.numpy(), rtol=1e-8, atol=1e-14)


def test_fisher_unit_on_the_stand_in_and_on_cifar10(tmp_path):
    """Thesis §3.3.1 (iv): small-allcnn's Fisher diagonal on generated CIFAR-shaped data, and on the CIFAR-10
    loader's images (generated files in the python-batch layout here); more images than the training
    split holds is an error."""
    exp = hessian_spectrum.EXPERIMENT
    small = ["fisher_model=small-allcnn", "fisher_epochs=1"]
    config = resolve_config(exp, "quick", 0, [*small, "fisher_samples=16"])
    r = hessian_spectrum.run_fisher_unit(config, 5, 1).values
    assert r["data"] == "generated stand-in" and r["seed"] == 1 and r["params"] == 26_982
    below = [r["below"][f"{t:g}"] for t in hessian_spectrum.THRESHOLDS]
    assert 0.0 <= r["min"] <= r["max"] and below == sorted(below) and below[0] >= 0 and below[-1] <= 1
    write_cifar_dir(tmp_path / "cifar", per_batch=8, seed=0)
    base = [f"cifar10_path={tmp_path / 'cifar'}", *small]
    r = hessian_spectrum.run_fisher_unit(resolve_config(exp, "quick", 0, [*base, "fisher_samples=16"]), 0, 0)
    assert r.values["data"] == "cifar10" and r.values["samples"] == 16
    with pytest.raises(ValueError, match="Invalid fisher_samples"):
        hessian_spectrum.run_fisher_unit(
            resolve_config(exp, "quick", 0, [*base, "fisher_samples=1000"]), 0, 0
        )


@pytest.mark.slow
def test_hessian_spectrum_quick(tmp_path):
    results, out = run_quick(hessian_spectrum.EXPERIMENT, tmp_path)
    assert (out / "hessian_spectrum.npz").exists()
    m = results["models"][0]
    assert m["method"] == "exact" and m["params"] == 460 and len(results["models"]) == 2
    # Thesis §3.3.1: a large peak at zero, a long positive and a short negative tail.
    assert m["near_zero"]["0.01"]["fraction"] > 0.5
    assert m["lambda_max"]["value"] > 10 * abs(m["lambda_min"]["value"])
    assert results["fisher"] == []  # fisher_model=none: the claim needs CIFAR-10


# ---------------------------------------------------------------- sgd-noise


def _checkpoint(rank=20, rank_2=19, rank_4=17, eff=5.0, trace=0.1, loss=0.1, cv=3.0):
    return {
        "fraction": 1.0,
        "step": 10,
        "train_loss": loss,
        "train_error": 0.0,
        "rank": rank,
        "rank_2": rank_2,
        "rank_4": rank_4,
        "rank_percent": rank / 20,
        "eig_mean": trace / 2000,
        "eig_std": 0.001,
        "trace": trace,
        "nonzero_cv": cv,
        "effective_rank": eff,
        "decades": 2.0,
    }


def _sn(checkpoints=None, seeds=2):
    cps = checkpoints or [_checkpoint(), _checkpoint(rank=21, eff=5.2), _checkpoint()]
    runs = [
        {
            "name": name,
            "seed": s,
            "params": 2000,
            "train_samples": 1258,
            "noise_samples": 512,
            "temperature": 1e-3,
            "checkpoints": copy.deepcopy(cps),
        }
        for name in ("small-lenet", "small-fc")
        for s in range(seeds)
    ]
    for r in runs:  # seeds differ a little
        for c in r["checkpoints"]:
            c["nonzero_cv"] += 0.01 * r["seed"]
            c["rank"] += r["seed"]
            c["rank_2"] += r["seed"]
    return {"data": "digits", "runs": runs}


def test_rank_bounds_extrapolate_the_growth_per_doubling_or_count_one_direction_per_sample():
    r = {"name": "n", "seed": 0, "noise_samples": 512, "train_samples": 2048, "params": 1000}
    low, high = sgd_noise.rank_bounds(r, {"rank": 20, "rank_2": 18, "rank_4": 15})
    assert low == pytest.approx(2.0) and high == pytest.approx(100 * (20 + 2 * 2) / 1000)  # log2(4) = 2
    # growth per doubling not decreasing: only the count bound, one direction per added sample
    low, high = sgd_noise.rank_bounds(r, {"rank": 40, "rank_2": 20, "rank_4": 15})
    assert (low, high) == pytest.approx((4.0, 100.0))  # 40 + 1536 directions, at most d
    low, high = sgd_noise.rank_bounds({**r, "train_samples": 600}, {"rank": 40, "rank_2": 20, "rank_4": 15})
    assert (low, high) == pytest.approx((4.0, 100 * (40 + 88) / 1000))
    # the whole training set: the rank itself
    assert sgd_noise.rank_bounds({**r, "train_samples": 512}, {"rank": 40, "rank_2": 20, "rank_4": 15}) == (
        4.0,
        4.0,
    )


def test_low_rank_claim():
    assert _verdict(sgd_noise, "low-rank", _sn()).status == HELD
    high = [_checkpoint(rank=100, rank_2=95, rank_4=90)] * 3
    assert _verdict(sgd_noise, "low-rank", _sn(high)).status == NOT_HELD
    growing = [_checkpoint(rank=30, rank_2=15, rank_4=10)] * 3  # 1.5% on N samples, up to 38% on M
    v = _verdict(sgd_noise, "low-rank", _sn(growing))
    assert v.status == UNDECIDABLE and v.statistic.ci_high > 30
    few = _sn()
    for r in few["runs"]:
        r["noise_samples"] = 30  # N − 1 = 29 < 2% of d = 40: the sample cannot show a higher rank
    assert _verdict(sgd_noise, "low-rank", few).status == UNDECIDABLE
    straddle = [_checkpoint(rank=38, rank_2=36, rank_4=34)] * 3  # 1.9% to 2.1%
    assert _verdict(sgd_noise, "low-rank", _sn(straddle)).status == UNDECIDABLE


def test_spread_claim():
    assert _verdict(sgd_noise, "spread", _sn()).status == HELD
    assert _verdict(sgd_noise, "spread", _sn([_checkpoint(cv=0.3)] * 3)).status == NOT_HELD
    wide = _sn([_checkpoint(cv=0.8)] * 3)
    for r in wide["runs"]:
        r["checkpoints"][-1]["nonzero_cv"] = 0.5 if r["seed"] == 0 else 1.6
    assert _verdict(sgd_noise, "spread", wide).status == UNDECIDABLE


def test_constant_claim_compares_shapes_and_sizes_at_matched_training_loss():
    assert _verdict(sgd_noise, "constant", _sn()).status == HELD
    changing = [_checkpoint(rank=10, rank_2=9, rank_4=8), _checkpoint(), _checkpoint(rank=40, rank_2=39)]
    assert _verdict(sgd_noise, "constant", _sn(changing)).status == NOT_HELD
    # the same shape, tr D and the loss both five times smaller at the end: not at matched training loss
    shrinking = [_checkpoint(trace=0.5, loss=0.5), _checkpoint(trace=0.3, loss=0.3), _checkpoint()]
    v = _verdict(sgd_noise, "constant", _sn(shrinking))
    assert v.status == UNDECIDABLE and "matched training loss" in v.reason and v.warnings
    # tr D changes while the loss does not: D depends on the weights
    assert (
        _verdict(sgd_noise, "constant", _sn([_checkpoint(trace=0.5), _checkpoint(), _checkpoint()])).status
        == NOT_HELD
    )


def test_checkpoint_rank_is_bounded_by_the_samples_and_halves_are_nested():
    model = sgd_noise.network("small-fc", "digits", 0)
    x, y = torch.randn(40, 64), torch.randint(0, 10, (40,))
    model.eval()
    values, eig = sgd_noise.checkpoint(model, x, y)
    assert values["rank"] <= 39 and values["rank_2"] <= 19 and values["rank_4"] <= 9
    assert values["rank_4"] <= values["rank_2"] <= values["rank"]
    assert values["trace"] == pytest.approx(eig.sum()) and values["eig_mean"] == pytest.approx(
        eig.sum() / 2474
    )
    nonzero = eig[eig > 0][: values["rank"]]
    assert values["effective_rank"] == pytest.approx(eig.sum() ** 2 / (eig**2).sum())
    assert values["nonzero_cv"] == pytest.approx(nonzero.std() / nonzero.mean(), rel=1e-6)


@pytest.mark.slow
def test_sgd_noise_quick(tmp_path):
    results, out = run_quick(sgd_noise.EXPERIMENT, tmp_path)
    assert (out / "sgd_noise.npz").exists()
    config = resolve_config(sgd_noise.EXPERIMENT, "quick", 0)
    runs = results["runs"]
    assert len(runs) == config["seeds"] and {r["name"] for r in runs} == {"small-fc"}
    for r in runs:
        assert r["temperature"] == pytest.approx(config["lr"] / (2 * config["batch_size"]))  # Thesis (6.6)
        assert [c["fraction"] for c in r["checkpoints"]] == pytest.approx(config["checkpoints"], abs=0.01)
        for c in r["checkpoints"]:  # D is the covariance of N gradients: rank ≤ N − 1
            assert c["rank"] <= r["noise_samples"] - 1 and c["rank_percent"] == pytest.approx(
                100 * c["rank"] / r["params"]
            )


# ---------------------------------------------------------------- limit-cycles: numerical cores


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


def _slope_of(weights):
    f, p = limit_cycles.increment_periodogram(weights)
    fit = limit_cycles.low_frequency_slope(f, p)
    half = stats.t.ppf(0.975, fit["dof"]) * fit["stderr"]
    return fit["slope"], half, p


def test_periodogram_of_brownian_motion_is_flat_and_its_slope_interval_covers_zero():
    rng = np.random.default_rng(0)
    walk = np.cumsum(rng.standard_normal((4097, 64)), axis=0)
    slope, half, power = _slope_of(walk)
    assert power.mean() == pytest.approx(1.0, abs=0.03)  # white increments: mean 1 at every frequency
    assert abs(slope) < half


def test_low_frequency_slope_recovers_known_spectra():
    rng = np.random.default_rng(1)
    n, m = 4097, 64
    # iterates held in a basin (Ornstein–Uhlenbeck, relaxation time 10): increments lose their lowest
    # frequencies (power ∝ f² below 1/(2π·10), the whole fitted band): a positive slope, near 2
    ou = np.zeros((n, m))
    for k in range(1, n):
        ou[k] = ou[k - 1] * (1 - 1 / 10) + rng.standard_normal(m)
    slope, half, _ = _slope_of(ou)
    assert slope - half > 1.0
    # a slow oscillation on top of Brownian motion: power at the lowest frequencies, a negative slope
    k = np.arange(n)[:, None]
    drifting = np.cumsum(rng.standard_normal((n, m)), axis=0) + 40 * np.sin(
        2 * np.pi * k / 1500 + rng.uniform(0, 6, m)
    )
    slope, half, _ = _slope_of(drifting)
    assert slope + half < 0


def test_winding_number_counts_turns():
    t = np.linspace(0, 6 * np.pi, 2000)
    assert limit_cycles.winding_number(np.stack([np.cos(t), np.sin(t)], 1)) == pytest.approx(3.0)
    assert limit_cycles.winding_number(np.stack([2 + np.cos(t), np.sin(t)], 1)) == pytest.approx(
        0.0, abs=1e-9
    )


# ---------------------------------------------------------------- limit-cycles: claims


def _well(lam, shift, speed, turns, x1=1.04, x2=1.0, std=1.0, particles=20_000):
    crit = [[1 - shift, 0.0], [-1 + shift, 0.0]]
    return {
        "lambda": lam,
        "critical_points": crit,
        "critical_point_shift": shift,
        "sde_x1_sq": {"mean": x1, "std": std},
        "sde_x2_sq": {"mean": x2, "std": std},
        "particles": particles,
        "flow_min_speed_late": [speed, speed],
        "flow_turns_late": [turns, turns],
    }


def _lc(n=20_000):
    g = limit_cycles.gibbs_moments()
    return {
        "params": 917,
        "samples": 620,
        "n_snapshots": n,
        "n_weights": 64,
        "periodogram": {
            "slope": -0.5,
            "stderr": 0.05,
            "dof": 100,
            "intercept": 0.0,
            "band": 102,
            "f_max": 0.01,
        },
        "acf_lag": n // 4,
        "acf_band99": 2.576 / math.sqrt(n),
        "acf_at_lag": [0.3, 0.4, 0.35, 0.5],
        "log_grad_norm_first_blocks": np.log([0.30, 0.31, 0.29, 0.30]).tolist(),
        "log_grad_norm_last_blocks": np.log([0.10, 0.11, 0.09, 0.10]).tolist(),
        "grad_norm_window": 2000,
        "double_well": [
            _well(0.0, 0.0, 1e-12, 0.0, x1=g["x1_sq"]),
            _well(0.5, 0.4, 1e-12, 0.0, x1=g["x1_sq"]),
            _well(1.5, 1.0, 0.3, 12.0, x1=g["x1_sq"]),
        ],
        "gibbs_x1_sq": g["x1_sq"],
        "gibbs_x2_sq": g["x2_sq"],
    }


LC_CASES = {  # claim: (edit that breaks it, edit that straddles its bound)
    "low-frequency": ((("periodogram", "slope"), 0.5), (("periodogram", "stderr"), 1.0)),
    "autocorrelation": (
        (("acf_at_lag",), [0.0, 0.001, -0.002, 0.0]),
        (("acf_at_lag",), [0.0, 0.04, 0.0, 0.04]),
    ),
    "gradient-norm": (
        (("log_grad_norm_last_blocks",), np.log([0.01, 0.011, 0.009, 0.01]).tolist()),
        (("log_grad_norm_last_blocks",), np.log([0.02, 0.06, 0.01, 0.03]).tolist()),
    ),
    "steady-state": (
        (("double_well", 2, "sde_x1_sq", "mean"), 1.5),
        (("double_well", 2, "sde_x1_sq", "mean"), 1.09),
    ),
    "critical-points": (
        (("double_well", 1, "critical_point_shift"), 0.0),
        (("double_well", 1, "critical_point_shift"), None),
    ),
    "limit-cycle": (
        (("double_well", 2, "flow_turns_late"), [0.1, 0.1]),
        (("double_well", 2, "flow_min_speed_late"), [1e-3, 2e-3]),
    ),
}


@pytest.mark.parametrize("short", sorted(LC_CASES))
def test_limit_cycle_claims_held_not_held_and_straddling(short):
    (bad_path, bad), (near_path, near) = LC_CASES[short]
    good = _lc()
    assert _verdict(limit_cycles, short, good).status == HELD
    assert _verdict(limit_cycles, short, _edit(good, bad_path, bad)).status == NOT_HELD
    assert _verdict(limit_cycles, short, _edit(good, near_path, near)).status == UNDECIDABLE


@pytest.mark.parametrize("short", ["low-frequency", "autocorrelation", "gradient-norm"])
def test_trajectory_claims_need_ten_thousand_snapshots(short):
    v = _verdict(limit_cycles, short, _lc(n=5_000))
    assert v.status == UNDECIDABLE and v.warnings and "5000 snapshots" in v.reason and v.evidence


def test_gradient_drop_is_the_ratio_of_geometric_means_with_welchs_interval():
    r = _lc()
    s = _verdict(limit_cycles, "gradient-norm", r).statistic
    first, last = np.array(r["log_grad_norm_first_blocks"]), np.array(r["log_grad_norm_last_blocks"])
    diff = first.mean() - last.mean()
    se = math.sqrt(first.var(ddof=1) / 4 + last.var(ddof=1) / 4)
    dof = se**4 / ((first.var(ddof=1) / 4) ** 2 / 3 + (last.var(ddof=1) / 4) ** 2 / 3)  # Welch–Satterthwaite
    half = stats.t.ppf(0.975, dof) * se
    assert (s.estimate, s.ci_low, s.ci_high) == pytest.approx(tuple(np.exp([diff, diff - half, diff + half])))


def test_low_frequency_interval_is_students_and_steady_state_is_relative_to_gibbs():
    s = _verdict(limit_cycles, "low-frequency", _lc()).statistic
    assert s.ci_high - s.estimate == pytest.approx(stats.t.ppf(0.975, 100) * 0.05)
    r = _edit(_lc(), ("double_well", 0, "sde_x2_sq", "mean"), 1.03)
    v = _verdict(limit_cycles, "steady-state", r)
    assert v.status == HELD and "0.03" in v.evidence  # (1.03 − 1)/1 with ± 1.96/√20000


@pytest.mark.slow
def test_limit_cycles_quick(tmp_path):
    results, out = run_quick(limit_cycles.EXPERIMENT, tmp_path)
    assert (out / "limit_cycles.npz").exists()
    assert results["params"] == 917 and results["n_snapshots"] == 250  # tiny-fc, Thesis §6.3.3
    wells = {w["lambda"]: w for w in results["double_well"]}
    assert set(wells) == {0.0, 0.5, 1.5}
    # λ = 0: f = Φ, critical points exactly (±1, 0), the flow stops there; λ = 0.5: they move (Fig. 6.4b);
    # λ = 1.5: the flow keeps circling the origin (Fig. 6.4c).
    np.testing.assert_allclose(np.abs(wells[0.0]["critical_points"]), [[1, 0], [1, 0]], atol=1e-9)
    assert wells[0.0]["flow_min_speed_late"][0] < 1e-6
    assert wells[0.5]["critical_point_shift"] > 0.05
    assert wells[1.5]["flow_min_speed_late"][0] > 1e-2 and wells[1.5]["flow_turns_late"][0] > 1


@pytest.mark.parametrize("experiment", [hessian_spectrum, sgd_noise, limit_cycles, relaxation_1d])
@pytest.mark.parametrize("scale", ["quick", "default", "reference", "paper"])
def test_every_scale_resolves_without_data_paths(experiment, scale):
    """The report re-resolves a run's scale without its overrides (to list them): a scale whose data are
    MNIST must resolve without ``mnist_path`` (a missing file is reported when the data are read)."""
    config = resolve_config(experiment.EXPERIMENT, scale, 0)
    assert experiment.EXPERIMENT.units(config)
    if "data" in config and scale in ("reference", "paper"):
        assert config["data"] == "mnist"


@pytest.mark.parametrize("experiment", [hessian_spectrum, sgd_noise, limit_cycles, relaxation_1d])
def test_diagnostics_are_runs_of_the_experiment_that_explain_its_claims(experiment):
    exp = experiment.EXPERIMENT
    assert exp.diagnostics
    for d in exp.diagnostics:
        assert d.experiment == exp.name and set(d.explains) <= {c.id for c in exp.claims}
        for scale in ("default", "reference"):
            assert resolve_config(exp, scale, 0, list(d.overrides))


def test_limit_cycle_figures_have_labelled_axes_legends_and_no_raw_tex():
    from deeplandscape.experiments.spec import UnitResult

    rng = np.random.default_rng(0)
    f = np.linspace(0.01, 0.5, 50)
    periodogram = {"slope": -0.5, "stderr": 0.1, "dof": 8, "intercept": 0.0, "band": 10, "f_max": 0.1}
    traj = UnitResult(
        {"periodogram": periodogram, "acf_band99": 0.1},
        {
            "frequencies": f,
            "power": 1 + rng.random(50),
            "lags": np.arange(20),
            "acf_mean": np.linspace(1, 0, 20),
            "acf_std": np.full(20, 0.1),
            "grad_norms": 1 + rng.random(100),
        },
    )
    well = UnitResult(
        {"lambda": 0.5, "critical_points": [[0.9, 0.4], [None, None]]},
        {"points": rng.standard_normal((50, 2)), "orbit": rng.standard_normal((30, 2))},
    )
    for fig in (limit_cycles.plot_trajectory(traj, {"burnin": 10}), limit_cycles.plot_wells([well])):
        for ax in fig.axes:
            assert ax.get_xlabel() and ax.get_ylabel() and ax.get_legend() is not None
            texts = [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
            texts += [t.get_text() for t in ax.get_legend().get_texts()]
            assert not [t for t in texts if "_{" in t and "$" not in t]  # TeX only inside math text
