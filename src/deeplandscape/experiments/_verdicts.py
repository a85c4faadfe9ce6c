"""Decision helpers shared by the network experiments (candidates for
:mod:`deeplandscape.experiments.claims`).

- :func:`std_ratio`: the ratio of two samples' standard deviations, as a bootstrap statistic (Choromanska
  et al. Fig. 9, Sagun et al. Fig. 5: a spread that narrows with the size of the network);
- :func:`guarded`: a verdict whose guard may fire, keeping the statistic as evidence when it does (so that a
  reader sees the numbers that were not allowed to decide).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from deeplandscape.experiments.claims import UNDECIDABLE, Statistic, Undecidable, Verdict, decide


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
