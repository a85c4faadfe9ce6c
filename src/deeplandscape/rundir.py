"""Run directories: where a command writes its configuration, results and figures, atomically.

Layout (see DESIGN.md): ``config.json`` (fully resolved configuration with seed and library version),
``results.json`` (the numbers), figures (PNG), raw data (CSV/NPZ) and ``report.md``. Every file is
written to a temporary name in the same directory and renamed into place, so a reader never sees a
half-written file and an interrupted run leaves only complete files behind.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from deeplandscape import __version__


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary path next to ``path``, fsync it, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a run directory's files are for everyone to read
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text(path: Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: Path, data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=2, sort_keys=False, allow_nan=True) + "\n")


def save_figure(path: Path, figure) -> Path:
    """Save a matplotlib figure atomically as PNG (the format is fixed, whatever the temp suffix)."""
    return atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=120, bbox_inches="tight"))


def save_npz(path: Path, **arrays) -> Path:
    """Save arrays to an ``.npz`` atomically."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)

    return atomic_write(path, write)


def new_run_dir(name: str, out: str | Path | None = None, root: str | Path = "runs") -> Path:
    """``out`` if given, else ``root/<name>-<UTC timestamp>``; created if missing."""
    path = Path(out) if out is not None else Path(root) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def with_version(config: dict[str, Any]) -> dict[str, Any]:
    """The configuration with the library version recorded in it."""
    return {**config, "deeplandscape_version": __version__}
