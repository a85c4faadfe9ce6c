"""The papers' claims, and the verdicts that our runs earn on them.

An experiment declares its claims next to its parameters: each :class:`Claim` quotes the paper (paper and
section), states the criterion in words (and where every threshold comes from) and carries the function
that decides it from the run (:class:`RunData`: the run's ``results.json``, ``config.json`` and raw arrays).

A verdict has one of four outcomes (DESIGN.md, "Claims and verdicts"):

- ``held`` / ``did not hold``: the evidence decides the claim *with its uncertainty*, i.e. the confidence
  interval of the deciding :class:`Statistic` lies on one side of the criterion;
- ``not decidable at this scale``: the interval straddles the criterion, there is nothing to build an
  interval from (one seed, one disorder), or a *guard* fired — a baseline at chance level, a method that
  completed too few of its own update cycles, a "minimum" whose gradient was never checked. The reason
  says which; a guard's reason is also a warning that ``deeplandscape run`` prints;
- ``not checked``: the run did not measure what decides the claim (the reason says why).

A decision function returns a :class:`Verdict`, usually from :func:`decide` on a statistic, and raises
:class:`Undecidable` (directly or through a guard such as :func:`require_above_chance`) or
:class:`NotChecked` where no verdict can be earned. :meth:`Claim.evaluate` turns those into verdicts.

The intervals come from ``scipy.stats`` (95% unless said otherwise): Wilson for a proportion
(``binomtest(...).proportion_ci``), Student's t over seeds for a mean or a paired difference
(``ttest_1samp``, ``ttest_rel``), and the bootstrap (``scipy.stats.bootstrap``) over disorders, runs or test
samples, always with a fixed ``random_state`` so that a report is reproducible byte for byte.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

HELD = "held"
NOT_HELD = "did not hold"
UNDECIDABLE = "not decidable at this scale"
NOT_CHECKED = "not checked"
OUTCOMES = (HELD, NOT_HELD, UNDECIDABLE, NOT_CHECKED)
LEVEL = 0.95
BOOTSTRAP_RESAMPLES = 9999


def fmt(x: Any) -> str:
    """A number as the reports print it (4 significant digits), anything else as ``str``."""
    return f"{x:.4g}" if isinstance(x, float) else str(x)


# ---------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Statistic:
    """The number that decides a claim, with its confidence interval ``[ci_low, ci_high]`` at ``level``.

    ``method`` says how the interval was obtained (e.g. "Wilson", "t over 5 seeds", "bootstrap over 5
    disorders").
    """

    name: str
    estimate: float
    ci_low: float
    ci_high: float
    level: float = LEVEL
    method: str = ""

    def __post_init__(self) -> None:
        values = (self.estimate, self.ci_low, self.ci_high)
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"Invalid statistic {self.name!r}: {values} (every value must be finite)")
        if self.ci_low > self.ci_high:
            raise ValueError(f"Invalid statistic {self.name!r}: interval [{self.ci_low}, {self.ci_high}]")
        if not 0 < self.level < 1:
            raise ValueError(f"Invalid level: {self.level} (must be in (0, 1))")

    def describe(self) -> str:
        if self.ci_low == self.ci_high == self.estimate:
            return f"{self.name} = {self.estimate:.6g} (exact: {self.method or 'no uncertainty'})"
        how = f"{self.level:.0%} interval" + (f", {self.method}" if self.method else "")
        low, high = f"{self.ci_low:.4g}", f"{self.ci_high:.4g}"
        return f"{self.name} = {self.estimate:.4g} [{low}, {high}] ({how})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "estimate": self.estimate,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "level": self.level,
            "method": self.method,
        }


@dataclass(frozen=True)
class Verdict:
    """The outcome of a claim on one run: ``status`` (one of :data:`OUTCOMES`), the ``evidence`` (our
    numbers), the ``reason`` (required for the last two outcomes), the deciding ``statistic`` and the
    ``warnings`` of the guards that fired."""

    status: str
    evidence: str
    reason: str = ""
    statistic: Statistic | None = None
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.status not in OUTCOMES:
            raise ValueError(f"Invalid status: {self.status!r} (must be one of {', '.join(OUTCOMES)})")
        if self.status in (UNDECIDABLE, NOT_CHECKED) and not self.reason:
            raise ValueError(f"A verdict {self.status!r} needs a reason")


class Undecidable(Exception):
    """Raised by a decision: the claim is ``not decidable at this scale`` because of ``reason``.

    ``guard=True`` marks a guard (a vacuous comparison): its reason is also reported as a warning.
    """

    def __init__(self, reason: str, *, evidence: str = "", guard: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.evidence, self.guard = reason, evidence, guard


class NotChecked(Exception):
    """Raised by a decision: the run did not measure what decides the claim (``reason`` says what)."""

    def __init__(self, reason: str, *, evidence: str = "") -> None:
        super().__init__(reason)
        self.reason, self.evidence = reason, evidence


# ---------------------------------------------------------------------------------------------- claims


@dataclass(frozen=True)
class RunData:
    """What a decision reads: a run's ``results.json`` and ``config.json``, and its raw data files."""

    results: dict[str, Any]
    config: dict[str, Any]
    directory: Path | None = None

    def arrays(self, filename: str) -> dict[str, np.ndarray]:
        """The arrays of ``<run directory>/<filename>`` (an ``.npz``); :class:`NotChecked` if absent."""
        if self.directory is None or not (self.directory / filename).is_file():
            raise NotChecked(f"the run directory has no {filename}")
        with np.load(self.directory / filename) as data:
            return {key: data[key] for key in data.files}


Decision = Callable[[RunData], Verdict]


@dataclass(frozen=True)
class Claim:
    """A claim of a paper and how our run decides it.

    ``claim`` is the paper's statement (quoted where the paper words it, else a faithful paraphrase of a
    figure or table), ``source`` the paper and section, ``criterion`` what decides it in our run (with the
    source of every threshold the paper does not give), ``decide`` the decision. ``beyond_papers`` marks a
    question the papers do not ask (shown, never counted). ``shown_in`` names the figure file or table id of
    the experiment that holds the evidence, so that the report can link to it.
    """

    id: str
    claim: str
    source: str
    criterion: str
    decide: Decision
    beyond_papers: bool = False
    shown_in: str = ""

    def __post_init__(self) -> None:
        for name in ("id", "claim", "source", "criterion"):
            if not getattr(self, name).strip():
                raise ValueError(f"Invalid claim: an empty {name}")

    def evaluate(self, run: RunData) -> Verdict:
        """The verdict on ``run``: the decision's, or the one that an exception it raised stands for.

        A key missing from the run's results (a run written before the key existed, a unit that was not
        run) gives ``not checked`` naming the key.
        """
        try:
            return self.decide(run)
        except Undecidable as raised:
            warnings = (raised.reason,) if raised.guard else ()
            return Verdict(UNDECIDABLE, raised.evidence, raised.reason, warnings=warnings)
        except NotChecked as raised:
            return Verdict(NOT_CHECKED, raised.evidence, raised.reason)
        except KeyError as missing:
            return Verdict(NOT_CHECKED, "", f"the run's results have no {missing.args[0]!r}")


# ---------------------------------------------------------------------------------------------- decisions


def decide(
    statistic: Statistic,
    *,
    above: float | None = None,
    below: float | None = None,
    evidence: str = "",
) -> Verdict:
    """The verdict on a claim that ``statistic`` lies above ``above`` and/or below ``below``.

    ``held`` when the whole interval lies on the claimed side (inside the band for both bounds), ``did not
    hold`` when the whole interval lies outside, ``not decidable at this scale`` when it contains a bound.
    """
    if above is None and below is None:
        raise ValueError("decide needs a bound: above=, below= or both")
    if above is not None and below is not None and above >= below:
        raise ValueError(f"Invalid band: above={above} ≥ below={below}")
    lo, hi = statistic.ci_low, statistic.ci_high
    inside = (above is None or lo > above) and (below is None or hi < below)
    outside = (above is not None and hi <= above) or (below is not None and lo >= below)
    text = statistic.describe() + (f"; {evidence}" if evidence else "")
    if inside:
        return Verdict(HELD, text, statistic=statistic)
    if outside:
        return Verdict(NOT_HELD, text, statistic=statistic)
    bounds = [f"{b:.4g}" for b in (above, below) if b is not None and lo <= b <= hi]
    reason = (
        f"the {statistic.level:.0%} interval [{fmt(lo)}, {fmt(hi)}] of {statistic.name} contains the "
        f"criterion's bound {' and '.join(bounds)}"
    )
    return Verdict(UNDECIDABLE, text, reason, statistic=statistic)


def all_of(parts: Sequence[tuple[str, Verdict]]) -> Verdict:
    """One verdict on a claim made for several cases (models, sizes) from a verdict per case.

    It did not hold if it did not hold in a decided case; it held if it held in every case that was
    measured; otherwise it is not decidable (some case straddles) or not checked (no case measured). The
    statistic is that of the first case whose outcome is the combined one.
    """
    if not parts:
        raise NotChecked("no case measured")
    statuses = [v.status for _, v in parts]
    checked = [s for s in statuses if s != NOT_CHECKED]
    if NOT_HELD in statuses:
        status = NOT_HELD
    elif UNDECIDABLE in statuses:
        status = UNDECIDABLE
    elif checked:
        status = HELD
    else:
        status = NOT_CHECKED
    evidence = "; ".join(f"{label}: {v.evidence or v.reason}" for label, v in parts)
    reasons = "; ".join(f"{label}: {v.reason}" for label, v in parts if v.status == status and v.reason)
    statistic = next((v.statistic for _, v in parts if v.status == status and v.statistic), None)
    warnings = tuple(w for _, v in parts for w in v.warnings)
    return Verdict(
        status, evidence, reasons if status in (UNDECIDABLE, NOT_CHECKED) else "", statistic, warnings
    )


# ---------------------------------------------------------------------------------------------- statistics


def proportion(successes: int, trials: int, name: str, *, level: float = LEVEL) -> Statistic:
    """A proportion ``successes / trials`` with its Wilson score interval."""
    if trials < 1 or not 0 <= successes <= trials:
        raise ValueError(f"Invalid proportion: {successes} of {trials}")
    ci = stats.binomtest(int(successes), int(trials)).proportion_ci(confidence_level=level, method="wilson")
    return Statistic(name, successes / trials, float(ci.low), float(ci.high), level, f"Wilson, n = {trials}")


def _at_least_two(values: np.ndarray, name: str, what: str) -> None:
    if values.size < 2:
        raise Undecidable(f"a single {what} of {name}: no interval can be formed")


def mean(values: Sequence[float], name: str, *, what: str = "seed", level: float = LEVEL) -> Statistic:
    """The mean of independent replicates (one per ``what``) with Student's t interval."""
    v = np.asarray(values, dtype=float)
    _at_least_two(v, name, what)
    if np.all(v == v[0]):  # zero spread: t's interval degenerates to the point itself
        return Statistic(name, float(v[0]), float(v[0]), float(v[0]), level, f"t over {v.size} {what}s")
    ci = stats.ttest_1samp(v, 0.0).confidence_interval(confidence_level=level)
    return Statistic(name, float(v.mean()), float(ci.low), float(ci.high), level, f"t over {v.size} {what}s")


def paired_difference(
    a: Sequence[float], b: Sequence[float], name: str, *, what: str = "seed", level: float = LEVEL
) -> Statistic:
    """The mean of ``a − b`` over paired replicates (the same seeds) with the paired t interval."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"Invalid paired samples: shapes {x.shape} and {y.shape}")
    return mean(x - y, name, what=what, level=level)


def bootstrap(
    samples: Sequence[Sequence[float]] | np.ndarray,
    statistic: Callable[..., Any],
    name: str,
    *,
    what: str,
    paired: bool = False,
    level: float = LEVEL,
    seed: int = 0,
    method: str = "BCa",
) -> Statistic:
    """``statistic`` of the samples with a bootstrap interval (``scipy.stats.bootstrap``, seeded).

    ``samples`` is one 1-D sample or a sequence of them (``paired`` resamples them together); ``statistic``
    takes as many arrays and an ``axis`` keyword. ``what`` names the resampled unit ("disorder", "run").
    """
    arrays = (
        [np.asarray(samples, dtype=float)]
        if np.ndim(samples[0]) == 0
        else [np.asarray(s, dtype=float) for s in samples]
    )
    if any(a.size < 2 for a in arrays):
        raise Undecidable(f"a single {what} for {name}: no interval can be formed")
    estimate = float(statistic(*arrays, axis=-1))
    if all(np.all(a == a[0]) for a in arrays):
        return Statistic(name, estimate, estimate, estimate, level, f"all {what}s equal")
    result = stats.bootstrap(
        tuple(arrays),
        statistic,
        paired=paired,
        confidence_level=level,
        n_resamples=BOOTSTRAP_RESAMPLES,
        method=method,
        random_state=np.random.default_rng(seed),
    )
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    if not (math.isfinite(low) and math.isfinite(high)):  # BCa can fail on degenerate resamples
        raise Undecidable(f"the bootstrap interval of {name} is not finite ({what}s too few or too alike)")
    size = arrays[0].size
    return Statistic(name, estimate, min(low, estimate), max(high, estimate), level,
                     f"{method} bootstrap over {size} {what}s")  # fmt: skip


def error_difference(
    wrong_a: np.ndarray, wrong_b: np.ndarray, name: str, *, level: float = LEVEL, seed: int = 0
) -> Statistic:
    """The difference of two methods' mean error rates (percentage points) on one test set.

    ``wrong_a``, ``wrong_b``: ``(seeds, test samples)`` booleans, seed ``s`` of both methods paired (same
    initialization and batch order). Two sources of uncertainty, each with its own interval: the
    seed-to-seed variation (paired t over the per-seed differences) and the finite test set (paired
    bootstrap over the test samples of the seed-averaged per-sample difference). The interval reported is
    the union of the two, so a verdict is earned only when both lie on one side. One seed gives no estimate
    of the seed-to-seed variation, and the comparison is not decidable.
    """
    a, b = np.asarray(wrong_a, dtype=float), np.asarray(wrong_b, dtype=float)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"Invalid per-sample errors: shapes {a.shape} and {b.shape} (need (seeds, samples))")
    if a.shape[0] < 2:
        raise Undecidable(f"one seed per method: the seed-to-seed variation of {name} cannot be estimated")
    per_seed = 100.0 * (a.mean(axis=1) - b.mean(axis=1))
    over_seeds = mean(per_seed, name, level=level)
    per_sample = 100.0 * (a - b).mean(axis=0)
    over_samples = bootstrap(
        per_sample, np.mean, name, what="test sample", level=level, seed=seed, method="percentile"
    )
    return Statistic(
        name,
        float(per_seed.mean()),
        min(over_seeds.ci_low, over_samples.ci_low),
        max(over_seeds.ci_high, over_samples.ci_high),
        level,
        f"union of t over {a.shape[0]} seeds and bootstrap over {a.shape[1]} test samples",
    )


# ---------------------------------------------------------------------------------------------- guards

# Thresholds of the guards: the papers give none; these are ours, stated in every reason they produce.
CHANCE_FACTOR = 2.0  # a classifier "at chance": its accuracy is not shown to exceed twice chance level


def require_above_chance(label: str, wrong: int, trials: int, num_classes: int) -> None:
    """Guard: :class:`Undecidable` unless ``label``'s accuracy is shown to exceed twice chance.

    The lower end of the Wilson interval of the accuracy must exceed ``CHANCE_FACTOR / num_classes``; a
    comparison with a method that learnt nothing says nothing about the methods.
    """
    if num_classes < 2:
        raise ValueError(f"Invalid num_classes: {num_classes} (must be ≥ 2)")
    accuracy = proportion(trials - wrong, trials, f"accuracy of {label}")
    bound = CHANCE_FACTOR / num_classes
    if accuracy.ci_low <= bound:
        raise Undecidable(
            f"{label} is at chance level: accuracy {accuracy.estimate:.1%} (95% interval from "
            f"{accuracy.ci_low:.1%}) is not shown to exceed {CHANCE_FACTOR:g}× chance = {bound:.1%} "
            f"({num_classes} classes)",
            evidence=accuracy.describe(),
            guard=True,
        )


def require_updates(label: str, completed: float, required: float, what: str) -> None:
    """Guard: :class:`Undecidable` when ``label`` completed fewer than ``required`` of its own ``what``
    (outer steps, cycles, epochs of its schedule) — too short a run to show what the method does."""
    if completed < required:
        raise Undecidable(
            f"{label} completed {fmt(float(completed))} {what}, fewer than the {fmt(float(required))} that "
            "the comparison needs",
            guard=True,
        )


def require_at_most(label: str, value: float, limit: float, what: str) -> None:
    """Guard: :class:`Undecidable` when ``label``'s ``what`` ended above ``limit`` (e.g. AnnealSGD's field
    still on at the end of training: the run did not reach the regime the claim is about)."""
    if not value <= limit:
        raise Undecidable(
            f"{label}: {what} is {fmt(float(value))} at the end, above {fmt(float(limit))}", guard=True
        )


def require_gradient_checked(label: str, gradient_norm: float | None, tolerance: float) -> None:
    """Guard: :class:`Undecidable` when the points called minima (or critical points) of ``label`` have no
    measured gradient norm, or one above ``tolerance``."""
    if gradient_norm is None or not math.isfinite(gradient_norm):
        raise Undecidable(f"{label}: the gradient norm at the points was never measured", guard=True)
    if gradient_norm > tolerance:
        raise Undecidable(
            f"{label}: gradient norm {fmt(float(gradient_norm))} above the tolerance "
            f"{fmt(float(tolerance))}: not critical points",
            guard=True,
        )


def std_ratio(small: np.ndarray, large: np.ndarray, axis: int = -1) -> np.ndarray:
    """``std(large) / std(small)`` along ``axis`` (a bootstrap statistic: a resample of equal values gives
    ``inf`` or ``nan``, which the bootstrap's interval then reports as not finite)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.std(large, ddof=1, axis=axis) / np.std(small, ddof=1, axis=axis)


def guarded(
    guard: Callable[[], None],
    statistic: Statistic,
    *,
    above: float | None = None,
    below: float | None = None,
    evidence: str = "",
) -> Verdict:
    """``decide(statistic, above=, below=)`` when ``guard()`` passes; when it raises :class:`Undecidable`,
    ``not decidable at this scale`` with the guard's reason (also a warning) and the statistic as evidence."""
    try:
        guard()
    except Undecidable as fired:
        text = statistic.describe() + (f"; {evidence}" if evidence else "")
        return Verdict(UNDECIDABLE, text, fired.reason, statistic=statistic, warnings=(fired.reason,))
    return decide(statistic, above=above, below=below, evidence=evidence)


@dataclass(frozen=True)
class PaperNumber:
    """A number a paper reports, with where: declared once per experiment and used by its claims, tables
    and captions (``value`` may be a tuple, e.g. mean and std)."""

    value: Any
    source: str
    note: str = ""

    def __str__(self) -> str:
        if isinstance(self.value, tuple) and len(self.value) == 2:
            return f"{fmt(self.value[0])} ± {fmt(self.value[1])}"
        return fmt(self.value)
