"""The experiment runner: configuration, run directory, resumable units, progress, report.

An :class:`Experiment` declares its parameters (with a value for each scale: ``quick``, ``default``,
``paper``), splits its work into independent *units* (sizes, regimes, chunks of runs), computes one unit
at a time, and finally assembles figures, ``results.json`` and the report from the units' outputs.

Each finished unit is written atomically to ``units/<key>.json`` (and ``units/<key>.npz`` for arrays) in
the run directory. ``--resume`` skips the units already there, so an interrupted run (even by SIGKILL)
loses no finished work, and because every unit draws its randomness from ``seed`` and its own position in
the unit list only, the resumed run produces exactly the results of an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deeplandscape.experiments.claims import Claim
from deeplandscape.experiments.report import command_for, overrides_of, section_of, write_run_report
from deeplandscape.rundir import save_npz, with_version, write_json

log = logging.getLogger("deeplandscape")

SCALES = ("quick", "default", "reference", "paper")


class ConfigError(ValueError):
    """A bad configuration, reported before any work starts."""


@dataclass(frozen=True)
class Param:
    """One configuration key: its type, its value at each scale, and its allowed range.

    ``kind`` is one of "int", "float", "str", "bool", "ints", "floats" (comma-separated lists on the
    command line). ``low``/``high`` bound numbers (and every element of a list); ``choices`` restricts
    strings.
    """

    kind: str
    default: Any
    help: str
    quick: Any = None
    paper: Any = None
    reference: Any = None
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None

    def at(self, scale: str) -> Any:
        value = {"quick": self.quick, "reference": self.reference, "paper": self.paper}.get(scale)
        return self.default if value is None else value

    def parse(self, name: str, text: str) -> Any:
        """Parse a command-line value, raising :class:`ConfigError` naming ``name``."""
        scalar = {"int": int, "float": float, "str": str, "bool": _parse_bool}
        try:
            if self.kind in ("ints", "floats"):
                convert = int if self.kind == "ints" else float
                return [convert(part) for part in text.split(",") if part.strip()]
            return scalar[self.kind](text)
        except ValueError:
            raise ConfigError(f"Invalid {name}: {text!r} is not of type {self.kind}") from None

    def check(self, name: str, value: Any) -> Any:
        """Validate a value (type and range), raising :class:`ConfigError` naming ``name``."""
        items = value if self.kind in ("ints", "floats") else [value]
        if self.kind in ("ints", "floats"):
            if not isinstance(value, (list, tuple)) or not value:
                raise ConfigError(f"Invalid {name}: {value!r} (expected a non-empty list)")
            value = list(value)
        expected = {"int": int, "ints": int, "float": (int, float), "floats": (int, float), "str": str}
        for item in items:
            if self.kind == "bool":
                if not isinstance(item, bool):
                    raise ConfigError(f"Invalid {name}: {item!r} (expected true or false)")
                continue
            if not isinstance(item, expected[self.kind]) or isinstance(item, bool):
                raise ConfigError(f"Invalid {name}: {item!r} (expected {self.kind})")
            if self.low is not None and item < self.low:
                raise ConfigError(f"Invalid {name}: {item!r} (must be ≥ {self.low:g})")
            if self.high is not None and item > self.high:
                raise ConfigError(f"Invalid {name}: {item!r} (must be ≤ {self.high:g})")
            if self.choices is not None and item not in self.choices:
                raise ConfigError(f"Invalid {name}: {item!r} (must be one of {', '.join(self.choices)})")
        return value


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)


@dataclass(frozen=True)
class Unit:
    """One independent piece of an experiment: a key (file name) and its parameters."""

    key: str
    params: dict[str, Any]


@dataclass(frozen=True)
class UnitResult:
    """What a unit produced: JSON-able numbers and optional arrays."""

    values: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class Table:
    """A table of an experiment's report, built from ``results.json``: ours beside the paper's numbers.

    ``id`` is unique within the experiment (claims link to it); ``note`` says what the columns are.
    """

    id: str
    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    note: str = ""

    def __post_init__(self) -> None:
        bad = [row for row in self.rows if len(row) != len(self.header)]
        if bad:
            raise ValueError(
                f"Invalid table {self.id!r}: a row of {len(bad[0])} cells for {len(self.header)} columns"
            )


@dataclass(frozen=True)
class Figure:
    """A figure an experiment writes (``file`` in the run directory), with the caption of the paper's
    figure it stands beside (``paper``, with the paper's numbers) and what ours shows (``caption``)."""

    file: str
    caption: str
    paper: str = ""


@dataclass(frozen=True)
class Diagnostic:
    """A run that explains a claim that did not hold: experiment ``experiment`` with ``overrides``, run by the
    full report (same scale and seed) when one of the claims ``explains`` did not hold. ``question`` says
    what the run tests (e.g. "does HEAT reach SGD's error with the Thesis's number of updates?")."""

    id: str
    experiment: str
    overrides: tuple[str, ...]
    explains: tuple[str, ...]
    question: str


def no_tables(results: dict[str, Any], config: dict[str, Any]) -> list[Table]:
    return []


@dataclass(frozen=True)
class Experiment:
    """An experiment: parameters, units, the computation of one unit, the final assembly, and what the
    report shows of it.

    ``finalize(config, results, out)`` receives the unit results in unit order, writes figures and raw
    data into ``out`` and returns the ``results.json`` dictionary. Everything else the report shows is
    derived from that dictionary (and the configuration): ``tables(results, config)``, the declared
    ``figures`` (those present in the run directory) and the ``claims``
    (:class:`~deeplandscape.experiments.claims.Claim`), each decided from the run; ``diagnostics`` are the
    runs that explain a claim that did not hold. ``order`` places the experiment in listings and in the full
    report (the papers' order).
    """

    name: str
    description: str
    reproduces: str
    params: dict[str, Param]
    units: Callable[[dict[str, Any]], list[Unit]]
    run_unit: Callable[[dict[str, Any], Unit, int], UnitResult]
    finalize: Callable[[dict[str, Any], list[UnitResult], Path], dict[str, Any]]
    tables: Callable[[dict[str, Any], dict[str, Any]], list[Table]] = no_tables
    figures: tuple[Figure, ...] = ()
    claims: tuple[Claim, ...] = ()
    diagnostics: tuple[Diagnostic, ...] = ()
    order: int = 1000

    def __post_init__(self) -> None:
        ids = [c.id for c in self.claims]
        if len(set(ids)) != len(ids):
            raise ValueError(f"Invalid experiment {self.name!r}: duplicate claim ids {ids}")
        unknown = [d.id for d in self.diagnostics if not set(d.explains) <= set(ids)]
        if unknown:
            raise ValueError(
                f"Invalid experiment {self.name!r}: diagnostics {unknown} explain unknown claims"
            )


def resolve_config(
    experiment: Experiment, scale: str, seed: int, overrides: Sequence[str] = ()
) -> dict[str, Any]:
    """The fully resolved configuration: the scale's values, then ``KEY=VALUE`` overrides, validated."""
    if scale not in SCALES:
        raise ConfigError(f"Invalid scale: {scale!r} (must be one of {', '.join(SCALES)})")
    if not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"Invalid seed: {seed!r} (must be an integer ≥ 0)")
    config: dict[str, Any] = {name: param.at(scale) for name, param in experiment.params.items()}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"Invalid override: {item!r} (expected KEY=VALUE)")
        key, text = item.split("=", 1)
        key = key.strip().replace("-", "_")
        if key not in experiment.params:
            known = ", ".join(sorted(experiment.params))
            raise ConfigError(f"Unknown key: {key!r} for experiment {experiment.name} (known: {known})")
        config[key] = experiment.params[key].parse(key, text.strip())
    for name, param in experiment.params.items():
        config[name] = param.check(name, config[name])
    return {"experiment": experiment.name, "scale": scale, "seed": seed, **config}


def unit_seed(seed: int, position: int) -> int:
    """The seed of the unit at ``position``: independent of which other units ran in this process."""
    return int(np.random.SeedSequence([seed, position]).generate_state(1, dtype=np.uint64)[0] >> 1)


def _same_config(stored: dict[str, Any], config: dict[str, Any]) -> bool:
    ignore = {"deeplandscape_version"}
    strip = {k: v for k, v in stored.items() if k not in ignore}
    return json.loads(json.dumps(strip)) == json.loads(json.dumps(config))


def prepare_run_dir(experiment: Experiment, config: dict[str, Any], out: Path, resume: bool) -> None:
    """Check that ``out`` may hold this run; write ``config.json``. Raises :class:`ConfigError`."""
    config_path = out / "config.json"
    if config_path.exists():
        stored = json.loads(config_path.read_text())
        if stored.get("experiment") != experiment.name:
            raise ConfigError(
                f"Invalid out: {out} belongs to experiment {stored.get('experiment')!r}, "
                f"not {experiment.name!r}"
            )
        if not resume:
            raise ConfigError(f"Invalid out: {out} already holds a run; pass --resume to continue it")
        if not _same_config(stored, config):
            raise ConfigError(
                f"Invalid out: {out} holds a run with a different configuration; "
                "resume with the same options or choose another --out"
            )
    out.mkdir(parents=True, exist_ok=True)
    (out / "units").mkdir(exist_ok=True)
    write_json(config_path, with_version(config))


def _unit_paths(out: Path, unit: Unit) -> tuple[Path, Path]:
    return out / "units" / f"{unit.key}.json", out / "units" / f"{unit.key}.npz"


def load_unit(out: Path, unit: Unit) -> UnitResult | None:
    """The stored result of a finished unit, or None."""
    json_path, npz_path = _unit_paths(out, unit)
    if not json_path.exists():
        return None
    stored = json.loads(json_path.read_text())
    arrays = {}
    if stored.get("has_arrays"):
        with np.load(npz_path) as data:
            arrays = {k: data[k] for k in data.files}
    return UnitResult(values=stored["values"], arrays=arrays)


def save_unit(out: Path, unit: Unit, result: UnitResult) -> None:
    """Arrays first, then the JSON that marks the unit finished (so a finished unit is always whole)."""
    json_path, npz_path = _unit_paths(out, unit)
    if result.arrays:
        save_npz(npz_path, **result.arrays)
    write_json(json_path, {"key": unit.key, "values": result.values, "has_arrays": bool(result.arrays)})


def run_experiment(
    experiment: Experiment,
    config: dict[str, Any],
    out: Path,
    *,
    resume: bool = False,
    quiet: bool = False,
) -> dict[str, Any]:
    """Run (or resume) ``experiment`` into ``out`` and return its results."""
    out = Path(out)
    units = experiment.units(config)
    keys = [u.key for u in units]
    if len(set(keys)) != len(keys):
        raise RuntimeError(f"experiment {experiment.name} produced duplicate unit keys")
    prepare_run_dir(experiment, config, out, resume)
    results: list[UnitResult] = []
    progress = _progress(len(units), experiment.name, quiet)
    start = time.perf_counter()
    for position, unit in enumerate(units):
        stored = load_unit(out, unit)
        if stored is None:
            unit_start = time.perf_counter()
            stored = experiment.run_unit(config, unit, unit_seed(config["seed"], position))
            save_unit(out, unit, stored)
            progress.update(unit.key, time.perf_counter() - unit_start, resumed=False)
        else:
            progress.update(unit.key, 0.0, resumed=True)
        results.append(stored)
    progress.close()
    finalized = experiment.finalize(config, results, out)
    # An experiment not yet declaring its tables returns (results, Markdown body).
    summary, legacy_body = finalized if isinstance(finalized, tuple) else (finalized, "")
    # Wall time lives outside results.json, which must be identical for resumed and uninterrupted runs.
    wall = time.perf_counter() - start
    write_json(out / "timing.json", {"wall_seconds": wall, "units_run_now": progress.computed})
    write_json(out / "results.json", summary)
    summary = json.loads((out / "results.json").read_text())  # what every later reader sees
    section = section_of(
        experiment, config, summary, out,
        status="ran" if progress.computed == len(units) else "resumed",
        command=command_for(experiment.name, config["scale"], config["seed"], out,
                            overrides_of(experiment, config)),
        wall_seconds=wall, legacy_body=legacy_body,
    )  # fmt: skip
    for warning in section.warnings:
        print(f"[{experiment.name}] warning: {warning}", file=sys.stderr, flush=True)
    write_run_report(out, section, config)
    return summary


class _progress:
    """A tqdm bar on a terminal, plain log lines otherwise, nothing with ``quiet``."""

    def __init__(self, total: int, name: str, quiet: bool) -> None:
        self.quiet, self.total, self.done, self.name = quiet, total, 0, name
        self.computed = 0
        self.bar = None
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=name, unit="unit", file=sys.stderr)

    def update(self, key: str, seconds: float, *, resumed: bool) -> None:
        self.done += 1
        self.computed += 0 if resumed else 1
        if self.bar is not None:
            self.bar.set_postfix_str(key)
            self.bar.update(1)
        elif not self.quiet:
            how = "already done" if resumed else f"{seconds:.1f}s"
            print(f"[{self.name}] unit {self.done}/{self.total} {key}: {how}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
