"""What an experiment declares: its parameters (a value per scale), its units of work, the assembly of its
results, and what its report shows (tables, figures, the papers' claims, the diagnostics of a claim that did
not hold). The application layer (:mod:`deeplandscape.app`) runs experiments from these declarations;
nothing here runs anything.

An :class:`Experiment` declares its parameters (with a value for each scale: ``quick``, ``default``,
``reference``, ``paper``), splits its work into independent *units* (sizes, regimes, chunks of runs), computes
one unit at a time, and finally assembles figures and ``results.json`` from the units' outputs.
:func:`resolve_config` validates a configuration completely (every value, the units it makes, the memory they
need) before anything is written.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deeplandscape.experiments.claims import Claim
from deeplandscape.rundir import check_memory

SCALES = ("quick", "default", "reference", "paper")
RESERVED_KEYS = frozenset({"experiment", "scale", "seed"})  # what resolve_config puts in every configuration


class ConfigError(ValueError):
    """A bad configuration, reported before any work starts."""


@dataclass(frozen=True)
class Param:
    """One configuration key: its type, its value at each scale, and its allowed range.

    ``kind`` is one of "int", "float", "str", "bool", "ints", "floats" (comma-separated lists on the
    command line). ``low``/``high`` bound numbers (and every element of a list); ``choices`` restricts
    strings. Floats must be finite; list items must be distinct unless ``distinct=False`` (a list of layer
    widths, say, where a repeated width is a shape and not a repeated unit of work).
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
    distinct: bool = True

    def at(self, scale: str) -> Any:
        value = {"quick": self.quick, "reference": self.reference, "paper": self.paper}.get(scale)
        return self.default if value is None else value

    def parse(self, name: str, text: str) -> Any:
        """Parse a command-line value, raising :class:`ConfigError` naming ``name``."""
        scalar = {"int": int, "float": float, "str": str, "bool": _parse_bool}
        if self.kind in ("ints", "floats"):
            parts = [part.strip() for part in text.split(",")]
            if not all(parts):
                raise ConfigError(
                    f"Invalid {name}: {text!r} has an empty item (expected comma-separated {self.kind})"
                )
            convert = int if self.kind == "ints" else float
        else:
            parts, convert = [text], scalar[self.kind]
        try:
            values = [convert(part) for part in parts]
        except ValueError:
            raise ConfigError(f"Invalid {name}: {text!r} is not of type {self.kind}") from None
        return values if self.kind in ("ints", "floats") else values[0]

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
            if isinstance(item, float) and not math.isfinite(item):
                raise ConfigError(f"Invalid {name}: {item!r} (must be a finite number)")
            if self.low is not None and item < self.low:
                raise ConfigError(f"Invalid {name}: {item!r} (must be ≥ {self.low:g})")
            if self.high is not None and item > self.high:
                raise ConfigError(f"Invalid {name}: {item!r} (must be ≤ {self.high:g})")
            if self.choices is not None and item not in self.choices:
                raise ConfigError(f"Invalid {name}: {item!r} (must be one of {', '.join(self.choices)})")
        if self.kind in ("ints", "floats") and self.distinct:
            repeated = sorted({item for item in value if value.count(item) > 1})
            if repeated:
                raise ConfigError(
                    f"Invalid {name}: {show(value)} repeats {show(repeated)} (the items must be distinct)"
                )
        return value


def show(value: Any) -> str:
    """A configuration value as typed on the command line: lists comma-separated."""
    if isinstance(value, (list, tuple)):
        return ",".join(show(v) for v in value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def split_names(config: dict[str, Any], key: str, known: Sequence[str] | None = None) -> list[str]:
    """The comma-separated names of ``config[key]``; :class:`ConfigError` if one is empty, repeated or
    (given ``known``) unknown, or there are none."""
    text = config[key]
    items = [item.strip() for item in text.split(",")]
    allowed = f" (known: {', '.join(known)})" if known is not None else ""
    if not text.strip() or not all(items):
        raise ConfigError(
            f"Invalid {key}: {text!r} has an empty item (expected comma-separated names){allowed}"
        )
    unknown = [k for k in items if known is not None and k not in known]
    if unknown:
        raise ConfigError(f"Invalid {key}: {text!r}: unknown {', '.join(map(repr, unknown))}{allowed}")
    repeated = sorted({k for k in items if items.count(k) > 1})
    if repeated:
        raise ConfigError(
            f"Invalid {key}: {text!r} repeats {', '.join(repeated)} (the names must be distinct)"
        )
    return items


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
class MemoryNeed:
    """An estimate of the peak memory (bytes) of one part of an experiment, the parameter that drives it,
    and what is held (for the message that refuses it)."""

    param: str
    bytes: float
    what: str


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
    ``memory(config)``, where a size the user types can exceed the machine's memory, lists estimates of
    the largest allocations; a run whose estimate exceeds :func:`~deeplandscape.rundir.memory_limit` is
    refused before it starts.
    """

    name: str
    description: str
    reproduces: str
    params: dict[str, Param]
    units: Callable[[dict[str, Any]], list[Unit]]
    run_unit: Callable[[dict[str, Any], Unit, int], UnitResult]
    finalize: Callable[[dict[str, Any], list[UnitResult], Path], dict[str, Any]]
    memory: Callable[[dict[str, Any]], list[MemoryNeed]] | None = None
    tables: Callable[[dict[str, Any], dict[str, Any]], list[Table]] = no_tables
    figures: tuple[Figure, ...] = ()
    claims: tuple[Claim, ...] = ()
    diagnostics: tuple[Diagnostic, ...] = ()
    order: int = 1000

    def __post_init__(self) -> None:
        reserved = sorted(RESERVED_KEYS & set(self.params))
        if reserved:
            raise ValueError(
                f"Invalid experiment {self.name!r}: parameters may not be named {', '.join(reserved)} "
                "(keys of every configuration)"
            )
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
    """The fully resolved configuration: the scale's values, then ``KEY=VALUE`` overrides, validated (every
    value, the units it makes and the memory they need: :func:`check_config`)."""
    if scale not in SCALES:
        raise ConfigError(f"Invalid scale: {scale!r} (must be one of {', '.join(SCALES)})")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
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
    config = {"experiment": experiment.name, "scale": scale, "seed": seed, **config}
    check_config(experiment, config)
    return config


def check_config(experiment: Experiment, config: dict[str, Any]) -> list[Unit]:
    """The units of ``config``, after checking that they are distinct and that no memory estimate of
    ``experiment.memory`` exceeds the limit; :class:`ConfigError` otherwise."""
    try:
        units = experiment.units(config)
    except ConfigError:
        raise
    except ValueError as error:
        raise ConfigError(str(error)) from None
    keys = [u.key for u in units]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise ConfigError(
            f"Invalid configuration of {experiment.name}: it makes the unit(s) {', '.join(repeated)} "
            "more than once (a list parameter repeats an item)"
        )
    for need in experiment.memory(config) if experiment.memory is not None else []:
        try:
            check_memory(need.param, show(config[need.param]), need.bytes, need.what)
        except ValueError as error:
            raise ConfigError(str(error)) from None
    return units


def unit_seed(seed: int, position: int) -> int:
    """The seed of the unit at ``position``: independent of which other units ran in this process."""
    return int(np.random.SeedSequence([seed, position]).generate_state(1, dtype=np.uint64)[0] >> 1)
