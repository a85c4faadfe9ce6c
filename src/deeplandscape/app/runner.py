"""The experiment runner: run directory, resumable units, progress, the run's report.

Each finished unit is written atomically to ``units/<key>.json`` (and ``units/<key>.npz`` for arrays) in
the run directory. ``--resume`` skips the units already there, so an interrupted run (even by SIGKILL)
loses no finished work, and because every unit draws its randomness from ``seed`` and its own position in
the unit list only, the resumed run produces exactly the results of an uninterrupted one.

What keeps a run directory from losing or mixing data:

- everything is validated before the first write: every parameter (types, ranges, finite numbers, list
  items neither empty nor repeated), the units it makes, the memory it would need (``Experiment.memory``
  against :func:`~deeplandscape.rundir.memory_limit`) and the run directory itself;
- the run directory is new, empty, or (with ``--resume``) a run of the same experiment whose
  ``config.json`` equals this configuration, library version included; anything else is refused, with the
  differing keys named;
- one process holds the directory (:func:`~deeplandscape.rundir.hold`) for the whole run;
- a unit records the digest of the configuration that made it (:func:`unit_digest`: the canonical JSON of
  ``config.json``, every key and the library version) and the checksum of its arrays; one that does not
  match, or cannot be read, is computed again (and said so on stderr), never reused;
- ``results.json`` holds results only: wall-clock times (keys ``wall_seconds``) go to ``timing.json``;
- a run that fails before finishing any unit removes what it wrote.

Inside a unit, :func:`deeplandscape.progress.advance` shows how far it is (the bar's postfix on a terminal,
a line on stderr every :data:`PROGRESS_INTERVAL` seconds otherwise). With ``keep_going`` (``inspect``: one
failing instrument must not cost the others) a unit that raises is reported and not saved, the other units
run, and ``finalize`` receives ``UnitResult({"error": "<type>: <message>"})`` in its place; ``--resume``
computes it again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deeplandscape import __version__
from deeplandscape import progress as unit_progress
from deeplandscape.app.report import command_for, overrides_of, section_of, write_run_report
from deeplandscape.experiments.spec import (
    Experiment,
    Unit,
    UnitResult,
    check_config,
    show,
    unit_seed,
)
from deeplandscape.rundir import (
    RunDirError,
    config_digest,
    describe,
    discard,
    entries,
    file_digest,
    hold,
    new_run_dir,
    read_json,
    save_npz,
    with_version,
    write_json,
)

log = logging.getLogger("deeplandscape")

#: Seconds between two progress lines inside a unit when stderr is not a terminal.
PROGRESS_INTERVAL = 10.0


@contextlib.contextmanager
def seeded_globals(seed: int) -> Iterator[None]:
    """Seed torch's, numpy's and Python's global generators with ``seed`` for the block, and restore them
    after: a unit that draws from a global generator (dropout, a default initialization) then gives the
    same numbers whatever ran before it in the process, so a resumed run equals an uninterrupted one."""
    states = random.getstate(), np.random.get_state()  # noqa: NPY002 (the legacy global state is the point)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)  # noqa: NPY002
        random.seed(seed)
        try:
            yield
        finally:
            random.setstate(states[0])
            np.random.set_state(states[1])  # noqa: NPY002


def config_differences(stored: dict[str, Any], config: dict[str, Any]) -> list[str]:
    """``key: A in config.json, B now`` for every key whose value differs (the library version included)."""
    differences = []
    for key in [*stored, *(k for k in config if k not in stored)]:
        there, now = stored.get(key, "(absent)"), config.get(key, "(absent)")
        if json.dumps(there, sort_keys=True) != json.dumps(now, sort_keys=True):
            differences.append(f"{key}: {show(there)} in config.json, {show(now)} now")
    return differences


def check_run_dir(experiment: Experiment, config: dict[str, Any], out: Path, resume: bool) -> str:
    """Whether ``out`` may hold this run: "new" (missing), "empty", or "run" (a run of this experiment and
    configuration, with ``resume``). :class:`~deeplandscape.rundir.RunDirError` otherwise, naming why.

    ``config`` is the configuration as ``config.json`` holds it (:func:`~deeplandscape.rundir.with_version`).
    Reads only: nothing is written.
    """
    names = entries(out)
    if names is None:
        return "new"
    if not names:
        return "empty"
    if "config.json" not in names:
        if "units" in names:
            raise RunDirError(
                f"Invalid --out: {out} holds units but no config.json: their configuration is unknown, so "
                f"they cannot be reused; remove {out} or choose another --out"
            )
        raise RunDirError(
            f"Invalid --out: {out} is not empty ({describe(names)}) and holds no run; choose a new or "
            "empty directory"
        )
    stored = read_json(out / "config.json")
    if not isinstance(stored, dict):
        raise RunDirError(f"Damaged file: {out / 'config.json'} does not hold a configuration")
    if stored.get("experiment") != experiment.name:
        holder = stored.get("experiment") or stored.get("command")
        what = f"{holder!r}" + (" written by an earlier version" if holder == experiment.name else "")
        raise RunDirError(
            f"Invalid --out: {out} holds a run of {what}, not of {experiment.name!r}; choose another --out"
        )
    if not resume:
        raise RunDirError(
            f"Invalid --out: {out} already holds a run of {experiment.name}; pass --resume (with the same "
            "options) to continue it, or choose another --out"
        )
    differences = config_differences(stored, config)
    if differences:
        raise RunDirError(
            f"Invalid --resume: {out} holds a run of {experiment.name} with another configuration "
            f"({'; '.join(differences)}); resume with its options or choose another --out"
        )
    return "run"


def _unit_paths(out: Path, unit: Unit) -> tuple[Path, Path]:
    return out / "units" / f"{unit.key}.json", out / "units" / f"{unit.key}.npz"


def unit_digest(config: dict[str, Any]) -> str:
    """What a unit records of the run that made it: the digest of ``config.json`` (every key of the
    resolved configuration and the library version: none is left out, since a key that does not change
    the numbers today may tomorrow, and a unit wrongly reused is worse than one computed again)."""
    return config_digest(with_version(config))


def load_unit(out: Path, unit: Unit, digest: str) -> tuple[UnitResult | None, str | None]:
    """``(result, None)`` for a finished unit saved with ``digest``; ``(None, None)`` when it was never
    saved; ``(None, why)`` when the saved one may not be used (damaged, or made by another configuration)."""
    json_path, npz_path = _unit_paths(out, unit)
    if not json_path.exists():
        return None, None
    try:
        stored = read_json(json_path)
    except RunDirError as error:
        return None, str(error)
    if not isinstance(stored, dict) or not isinstance(stored.get("values"), dict):
        return None, f"{json_path} does not hold a unit"
    if stored.get("config_digest") != digest:
        return None, f"{json_path} was computed with another configuration or library version"
    arrays = {}
    if stored.get("arrays") is not None:
        try:
            if file_digest(npz_path) != stored["arrays"]:
                return None, f"{npz_path} is damaged (its checksum differs from the one recorded)"
            with np.load(npz_path) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
            return None, f"{npz_path} cannot be read ({error})"
    return UnitResult(values=stored["values"], arrays=arrays), None


def save_unit(out: Path, unit: Unit, result: UnitResult, digest: str, seconds: float) -> UnitResult:
    """Arrays first, then the JSON that marks the unit finished (so a finished unit is always whole).

    Returns the unit as it will be read back (values through JSON), so that a run finalizes the same
    values whether its units were computed now or read from disk."""
    json_path, npz_path = _unit_paths(out, unit)
    checksum = file_digest(save_npz(npz_path, **result.arrays)) if result.arrays else None
    values = json.loads(json.dumps(result.values))
    write_json(
        json_path,
        {
            "key": unit.key,
            "config_digest": digest,
            "deeplandscape_version": __version__,
            "seconds": seconds,
            "values": values,
            "arrays": checksum,
        },
    )
    return UnitResult(values=values, arrays=result.arrays)


def split_timing(summary: Any) -> tuple[Any, dict[str, Any]]:
    """``summary`` without its ``wall_seconds`` keys (at any depth), and those values by path
    (``runs[0].wall_seconds``): wall-clock times differ from run to run, and results.json must not."""
    moved: dict[str, Any] = {}

    def walk(node: Any, where: str) -> Any:
        if isinstance(node, dict):
            kept = {}
            for key, value in node.items():
                here = f"{where}.{key}" if where else str(key)
                if key == "wall_seconds":
                    moved[here] = value
                else:
                    kept[key] = walk(value, here)
            return kept
        if isinstance(node, (list, tuple)):
            return [walk(value, f"{where}[{i}]") for i, value in enumerate(node)]
        return node

    return walk(summary, ""), moved


def run_experiment(
    experiment: Experiment,
    config: dict[str, Any],
    out: Path,
    *,
    resume: bool = False,
    quiet: bool = False,
    keep_going: bool = False,
    command: str | Callable[[Path], str] | None = None,
) -> dict[str, Any]:
    """Run (or resume) ``experiment`` into ``out`` and return its results (as ``results.json`` holds them).

    Everything is checked before anything is written (:func:`check_config`, :func:`check_run_dir`), again
    once ``out`` is held, and ``out`` is held for the whole run. A run that fails before it finished a unit
    removes what it wrote. ``keep_going``: a unit that raises is reported and the others run (module
    docstring). ``command`` is the command line the report gives, or a function of ``out`` that makes it
    (default: the ``deeplandscape run`` command).
    """
    out = Path(out)
    units = check_config(experiment, config)
    check_run_dir(experiment, with_version(config), out, resume)
    existed = out.exists()
    with hold(out):
        state = check_run_dir(experiment, with_version(config), out, resume)  # no one else can change it now
        progress = _progress(len(units), experiment.name, quiet)
        try:
            return _run_held(experiment, config, out, units, progress, keep_going, command)
        except BaseException:
            if state != "run" and progress.computed == 0:
                discard(out, ["config.json", "units"], created=not existed)
            raise
        finally:
            progress.close()


def run_into(
    experiment: Experiment, config: dict[str, Any], out: Path | str | None, *, resume: bool = False, **kw: Any
) -> tuple[Path, dict[str, Any]]:
    """:func:`run_experiment` into ``out``, or into a new ``runs/<name>-<time>-<random>`` when ``out`` is
    ``None`` (removed again if the run fails before it finished anything); returns the directory and the
    results."""
    if out is not None:
        return Path(out), run_experiment(experiment, config, Path(out), resume=resume, **kw)
    if resume:
        raise ValueError("Invalid --resume: it needs --out, the run directory to continue")
    out = new_run_dir(experiment.name)
    try:
        return out, run_experiment(experiment, config, out, **kw)
    except BaseException:
        discard(out, [], created=True)  # nothing of this run was finished: leave no empty directory
        raise


def _run_unit(
    experiment: Experiment, config: dict[str, Any], unit: Unit, position: int, progress: _progress
) -> UnitResult:
    seed = unit_seed(config["seed"], position)
    with seeded_globals(seed), unit_progress.reporting(progress.inside(unit.key)):
        return experiment.run_unit(config, unit, seed)


def _run_held(
    experiment: Experiment,
    config: dict[str, Any],
    out: Path,
    units: list[Unit],
    progress: _progress,
    keep_going: bool,
    command: str | Callable[[Path], str] | None,
) -> dict[str, Any]:
    write_json(out / "config.json", with_version(config))
    (out / "units").mkdir(exist_ok=True)
    digest = unit_digest(config)
    results: list[UnitResult] = []
    failed: dict[str, str] = {}
    start = time.perf_counter()
    for position, unit in enumerate(units):
        stored, problem = load_unit(out, unit, digest)
        if stored is None:
            if problem is not None:
                print(f"[{experiment.name}] unit {unit.key}: {problem}; computing it again", file=sys.stderr)
            unit_start = time.perf_counter()
            try:
                computed = _run_unit(experiment, config, unit, position, progress)
            except Exception as error:
                if not keep_going:
                    raise
                failed[unit.key] = f"{type(error).__name__}: {error}"
                print(
                    f"[{experiment.name}] unit {unit.key} failed ({failed[unit.key]}); the others go on",
                    file=sys.stderr,
                    flush=True,
                )
                stored = UnitResult(values={"error": failed[unit.key]})
            else:
                stored = save_unit(out, unit, computed, digest, time.perf_counter() - unit_start)
            seconds = time.perf_counter() - unit_start
            progress.update(unit.key, seconds, resumed=False, failed=unit.key in failed)
        else:
            progress.update(unit.key, 0.0, resumed=True)
        results.append(stored)
    finalized = experiment.finalize(config, results, out)
    if not isinstance(finalized, dict):
        raise TypeError(
            f"{experiment.name}: finalize must return its results as a dict, not {type(finalized).__name__}"
        )
    summary, moved = split_timing(json.loads(json.dumps(finalized)))
    wall = time.perf_counter() - start
    timing: dict[str, Any] = {"wall_seconds": wall, "units_run_now": progress.computed}
    timing.update({"results_wall_seconds": moved} if moved else {})
    timing.update({"failed_units": failed} if failed else {})
    write_json(out / "timing.json", timing)
    write_json(out / "results.json", summary)
    summary = json.loads((out / "results.json").read_text())  # what every later reader sees
    if callable(command):
        command = command(out)
    elif command is None:
        command = command_for(
            experiment.name, config["scale"], config["seed"], out, overrides_of(experiment, config)
        )
    section = section_of(
        experiment, config, summary, out,
        status="ran" if progress.computed == len(units) else "resumed",
        command=command, wall_seconds=wall, failed_units=failed,
    )  # fmt: skip
    for warning in section.claim_warnings:
        print(f"[{experiment.name}] warning: {warning}", file=sys.stderr, flush=True)
    write_run_report(out, section, config)
    return summary


class _progress:
    """A tqdm bar on a terminal, plain log lines otherwise, nothing with ``quiet``; :meth:`inside` is the
    display of :func:`deeplandscape.progress.advance` within a unit."""

    def __init__(self, total: int, name: str, quiet: bool) -> None:
        self.quiet, self.total, self.done, self.name = quiet, total, 0, name
        self.computed = 0
        self.bar = None
        self.last_line = time.monotonic()
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=name, unit="unit", file=sys.stderr)

    def update(self, key: str, seconds: float, *, resumed: bool, failed: bool = False) -> None:
        self.done += 1
        self.computed += 0 if resumed else 1
        if self.bar is not None:
            self.bar.set_postfix_str(key)
            self.bar.update(1)
        elif not self.quiet:
            how = "already done" if resumed else f"{seconds:.1f}s" + (", failed" if failed else "")
            print(f"[{self.name}] unit {self.done}/{self.total} {key}: {how}", file=sys.stderr, flush=True)
            self.last_line = time.monotonic()

    def inside(self, key: str) -> unit_progress.Sink:
        """The display of the progress reported inside the unit ``key``."""

        def show(done: int, total: int, what: str) -> None:
            text = f"{key}: {done}/{total} {what}".rstrip()
            if self.bar is not None:
                self.bar.set_postfix_str(text)
            elif not self.quiet and time.monotonic() - self.last_line >= PROGRESS_INTERVAL:
                position = f"unit {self.done + 1}/{self.total}"
                print(f"[{self.name}] {position} {text}", file=sys.stderr, flush=True)
                self.last_line = time.monotonic()

        return show

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
