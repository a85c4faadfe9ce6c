"""Run directories: where a command writes its configuration, results and figures, atomically.

Layout (see DESIGN.md): ``config.json`` (fully resolved configuration with seed and library version),
``results.json`` (the numbers), figures (PNG), raw data (CSV/NPZ) and ``report.md``. Every file is
written to a temporary name in the same directory and renamed into place, so a reader never sees a
half-written file and an interrupted run leaves only complete files behind.

One process owns a run directory at a time: :func:`hold` takes an exclusive ``flock`` on ``.lock`` in it
for as long as the command runs, and a second process on the same directory is refused at once. A default
directory (:func:`new_run_dir`) is created with an exclusive ``mkdir`` under a name with a random suffix,
so two commands started in the same second never share one. Everything here that refuses a directory
raises :class:`RunDirError` (a ``ValueError``: the command line reports it and exits with status 2).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
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


def with_version(config: dict[str, Any]) -> dict[str, Any]:
    """The configuration with the library version recorded in it."""
    return {**config, "deeplandscape_version": __version__}


class RunDirError(ValueError):
    """A run directory that may not be used (foreign, busy, damaged, unwritable), or a damaged file in one."""


LOCK_FILE = ".lock"


def read_json(path: Path) -> Any:
    """The JSON in ``path``; :class:`RunDirError` naming the file when it cannot be read or parsed."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise RunDirError(f"Damaged file: {path} cannot be read ({reason})") from None


def canonical_json(data: Any) -> str:
    """``data`` as JSON with sorted keys and no spaces: equal data give equal text (NaN/Inf refused)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def config_digest(config: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of ``config``: what a saved unit records of the run that made it."""
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()


def file_digest(path: Path) -> str:
    """SHA-256 of the bytes of ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def entries(path: Path, option: str = "--out") -> list[str] | None:
    """The names in directory ``path`` (its lock file left out), or None when ``path`` does not exist.

    :class:`RunDirError` when ``path`` is not a directory or cannot be listed.
    """
    path = Path(path)
    try:
        if not path.exists():
            return None
        if not path.is_dir():
            raise RunDirError(f"Invalid {option}: {path} is a file, not a directory")
        return sorted(name for name in os.listdir(path) if name != LOCK_FILE)
    except OSError as error:
        raise RunDirError(f"Invalid {option}: {path} cannot be read ({error.strerror or error})") from None


def describe(names: list[str], limit: int = 5) -> str:
    """A few of ``names`` for a message: ``a, b, c and 4 more``."""
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


@contextlib.contextmanager
def hold(path: Path, option: str = "--out") -> Iterator[Path]:
    """Create directory ``path`` if missing and hold its lock until the block ends.

    The lock is an exclusive ``flock`` on ``path/.lock``, released when the process ends however it ends
    (SIGKILL included). When another process holds it, :class:`RunDirError` at once: nothing waits.
    """
    path = Path(path)
    lock = path / LOCK_FILE
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise RunDirError(f"Invalid {option}: cannot write in {path} ({error.strerror or error})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # The lock file may have been removed (see discard) between our open and our flock.
            current = os.stat(lock).st_ino if lock.exists() else None
        except BlockingIOError:
            current = None
        except OSError as error:  # ENOLCK: a file system without flock (some network file systems)
            reason = error.strerror or error
            raise RunDirError(f"Invalid {option}: {path} cannot be locked ({reason})") from None
        if current != os.fstat(fd).st_ino:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            who = f"another process (pid {holder})" if holder.isdigit() else "another process"
            raise RunDirError(
                f"Invalid {option}: {path} is in use: {who} holds its lock {lock}; wait for it to finish "
                "or choose another directory"
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)


def discard(path: Path, written: list[str], *, created: bool) -> None:
    """Undo a start that finished nothing: remove the files and directories named in ``written`` (this
    process made them), then, when it ``created`` the directory, its lock file and the directory itself if
    nothing else is in it. Call it while holding the lock."""
    path = Path(path)
    for name in written:
        target = path / name
        with contextlib.suppress(OSError):
            shutil.rmtree(target) if target.is_dir() else target.unlink()
    if created and entries(path) == []:
        with contextlib.suppress(OSError):
            (path / LOCK_FILE).unlink()
            path.rmdir()


def new_run_dir(name: str, root: str | Path = "runs") -> Path:
    """A new, empty ``root/<name>-<UTC time>-<random>``, created with an exclusive ``mkdir``."""
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RunDirError(
            f"Invalid run directory: cannot create {root} ({error.strerror or error})"
        ) from None
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    for _ in range(100):
        path = root / f"{name}-{stamp}-{secrets.token_hex(3)}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
        except OSError as error:
            raise RunDirError(
                f"Invalid run directory: cannot create {path} ({error.strerror or error})"
            ) from None
    raise RunDirError(f"Invalid run directory: no free name for {name} in {root}")


# ------------------------------------------------------------------------------------------------ memory

MEMORY_LIMIT_ENV = "DEEPLANDSCAPE_MEMORY_LIMIT"
_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def memory_limit() -> tuple[float, str]:
    """The memory a run may plan to use, in bytes, and where that number comes from.

    ``DEEPLANDSCAPE_MEMORY_LIMIT`` (bytes, or with a suffix K, M, G, T: ``8G``) when set; otherwise the
    available memory of the machine (``MemAvailable`` of ``/proc/meminfo``, else the free physical pages).
    """
    text = os.environ.get(MEMORY_LIMIT_ENV, "").strip()
    if text:
        number = text.lower().removesuffix("b")
        unit = number[-1:] if number[-1:] in _UNITS else ""
        try:
            value = float(number.removesuffix(unit)) * _UNITS[unit]
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            raise RunDirError(f"Invalid {MEMORY_LIMIT_ENV}: {text!r} (expected bytes, e.g. 8000000000 or 8G)")
        return value, MEMORY_LIMIT_ENV
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024, "available memory (MemAvailable)"
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")), "free physical memory"
    except (ValueError, OSError):
        return math.inf, "no limit known"


def check_memory(option: str, value: Any, need: float, what: str) -> None:
    """``ValueError`` naming ``option``, its ``value``, the estimate ``need`` (bytes, for ``what``) and the
    limit when ``need`` exceeds :func:`memory_limit`."""
    limit, source = memory_limit()
    if need > limit:
        raise ValueError(
            f"Invalid {option}: {value} needs about {format_bytes(need)} for {what}, more than the "
            f"{format_bytes(limit)} of {source} (choose a smaller value; {MEMORY_LIMIT_ENV}=BYTES sets "
            "the limit)"
        )


def format_bytes(n: float) -> str:
    """``n`` bytes for a person: ``11.8 GB``, ``16,000 TB``."""
    unit, size = next(
        ((u, s) for u, s in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)) if n >= s), ("B", 1)
    )
    value = n / size
    return f"{value:,.0f} {unit}" if 1000 <= value < 1e6 else f"{value:.3g} {unit}"
