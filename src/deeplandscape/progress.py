"""Progress inside a unit of work: a hook that long computations call and the runner shows.

A computation that runs for minutes (a training loop, a sweep over scopes γ) says how far it is::

    from deeplandscape import progress

    for epoch in range(epochs):
        ...
        progress.advance(epoch + 1, epochs, "epochs")

Outside a run nothing is shown, and the call costs one context-variable look-up. The runner
(:mod:`deeplandscape.app.runner`) installs a display for each unit with :func:`reporting`: the postfix of
its progress bar on a terminal, a plain line on stderr (at most one every few seconds) otherwise, nothing
with ``--quiet``. The hook depends on nothing, so any layer may call it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar

#: What a display receives: ``(done, total, what)``.
Sink = Callable[[int, int, str], None]

_sink: ContextVar[Sink | None] = ContextVar("deeplandscape_progress", default=None)


def advance(done: int, total: int, what: str = "") -> None:
    """Report that ``done`` of ``total`` steps (``what``: e.g. "epochs") of the current unit are done."""
    sink = _sink.get()
    if sink is not None:
        sink(int(done), int(total), what)


@contextlib.contextmanager
def reporting(sink: Sink) -> Iterator[None]:
    """Send every :func:`advance` made inside the block (in this thread or task) to ``sink``."""
    token = _sink.set(sink)
    try:
        yield
    finally:
        _sink.reset(token)
