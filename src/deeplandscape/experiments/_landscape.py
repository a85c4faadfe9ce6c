"""Helpers shared by the landscape experiments (hessian-spectrum, sgd-noise, limit-cycles): one torch
thread for a block, and the interval over seeds of a quantity known per seed only within bounds."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from deeplandscape.experiments.claims import Statistic, mean


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run the block with one torch (and MKL) thread.

    For the training loops of small networks (a few thousand weights, mini-batches of ~100): each operation
    takes microseconds, and a second thread only adds a synchronisation per operation. Measured on a 2-core
    machine shared with other jobs: tiny-fc at batch 64, 126 ms a step with two threads, 4.5 ms with one.
    Also for MKL's float32 symmetric eigensolver, whose results with two threads change from call to call
    (hessian-spectrum).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def bounds_over_seeds(
    name: str, lows: Sequence[float], highs: Sequence[float], estimates: Sequence[float], what: str
) -> Statistic:
    """The mean over seeds of a quantity that each seed knows within ``[low, high]`` (an exact value is its
    own bounds): the lower end of the t interval of the seeds' lower bounds, the upper end of that of their
    upper bounds, and the mean of the per-seed ``estimates`` (``what`` says what the bounds are).

    With exact values this is Student's t interval over the seeds; one seed gives no interval
    (:class:`~deeplandscape.experiments.claims.Undecidable`)."""
    low, high = mean(lows, name), mean(highs, name)
    est = float(np.clip(np.mean(estimates), low.ci_low, high.ci_high))
    return Statistic(name, est, min(low.ci_low, est), max(high.ci_high, est),
                     method=f"t over {len(lows)} seeds of {what}")  # fmt: skip
