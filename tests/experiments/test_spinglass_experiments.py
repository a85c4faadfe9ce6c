"""The spin-glass experiments: every claim held / did not hold / not decidable (or its guard) on synthetic
results, the statistics against independent computations, the finite-size fit against a known asymptote,
and each experiment's --quick run (every promised file and key, and the physics at that scale)."""

import itertools
import math

import numpy as np
import pytest
import torch

from deeplandscape.experiments import (
    _finite_size,
    complexity,
    floor,
    gd_vs_sgd,
    get,
    layers,
    regimes,
    shift,
    tripartite,
)
from deeplandscape.experiments import claims as c
from deeplandscape.experiments.spec import ConfigError, UnitResult, resolve_config
from deeplandscape.rundir import save_npz
from deeplandscape.spinglass import PSpinGlass, descend, theory

from ._quick import run_quick

E0, EINF = theory.e0(3), theory.e_inf(3)
NAMES = ["complexity", "floor", "regimes", "gd-vs-sgd", "tripartite", "layers", "shift"]


def _status(claims, claim_id, results, config=None, directory=None):
    claim = next(x for x in claims if x.id == claim_id)
    return claim.evaluate(c.RunData(results, config or {"seed": 0}, directory))


# ------------------------------------------------------------------------------------ the finite-size fit


def test_fit_recovers_a_known_asymptote_exactly():
    n = np.array([25, 50, 100, 200, 300, 500.0])
    fit = _finite_size.fit_power_law(n, -1.633 + 0.8 * n**-0.6)
    assert fit.asymptote == pytest.approx(-1.633, abs=5e-4)  # the grid of b is 1% fine
    assert fit.exponent == pytest.approx(0.6, rel=0.02) and fit.amplitude == pytest.approx(0.8, rel=0.05)
    fixed = _finite_size.fit_power_law(n, -1.633 + 0.8 * n ** (-2 / 3), exponent=2 / 3)
    assert fixed.asymptote == pytest.approx(-1.633, abs=1e-12) and fixed.amplitude == pytest.approx(0.8)


def test_fit_matches_a_direct_least_squares_at_its_exponent():
    rng = np.random.default_rng(3)
    n = np.array([50, 100, 200, 500.0])
    y = -1.6 + 1.2 * n**-0.5 + rng.normal(0, 1e-3, n.size)
    fit = _finite_size.fit_power_law(n, y)
    a, c0 = np.polyfit(n**-fit.exponent, y, 1)  # the profile fit is linear least squares at the best b
    assert fit.asymptote == pytest.approx(c0, abs=1e-10) and fit.amplitude == pytest.approx(a, rel=1e-8)
    for b in (fit.exponent * 0.8, fit.exponent * 1.25):  # and its residual is the least over b
        assert np.polyfit(n**-b, y, 1, full=True)[1][0] >= (fit.rms**2) * n.size - 1e-15


def test_fit_interval_covers_a_known_asymptote_on_synthetic_disorders():
    """Synthetic disorders: y = c + a·n^(−b) + N(0, s²) per disorder. The interval covers c (fixed seeds),
    and with b fixed it does so in at least 17 of 20 independent data sets (95% nominal, 5 disorders)."""
    n = np.array([50, 100, 200, 300, 500.0])
    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(20):
        per = [-1.633 + 1.5 * k ** (-2 / 3) + rng.normal(0, 0.004, 5) for k in n]
        s = _finite_size.asymptote_interval(n, per, exponent=2 / 3)
        covered += s.ci_low <= -1.633 <= s.ci_high
        assert s.ci_high - s.ci_low < 0.03
    assert covered >= 17
    per = [-1.633 + 1.5 * k**-0.6 + np.random.default_rng(1).normal(0, 0.002, 5) for k in n]
    free = _finite_size.asymptote_interval(n, per)
    assert free.ci_low <= -1.633 <= free.ci_high and "bootstrap over 5 disorders" in free.method


def test_fit_refuses_what_it_cannot_fit():
    with pytest.raises(ValueError, match="3 distinct sizes"):
        _finite_size.fit_power_law([10, 20], [1.0, 2.0])
    with pytest.raises(ValueError, match="exponent"):
        _finite_size.fit_power_law([10, 20], [1.0, 2.0], exponent=-1.0)
    with pytest.raises(c.Undecidable, match="single disorder"):
        _finite_size.asymptote_interval([10, 20, 40], [[1.0], [2.0], [3.0]])


# ------------------------------------------------------------------------------------ floor


def _floor_results(per_n, *, stds=None, minima=None, grad=5e-5, exponent=2 / 3, tol=1e-4, unchecked=0):
    """results.json of a floor run whose disorder means are ``per_n[n]``."""
    rows = []
    for k, (n, means) in enumerate(per_n.items()):
        runs = 10 * len(means)
        rows.append(
            {"n": n, "disorders": len(means), "runs": runs, "mean": float(np.mean(means)),
             "min": float(np.min(means)) - 0.05, "max": float(np.max(means)) + 0.05,
             "disorder_means": list(map(float, means)),
             "disorder_stds": list(stds[k]) if stds is not None else [0.3 * n**-0.5] * len(means),
             "minima": runs if minima is None else minima, "max_grad_norm": grad, "median_lambda_min": 0.1,
             "critical": runs - unchecked,
             "critical_minima": (runs if minima is None else minima) - unchecked,
             "converged_fraction": 1.0, "median_steps": 100.0}
        )  # fmt: skip
    config = {"fit_from": 50, "fit_exponent": exponent, "seed": 0}
    return {"p": 3, "e0": E0, "e_inf": EINF, "tol": tol, "sizes": rows, "fits": floor._fits(config, rows)}


def _per_n(asymptote, noise, sizes=(50, 100, 200, 300, 500), seed=0):
    rng = np.random.default_rng(seed)
    return {n: asymptote + 1.5 * n ** (-2 / 3) + rng.normal(0, noise, 5) for n in sizes}


def test_floor_asymptote_claim():
    assert _status(floor.CLAIMS, "floor.asymptote", _floor_results(_per_n(-EINF, 0.002))).status == c.HELD
    assert _status(floor.CLAIMS, "floor.asymptote", _floor_results(_per_n(-1.60, 0.002))).status == c.NOT_HELD
    # at the ground state rather than the floor: outside the margin on the other side
    assert _status(floor.CLAIMS, "floor.asymptote", _floor_results(_per_n(-E0 - 0.01, 0.002))).status == (
        c.NOT_HELD
    )
    noisy = _status(floor.CLAIMS, "floor.asymptote", _floor_results(_per_n(-EINF, 0.05)))
    assert noisy.status == c.UNDECIDABLE and "contains the criterion's bound" in noisy.reason
    few = _floor_results({25: [-1.4, -1.41], 40: [-1.5, -1.49]})
    assert _status(floor.CLAIMS, "floor.asymptote", few).status == c.NOT_CHECKED


def test_floor_asymptote_guard_when_the_data_do_not_support_the_fixed_exponent():
    rng = np.random.default_rng(0)
    slow = {n: -EINF + 0.4 * n**-0.15 + rng.normal(0, 5e-4, 5) for n in (50, 100, 200, 300, 500)}
    verdict = _status(floor.CLAIMS, "floor.asymptote", _floor_results(slow))
    assert verdict.status == c.UNDECIDABLE and verdict.warnings
    assert "the data do not support b = 0.6667" in verdict.reason
    free = _floor_results(slow, exponent=0.0)  # fitting b instead: the fit recovers the slow exponent
    assert free["fits"][0]["exponent"] == pytest.approx(0.15, abs=0.05)


def test_floor_fit_table_shows_the_fixed_and_the_free_exponent():
    results = _floor_results(_per_n(-EINF, 0.002), exponent=0.0)
    assert [f["exponent_fitted"] for f in results["fits"]] == [True, False]
    assert results["fits"][1]["exponent"] == pytest.approx(2 / 3)
    config = {"scale": "default", "seed": 0}
    fit_table = next(t for t in floor.tables(results, config) if t.id == "floor-fit")
    assert len(fit_table.rows) == 2 and all("1.633" in row[-1] for row in fit_table.rows)


def test_floor_above_claim():
    assert _status(floor.CLAIMS, "floor.above", _floor_results(_per_n(-EINF, 0.002))).status == c.HELD
    below = _per_n(-EINF, 0.002)
    below[500] = below[500] - 0.1
    assert _status(floor.CLAIMS, "floor.above", _floor_results(below)).status == c.NOT_HELD
    straddle = _per_n(-EINF, 0.002)
    straddle[500] = np.array([-EINF - 0.02, -EINF + 0.02, -EINF - 0.01, -EINF + 0.01, -EINF])
    assert _status(floor.CLAIMS, "floor.above", _floor_results(straddle)).status == c.UNDECIDABLE


def test_floor_spread_claim_and_its_slope():
    sizes = (50, 100, 200, 300, 500)
    rng = np.random.default_rng(0)
    shrinking = [0.4 * n**-0.5 * (1 + 0.05 * rng.normal(size=5)) for n in sizes]
    verdict = _status(floor.CLAIMS, "floor.spread", _floor_results(_per_n(-EINF, 0.002), stds=shrinking))
    assert verdict.status == c.HELD
    # the estimate is the least-squares slope of log(mean std) on log n (numpy's polyfit)
    expected = np.polyfit(np.log(sizes), np.log([s.mean() for s in shrinking]), 1)[0]
    assert verdict.statistic.estimate == pytest.approx(expected, rel=1e-9)
    growing = [0.01 * n**0.3 * (1 + 0.05 * rng.normal(size=5)) for n in sizes]
    assert _status(
        floor.CLAIMS, "floor.spread", _floor_results(_per_n(-EINF, 0.002), stds=growing)
    ).status == (c.NOT_HELD)
    base = 0.05 * (1 + 0.5 * rng.normal(size=5)) ** 2  # the same spread at every n: slope 0 ± resampling
    flat = [rng.permutation(base) for n in sizes]
    assert _status(floor.CLAIMS, "floor.spread", _floor_results(_per_n(-EINF, 0.002), stds=flat)).status == (
        c.UNDECIDABLE
    )


def test_floor_minima_claim_and_its_gradient_guard():
    per_n = _per_n(-EINF, 0.002)
    assert _status(floor.CLAIMS, "floor.minima", _floor_results(per_n)).status == c.HELD
    assert _status(floor.CLAIMS, "floor.minima", _floor_results(per_n, minima=25)).status == c.NOT_HELD
    guarded = _status(floor.CLAIMS, "floor.minima", _floor_results(per_n, grad=3e-4, unchecked=20))
    assert guarded.status == c.UNDECIDABLE and guarded.warnings and "not critical points" in guarded.reason
    # a few endpoints that ran out of steps (1 of 50 per size, under 5%) are left out, not fatal
    few_out = _status(floor.CLAIMS, "floor.minima", _floor_results(per_n, grad=3e-4, unchecked=1))
    assert few_out.status == c.HELD and "5 of 250 above it left out" in few_out.evidence
    few = _floor_results({20: [-1.4, -1.41], 40: [-1.5, -1.49]}, minima=19)  # 38 of 40: Wilson straddles
    assert _status(floor.CLAIMS, "floor.minima", few).status == c.UNDECIDABLE


def test_floor_runs_per_size_are_validated():
    config = resolve_config(get("floor"), "quick", 0, ["sizes=20,40", "runs=8,16"])
    assert floor.runs_per_size(config) == {20: 8, 40: 16}
    with pytest.raises(ConfigError, match=r"Invalid runs: 8,16,24 .* one value per size"):
        resolve_config(get("floor"), "quick", 0, ["sizes=20,40", "runs=8,16,24"])


# ------------------------------------------------------------------------------------ regimes


def _regimes_results(exp=(190, 185, 192), poly=(12, 20, 9), trivial=(1, 1, 1), share=None,
                     cosine=((1.0, 0.99, 1.01), (0.3, 0.2, 0.4), (1e-7, 2e-7, 1e-7)), runs=200):  # fmt: skip
    rows = []
    for name, count, cos in zip(regimes.REGIMES, (exp, poly, trivial), cosine, strict=True):
        rows.append(
            {"name": name, "nu": 1.0, "n_times_b": 0.0, "predicted_regime": name, "runs": runs,
             "distinct_minima": list(count), "largest_share": list(share or [runs] * 3) if name == "trivial"
             else [5] * 3, "mean_cosine_distance": list(cos), "mean_energy": [-1.5] * 3,
             "converged_fraction": [1.0] * 3}
        )  # fmt: skip
    return {"n": 100, "eps": 0.01, "regimes": rows}


def test_regimes_fewer_minima_claim():
    verdict = _status(regimes.CLAIMS, "regimes.fewer-minima", _regimes_results())
    assert verdict.status == c.HELD
    assert verdict.statistic.estimate == pytest.approx(
        np.mean(np.log(np.array([190, 185, 192]) / [12, 20, 9]))
    )
    assert _status(regimes.CLAIMS, "regimes.fewer-minima", _regimes_results(poly=(250, 240, 260))).status == (
        c.NOT_HELD
    )
    assert _status(regimes.CLAIMS, "regimes.fewer-minima", _regimes_results(poly=(100, 400, 150))).status == (
        c.UNDECIDABLE
    )


def test_regimes_unique_claim():
    assert _status(regimes.CLAIMS, "regimes.unique", _regimes_results()).status == c.HELD
    assert _status(regimes.CLAIMS, "regimes.unique", _regimes_results(share=[150, 160, 170])).status == (
        c.NOT_HELD
    )
    small = _regimes_results(share=[30, 30, 30], runs=30)  # 90 of 90: Wilson's lower bound is below 0.99
    assert _status(regimes.CLAIMS, "regimes.unique", small).status == c.UNDECIDABLE


def test_regimes_cosine_claim():
    assert _status(regimes.CLAIMS, "regimes.cosine", _regimes_results()).status == c.HELD
    close = ((0.2, 0.25, 0.3), (0.1, 0.1, 0.1), (1e-7, 1e-7, 1e-7))
    assert _status(regimes.CLAIMS, "regimes.cosine", _regimes_results(cosine=close)).status == c.NOT_HELD
    spread = ((0.1, 1.0, 0.6), (0.1, 0.1, 0.1), (1e-7, 1e-7, 1e-7))
    assert _status(regimes.CLAIMS, "regimes.cosine", _regimes_results(cosine=spread)).status == c.UNDECIDABLE


def test_regimes_figure_draws_a_constant_background_in_one_colour_and_no_offset():
    """The trivial regime's endpoints differ in H/n by float32 round-off only: that panel gets no colour
    map; the others' colour bars print plain values (no offset text over the title), and one minimum is
    "1 minimum"."""
    rng = np.random.default_rng(0)
    first = []
    # polynomial: a range of 2e-4 about −2.0, where matplotlib's default colour bar would print an offset
    for name, count, spread in (("exponential", 40, 0.04), ("polynomial", 3, 2e-4), ("trivial", 1, 1e-7)):
        sigma = rng.normal(size=(40, 20)).astype(np.float32)
        sigma *= np.sqrt(20) / np.linalg.norm(sigma, axis=1, keepdims=True)
        energy = {"exponential": -1.56, "polynomial": -2.0, "trivial": -3.4461}[name] + spread * rng.random(
            40
        )
        values = {"name": name, "nu": 1.0, "runs": 40, "distinct_minima": count}
        first.append(UnitResult(values, {"sigma": sigma, "energy_per_spin": energy.astype(np.float32)}))
    fig = regimes.plot_regimes(first, 40, 0)
    fig.canvas.draw()
    panels, bars = fig.axes[:3], fig.axes[3:]
    assert len(bars) == 2  # no colour bar over float32 noise
    assert all(bar.yaxis.get_offset_text().get_text() == "" for bar in bars)
    assert panels[2].get_title().endswith("1 minimum in 40 runs")
    assert any("every endpoint" in t.get_text() for t in panels[2].texts)


# ------------------------------------------------------------------------------------ gd-vs-sgd


def test_shared_split_keeps_the_total_disorder_and_independent_summands():
    plain = PSpinGlass(12, 3, seed=4)
    one = gd_vs_sgd.SharedSplit(12, 3, parts=1, seed=4)
    many = gd_vs_sgd.SharedSplit(12, 3, parts=8, seed=4)
    assert torch.equal(one.couplings, plain.couplings)  # P = 1 is the plain glass of the same seed
    total = sum(p.unpack() for p in many.components)
    torch.testing.assert_close(total, plain.couplings, atol=2e-6, rtol=0)  # the summands add up to J
    # each summand's disorder is N(0, 1/P) and independent of the others: a symmetrized entry S_ijk with
    # distinct i, j, k averages 6 of them, so its variance is 1/(6P); correlations between summands vanish
    triples = torch.tensor(list(itertools.combinations(range(12), 3)))  # 220 of them
    entries = torch.stack([p.unpack()[triples[:, 0], triples[:, 1], triples[:, 2]] for p in many.components])
    assert entries.var(1).mean().item() == pytest.approx(1 / (6 * 8), rel=0.2)
    off = torch.corrcoef(entries)[~torch.eye(8, dtype=torch.bool)]
    assert off.abs().max().item() < 0.3  # 220 samples: a standard error of 0.07


def _gd_results(final, restart_distance, parts=(1, 20, 30)):
    rows = [
        {
            "P": p,
            "steps": 10 * p,
            "final_energy": list(final[k]),
            "restart_energy": [x - 0.001 for x in final[k]],
            "restart_distance": list(restart_distance[k]),
            "restart_converged": [1.0] * len(final[k]),
        }
        for k, p in enumerate(parts)
    ]
    return {"n": 100, "horizon": 50.0, "eps": 0.01, "parts": rows}


GD = [-1.55, -1.56, -1.57, -1.55, -1.56]
NEAR = [[1e-4] * 5] * 3


def test_gd_vs_sgd_same_energy_claim():
    same = _gd_results([GD, [x + 0.003 for x in GD], [x + 0.004 for x in GD]], NEAR)
    verdict = _status(gd_vs_sgd.CLAIMS, "gd-vs-sgd.same-energy", same)
    assert verdict.status == c.HELD and verdict.statistic.estimate == pytest.approx(0.003)
    higher = _gd_results([GD, [x + 0.1 for x in GD], [x + 0.004 for x in GD]], NEAR)
    assert _status(gd_vs_sgd.CLAIMS, "gd-vs-sgd.same-energy", higher).status == c.NOT_HELD
    noisy = _gd_results(
        [GD, [x + d for x, d in zip(GD, (0.0, 0.05, -0.03, 0.04, 0.0), strict=True)], GD], NEAR
    )
    assert _status(gd_vs_sgd.CLAIMS, "gd-vs-sgd.same-energy", noisy).status == c.UNDECIDABLE
    no_gd = _gd_results([GD, GD], NEAR[:2], parts=(5, 10))
    assert _status(gd_vs_sgd.CLAIMS, "gd-vs-sgd.same-energy", no_gd).status == c.NOT_CHECKED


def test_gd_vs_sgd_walls_claim():
    assert _status(gd_vs_sgd.CLAIMS, "gd-vs-sgd.walls", _gd_results([GD] * 3, NEAR)).status == c.HELD
    far = [[1e-4] * 5, [0.3, 0.4, 0.35, 0.3, 0.32], [1e-4] * 5]
    assert _status(gd_vs_sgd.CLAIMS, "gd-vs-sgd.walls", _gd_results([GD] * 3, far)).status == c.NOT_HELD
    straddle = [[1e-4] * 5, [0.001, 0.03, 0.002, 0.02, 0.001], [1e-4] * 5]
    assert _status(gd_vs_sgd.CLAIMS, "gd-vs-sgd.walls", _gd_results([GD] * 3, straddle)).status == (
        c.UNDECIDABLE
    )


# ------------------------------------------------------------------------------------ tripartite


def _tri_results(tri_means, spin_means, tri_std=((0.08,) * 5, (0.02,) * 5)):
    rows = []
    for k, n in enumerate((10, 100)):
        rows.append({"model": "tripartite", "n": n, "runs": 500, "mean": list(tri_means[k]),
                     "std": list(tri_std[k]), "converged_fraction": [1.0] * 5})  # fmt: skip
        rows.append({"model": "3-spin", "n": n, "runs": 500, "mean": list(spin_means[k]),
                     "std": [0.05] * 5, "converged_fraction": [1.0] * 5})  # fmt: skip
    return {"sizes": [10, 100], "rows": rows}


def test_tripartite_lower_claim():
    spin = ((-1.40, -1.42, -1.38, -1.41, -1.39), (-1.56, -1.55, -1.57, -1.56, -1.56))
    lower = tuple(tuple(x - 0.2 for x in s) for s in spin)
    assert _status(tripartite.CLAIMS, "tripartite.lower", _tri_results(lower, spin)).status == c.HELD
    higher = tuple(tuple(x + 0.2 for x in s) for s in spin)
    assert _status(tripartite.CLAIMS, "tripartite.lower", _tri_results(higher, spin)).status == c.NOT_HELD
    mixed = (lower[0], tuple(x + d for x, d in zip(spin[1], (-0.05, 0.05, -0.04, 0.04, 0.0), strict=True)))
    assert _status(tripartite.CLAIMS, "tripartite.lower", _tri_results(mixed, spin)).status == c.UNDECIDABLE


def test_tripartite_floor_claim():
    spin = ((-1.4,) * 5, (-1.56,) * 5)
    tri = ((-1.6,) * 5, (-1.8,) * 5)
    assert _status(tripartite.CLAIMS, "tripartite.floor", _tri_results(tri, spin)).status == c.HELD
    wider = ((0.02, 0.021, 0.019, 0.02, 0.02), (0.08, 0.081, 0.079, 0.08, 0.08))
    assert _status(tripartite.CLAIMS, "tripartite.floor", _tri_results(tri, spin, wider)).status == c.NOT_HELD
    noisy = ((0.02, 0.2, 0.01, 0.1, 0.05), (0.05, 0.06, 0.04, 0.05, 0.05))
    assert (
        _status(tripartite.CLAIMS, "tripartite.floor", _tri_results(tri, spin, noisy)).status == c.UNDECIDABLE
    )


# ------------------------------------------------------------------------------------ layers


def _layers_run(tmp_path, energy, idx, grad=1e-9):
    energy, idx = np.asarray(energy, float), np.asarray(idx)
    save_npz(tmp_path / "layers.npz", energy=energy, index=idx, grad_norm=np.full(energy.size, grad))
    by_index = [
        {"k": int(k), "count": int((idx == k).sum()), "mean_energy": float(energy[idx == k].mean()),
         "min_energy": float(energy[idx == k].min()), "e_k": theory.e_k(3, int(k)),
         "below_minus_e_k": int((energy[idx == k] < -theory.e_k(3, int(k))).sum())}
        for k in sorted(set(idx.tolist()))
    ]  # fmt: skip
    return {"n": 60, "tol": 1e-7, "points": int(energy.size), "max_grad_norm": grad, "by_index": by_index}


def test_layers_claims(tmp_path):
    rng = np.random.default_rng(0)
    idx = np.repeat(np.arange(6), 30)
    layered = -1.55 + 0.06 * idx + rng.normal(0, 0.02, idx.size)
    good = _layers_run(tmp_path, layered, idx)
    for claim_id in ("layers.below", "layers.order"):
        assert _status(layers.CLAIMS, claim_id, good, directory=tmp_path).status == c.HELD
    verdict = _status(layers.CLAIMS, "layers.order", good, directory=tmp_path)
    assert verdict.statistic.estimate == pytest.approx(np.polyfit(idx, layered, 1)[0], rel=1e-9)
    inverted = _layers_run(tmp_path, -1.2 - 0.06 * idx + rng.normal(0, 0.02, idx.size), idx)
    assert _status(layers.CLAIMS, "layers.order", inverted, directory=tmp_path).status == c.NOT_HELD
    flat = _layers_run(tmp_path, -1.3 + rng.normal(0, 0.05, idx.size), idx)
    assert _status(layers.CLAIMS, "layers.order", flat, directory=tmp_path).status == c.UNDECIDABLE
    deep = _layers_run(tmp_path, np.where(idx >= 3, -1.70, layered), idx)  # index ≥ 3 below −E_k
    assert _status(layers.CLAIMS, "layers.below", deep, directory=tmp_path).status == c.NOT_HELD
    few = _layers_run(tmp_path, layered[:20], idx[:20])  # 20 points, none below: Wilson reaches above 5%
    assert _status(layers.CLAIMS, "layers.below", few, directory=tmp_path).status == c.UNDECIDABLE
    unchecked = _layers_run(tmp_path, layered, idx, grad=1e-3)
    guarded = _status(layers.CLAIMS, "layers.order", unchecked, directory=tmp_path)
    assert guarded.status == c.UNDECIDABLE and guarded.warnings


# ------------------------------------------------------------------------------------ shift


def _shift_run(tmp_path, energy, lam, distance, change=0.01, nu=0.5):
    rows, arrays = [], {}
    gap = shift.gap_threshold()
    for n, e, lm, d in zip((25, 50, 100, 200), energy, lam, distance, strict=True):
        e, lm, d = (
            np.full(32, x, dtype=float) if np.ndim(x) == 0 else np.asarray(x, float) for x in (e, lm, d)
        )
        inside = (e < -EINF) & (lm >= gap)
        arrays |= {f"energy_n{n}": e, f"lambda_min_n{n}": lm, f"distance_n{n}": d}
        rows.append(
            {"n": n, "field_std": nu / math.sqrt(n), "minima": 32, "index_zero": 32, "moved_index_zero": 32,
             "max_grad_norm": 9e-5, "median_energy": float(np.median(e)), "min_energy": float(e.min()),
             "median_lambda_min": float(np.median(lm)), "in_hypotheses": int(inside.sum()),
             "median_distance": float(np.median(d)), "median_predicted_distance": float(np.median(d)),
             "median_distance_in_hypotheses": float(np.median(d[inside])) if inside.any() else None,
             "jump_fraction": 0.0, "max_energy_change": change,
             "max_energy_change_in_hypotheses": change if inside.any() else None}
        )  # fmt: skip
    save_npz(tmp_path / "shift.npz", **arrays)
    return {"nu": nu, "scaling": "appendix", "tol": 1e-4, "e0": E0, "e_inf": EINF, "gap_threshold": gap,
            "sizes": rows}  # fmt: skip


def _scatter(values, rel=0.1, seed=0):
    rng = np.random.default_rng(seed)
    return [v * np.exp(rel * rng.normal(size=32)) for v in values]


NS = np.array([25, 50, 100, 200.0])


def test_shift_linear_response_is_the_shift_of_a_minimum_under_a_weak_field():
    """Eq. (A-9)'s ξ = Hess⁻¹ P h against the true perturbed minimum, found by descent in float64: for a
    weak field the two agree to first order (relative error O(ν))."""
    plain = PSpinGlass(20, 3, seed=2, dtype=torch.float64)
    weak = PSpinGlass(20, 3, seed=2, field_std=1e-4, dtype=torch.float64)
    minima = descend(plain, plain.random_configurations(4, seed=3), lr=0.1, tol=1e-11, max_steps=50_000)
    moved = descend(weak, minima.sigma, lr=0.1, tol=1e-11, max_steps=50_000)
    assert minima.converged.all() and moved.converged.all()
    measured = ((moved.sigma - minima.sigma).norm(dim=1) / math.sqrt(20)).numpy()
    predicted = shift.linear_response(plain, minima.sigma, weak.field, chunk=2)
    np.testing.assert_allclose(predicted, measured, rtol=1e-2)


def test_shift_claims_are_outside_the_hypotheses_for_marginal_minima(tmp_path):
    marginal = _shift_run(
        tmp_path, [-1.45, -1.52, -1.56, -1.58], 0.4 * NS ** (-2 / 3), _scatter(0.1 * NS**-0.5)
    )
    for claim_id in ("shift.distance", "shift.energy"):
        verdict = _status(shift.CLAIMS, claim_id, marginal, directory=tmp_path)
        assert verdict.status == c.UNDECIDABLE and "outside the theorem's hypotheses" in verdict.reason
        assert verdict.warnings and "median λ_min" in verdict.reason
    # the question beyond the papers is decided on every minimum
    assert _status(shift.CLAIMS, "shift.threshold-minima", marginal, directory=tmp_path).status == c.HELD


def test_shift_claims_within_the_hypotheses(tmp_path):
    deep, gapped = [-1.65] * 4, [0.06] * 4
    good = _shift_run(tmp_path, deep, gapped, _scatter(0.1 * NS ** (-1 / 2)))
    assert _status(shift.CLAIMS, "shift.distance", good, directory=tmp_path).status == c.HELD
    assert _status(shift.CLAIMS, "shift.energy", good, directory=tmp_path).status == c.HELD
    stuck = _shift_run(tmp_path, deep, gapped, _scatter(0.1 * NS**0.0), change=1.5)
    assert _status(shift.CLAIMS, "shift.distance", stuck, directory=tmp_path).status == c.NOT_HELD
    assert _status(shift.CLAIMS, "shift.energy", stuck, directory=tmp_path).status == c.NOT_HELD
    noisy = _shift_run(tmp_path, deep, gapped, _scatter(0.1 * NS**-0.25, rel=1.0, seed=1))
    assert _status(shift.CLAIMS, "shift.distance", noisy, directory=tmp_path).status == c.UNDECIDABLE


# ------------------------------------------------------------------------------------ complexity


def test_complexity_claims(tmp_path):
    results, _ = run_quick(get("complexity"), tmp_path)
    for claim in complexity.CLAIMS:
        assert _status(complexity.CLAIMS, claim.id, results).status == c.HELD
    # Corollary 4.1 against its closed form: Θ_k − Θ_0 = −k·I_1(u) < 0 for u < −E∞
    u = np.linspace(-E0, -EINF, 50)[1:-1]
    assert np.allclose(theory.complexity(u, 3, 2) - theory.complexity(u, 3, 0), -2 * theory.rate_i1(u, 3))
    saddles = {**results, "minima_excess": [-1e-3, 2e-4]}
    assert _status(complexity.CLAIMS, "complexity.minima-dominate", saddles).status == c.NOT_HELD
    assert _status(
        complexity.CLAIMS, "complexity.minima-dominate", {**results, "minima_excess": None}
    ).status == (c.NOT_CHECKED)
    wrong = {**results, "e0": 1.70}
    assert _status(complexity.CLAIMS, "complexity.values", wrong).status == c.NOT_HELD


# ------------------------------------------------------------------------------------ the quick runs


def _run(name, tmp_path, overrides=()):
    return run_quick(get(name), tmp_path, overrides)


@pytest.mark.slow
def test_floor_quick(tmp_path):
    results, out = _run("floor", tmp_path)
    rows = results["sizes"]
    for row in rows:
        assert row["converged_fraction"] == 1.0 and row["minima"] == row["runs"]
        assert row["max_grad_norm"] <= 2 * results["tol"]
        if row["n"] >= 40:
            assert -E0 <= row["mean"] <= -1.4
    assert np.mean(rows[-1]["disorder_stds"]) < np.mean(rows[0]["disorder_stds"])
    assert rows[-1]["median_lambda_min"] < rows[0]["median_lambda_min"]  # softer minima at larger n
    assert results["fits"] and (out / "floor.npz").exists() and (out / "floor_fit.png").exists()


@pytest.mark.slow
def test_regimes_quick(tmp_path):
    results, _ = _run("regimes", tmp_path)
    by = {r["name"]: r for r in results["regimes"]}
    assert by["trivial"]["distinct_minima"] == [1, 1, 1] and max(by["trivial"]["mean_cosine_distance"]) < 0.01
    assert (
        min(by["exponential"]["distinct_minima"]) > 10
        and min(by["exponential"]["mean_cosine_distance"]) > 0.5
    )
    for r in results["regimes"]:
        assert r["predicted_regime"] == r["name"]


@pytest.mark.slow
def test_gd_vs_sgd_quick(tmp_path):
    results, _ = _run("gd-vs-sgd", tmp_path)
    rows = results["parts"]
    assert [r["P"] for r in rows] == [1, 5, 10]
    for r in rows:
        assert max(r["final_energy"]) < -1.2 and min(r["restart_converged"]) == 1.0
        # the restart only descends
        assert all(b <= a + 1e-6 for a, b in zip(r["final_energy"], r["restart_energy"], strict=True))


@pytest.mark.slow
def test_tripartite_quick(tmp_path):
    results, _ = _run("tripartite", tmp_path)
    rows = {(r["model"], r["n"]): r for r in results["rows"]}
    for n in results["sizes"]:
        assert np.mean(rows["tripartite", n]["mean"]) < np.mean(rows["3-spin", n]["mean"])


@pytest.mark.slow
def test_layers_quick(tmp_path):
    results, out = _run("layers", tmp_path)
    assert results["points"] >= 10 and results["max_grad_norm"] <= results["tol"]
    indices = [r["k"] for r in results["by_index"]]
    assert 0 in indices and max(indices) >= 3
    assert (out / "layers.npz").exists()


@pytest.mark.slow
def test_shift_quick(tmp_path):
    results, _ = _run("shift", tmp_path)
    for r in results["sizes"]:
        assert r["index_zero"] == r["minima"] and r["median_distance"] < 0.1
        assert r["max_energy_change"] <= 2 * results["nu"]  # Thm 5: |ΔH/n| ≤ 2ν
        assert r["median_energy"] > -EINF  # descent ends just above the floor, not near −E₀


@pytest.mark.parametrize("name", NAMES)
def test_every_experiment_declares_its_source_and_valid_scales(name):
    exp = get(name)
    assert exp.reproduces and exp.description and exp.claims and exp.figures
    for scale in ("quick", "default", "reference", "paper"):
        resolve_config(exp, scale, 0)  # every scale is a valid configuration
    for claim in exp.claims:
        assert claim.id.startswith(name + ".") and claim.shown_in
