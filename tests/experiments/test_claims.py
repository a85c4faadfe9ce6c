"""The verdict machinery: intervals against closed forms, outcomes on either side of a criterion, guards."""

import math

import numpy as np
import pytest

from deeplandscape.experiments import claims as c

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile
T975 = {1: 12.706204736174705, 2: 4.302652729749464, 4: 2.7764451051977934}  # Student t, 97.5%


def _stat(lo, hi, estimate=None):
    return c.Statistic("x", (lo + hi) / 2 if estimate is None else estimate, lo, hi)


# ------------------------------------------------------------------------------------------ outcomes


@pytest.mark.parametrize(
    ("lo", "hi", "status"),
    [(1.1, 1.5, c.HELD), (0.2, 0.9, c.NOT_HELD), (0.2, 1.0, c.NOT_HELD), (0.9, 1.2, c.UNDECIDABLE)],
)
def test_one_sided_claim_is_decided_only_by_an_interval_on_one_side(lo, hi, status):
    verdict = c.decide(_stat(lo, hi), above=1.0)
    assert verdict.status == status
    assert (verdict.reason != "") == (status == c.UNDECIDABLE)
    assert verdict.statistic.ci_low == lo


@pytest.mark.parametrize(
    ("lo", "hi", "status"),
    [(-0.5, 0.5, c.HELD), (1.5, 2.0, c.NOT_HELD), (-3.0, -1.2, c.NOT_HELD), (0.5, 1.5, c.UNDECIDABLE),
     (-2.0, 2.0, c.UNDECIDABLE)],
)  # fmt: skip
def test_band_claim_needs_the_whole_interval_inside(lo, hi, status):
    assert c.decide(_stat(lo, hi), above=-1.0, below=1.0).status == status


def test_straddling_reason_names_the_bound_and_the_interval():
    verdict = c.decide(c.Statistic("gap", 0.1, -0.2, 0.4), below=0.0)
    assert verdict.status == c.UNDECIDABLE
    assert "[-0.2, 0.4]" in verdict.reason and "bound 0" in verdict.reason and "gap" in verdict.reason


def test_statistic_and_verdict_refuse_inconsistent_values():
    with pytest.raises(ValueError, match="interval"):
        c.Statistic("x", 0.0, 1.0, -1.0)
    with pytest.raises(ValueError, match="finite"):
        c.Statistic("x", math.nan, 0.0, 1.0)
    with pytest.raises(ValueError, match="reason"):
        c.Verdict(c.UNDECIDABLE, "evidence")
    with pytest.raises(ValueError, match="status"):
        c.Verdict("probably", "evidence")
    with pytest.raises(ValueError, match="bound"):
        c.decide(_stat(0, 1))


# ------------------------------------------------------------------------------------------ intervals


def test_wilson_interval_matches_the_closed_form():
    k, n = 30, 360
    p = k / n
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 / (1 + Z95**2 / n) * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n**2))
    s = c.proportion(k, n, "error")
    assert s.estimate == pytest.approx(p)
    assert s.ci_low == pytest.approx(centre - half, rel=1e-9)
    assert s.ci_high == pytest.approx(centre + half, rel=1e-9)


@pytest.mark.parametrize("n", [2, 3, 5])
def test_paired_t_interval_matches_the_closed_form(n):
    rng = np.random.default_rng(n)
    a, b = rng.normal(2.0, 0.3, n), rng.normal(2.5, 0.3, n)
    d = a - b
    half = T975[n - 1] * d.std(ddof=1) / math.sqrt(n)
    s = c.paired_difference(a, b, "difference")
    assert s.estimate == pytest.approx(d.mean())
    assert (s.ci_low, s.ci_high) == pytest.approx((d.mean() - half, d.mean() + half), rel=1e-9)


def test_one_replicate_gives_no_interval():
    with pytest.raises(c.Undecidable, match="single seed"):
        c.mean([1.0], "error")
    with pytest.raises(c.Undecidable, match="single disorder"):
        c.bootstrap([1.0], np.mean, "energy", what="disorder")


def test_bootstrap_interval_covers_the_mean_at_its_level():
    """Coverage over many data sets with a known mean: 95% ± 3 binomial standard errors (fixed seeds)."""
    hits, trials = 0, 200
    for k in range(trials):
        sample = np.random.default_rng(1000 + k).exponential(1.0, 40)
        s = c.bootstrap(sample, np.mean, "mean", what="run", seed=k)
        hits += s.ci_low <= 1.0 <= s.ci_high
    tolerance = 3 * math.sqrt(0.95 * 0.05 / trials)
    assert abs(hits / trials - 0.95) <= tolerance + 0.03  # BCa's small-sample undercoverage at n = 40


def test_bootstrap_is_reproducible():
    sample = np.random.default_rng(0).normal(size=30)
    assert c.bootstrap(sample, np.mean, "m", what="run") == c.bootstrap(sample, np.mean, "m", what="run")


def test_error_difference_unions_the_seed_and_the_test_set_intervals():
    rng = np.random.default_rng(0)
    seeds, samples = 5, 2000
    b = rng.random((seeds, samples)) < 0.10
    a = b & (rng.random((seeds, samples)) < 0.5)  # a makes about half of b's errors: 5 points better
    s = c.error_difference(a, b, "a − b")
    per_seed = 100 * (a.mean(1) - b.mean(1))
    t = c.mean(per_seed, "a − b")
    assert s.estimate == pytest.approx(per_seed.mean())
    assert s.ci_low <= t.ci_low and s.ci_high >= t.ci_high  # at least as wide as the seed interval
    # the test-set interval alone: binomial scale of the per-sample differences
    d = 100 * (a.astype(float) - b).mean(0)
    assert s.ci_high - s.ci_low >= 2 * 1.9 * d.std(ddof=1) / math.sqrt(samples)
    assert c.decide(s, below=0.0).status == c.HELD


def test_error_difference_with_one_seed_is_not_decidable():
    a = np.zeros((1, 100), bool)
    with pytest.raises(c.Undecidable, match="one seed"):
        c.error_difference(a, a, "a − b")


def test_identical_methods_are_not_declared_different():
    rng = np.random.default_rng(3)
    wrong = rng.random((5, 500)) < 0.2
    s = c.error_difference(wrong, wrong, "a − b")
    assert (s.estimate, s.ci_low, s.ci_high) == (0.0, 0.0, 0.0)
    assert c.decide(s, above=0.0).status == c.NOT_HELD and c.decide(s, below=0.0).status == c.NOT_HELD


# ------------------------------------------------------------------------------------------ guards


def _claim(decision):
    return c.Claim("x.y", "a claim", "Paper §1", "a criterion", decision)


def test_chance_guard_fires_for_a_classifier_at_chance_and_not_for_one_that_learnt():
    def decision(wrong):
        def run(_):
            c.require_above_chance("Adam", wrong=wrong, trials=360, num_classes=10)
            return c.Verdict(c.HELD, "fine")

        return run

    at_chance = _claim(decision(wrong=int(0.91 * 360))).evaluate(c.RunData({}, {}))
    assert at_chance.status == c.UNDECIDABLE
    assert at_chance.warnings and "chance" in at_chance.warnings[0] and "Adam" in at_chance.reason
    assert _claim(decision(wrong=int(0.05 * 360))).evaluate(c.RunData({}, {})).status == c.HELD


def test_update_guard_fires_below_the_required_number_of_cycles():
    def run(_):
        c.require_updates("Entropy-SGD", completed=0, required=20, what="outer steps")
        return c.Verdict(c.HELD, "fine")

    verdict = _claim(run).evaluate(c.RunData({}, {}))
    assert verdict.status == c.UNDECIDABLE and "0 outer steps" in verdict.reason and verdict.warnings


def test_gradient_guard_fires_when_the_gradient_was_not_measured_or_too_large():
    for norm in (None, 1e-2):
        with pytest.raises(c.Undecidable):
            c.require_gradient_checked("GD", norm, 1e-4)
    c.require_gradient_checked("GD", 1e-6, 1e-4)


def test_missing_results_key_is_not_checked_and_names_the_key():
    verdict = _claim(lambda run: c.Verdict(c.HELD, str(run.results["sizes"]))).evaluate(c.RunData({}, {}))
    assert verdict.status == c.NOT_CHECKED and "'sizes'" in verdict.reason


def test_all_of_combines_cases():
    held, undecided = c.decide(_stat(1, 2), above=0), c.decide(_stat(-1, 2), above=0)
    failed = c.decide(_stat(-2, -1), above=0)
    assert c.all_of([("a", held), ("b", held)]).status == c.HELD
    assert c.all_of([("a", held), ("b", undecided)]).status == c.UNDECIDABLE
    assert c.all_of([("a", undecided), ("b", failed)]).status == c.NOT_HELD
    combined = c.all_of([("a", held), ("b", failed)])
    assert combined.statistic is failed.statistic and "a: " in combined.evidence
