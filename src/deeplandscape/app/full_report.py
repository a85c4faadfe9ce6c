"""The full report: every experiment at one scale, the papers' figures and tables beside ours, and the
verdict on each of the papers' claims.

``build_report(runs_dir, plan)`` takes each :class:`PlannedRun` in turn and

- collects the finished run in ``runs_dir/<name>/`` when its ``config.json`` has the planned
  configuration and its ``results.json`` exists; resumes it when it is unfinished; runs it there when the
  directory holds nothing (:func:`collect_or_run`);
- builds its :class:`~deeplandscape.app.report.Section` — the experiment's own claims decided on
  the run, its tables and its figures — and writes ``runs_dir/report.md``, ``report.html`` and
  ``report.json`` (schema in the README, "The full report").

It knows no experiment by name: everything it shows is declared by the experiment modules. An experiment
that fails is recorded with its error and the others go on; :attr:`FullReport.failed` names the failures.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from deeplandscape import __version__
from deeplandscape.app.report import (
    Section,
    cell,
    claims_markdown,
    command_for,
    count_line,
    overrides_of,
    section_markdown,
    section_of,
)
from deeplandscape.experiments.claims import NOT_HELD, OUTCOMES
from deeplandscape.htmlreport import markdown_to_html, slug
from deeplandscape.rundir import write_json, write_text


@dataclass(frozen=True)
class PlannedRun:
    """One experiment of a report: its name, scale and ``KEY=VALUE`` overrides."""

    name: str
    scale: str
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class FullReport:
    """The written report (``markdown``, ``html``, ``json`` paths) and its sections."""

    markdown: Path
    html: Path
    json: Path
    sections: tuple[Section, ...] = field(default_factory=tuple)

    @property
    def failed(self) -> list[str]:
        return [s.name for s in self.sections if s.status == "failed"]


def collect_or_run(
    planned: PlannedRun, out: Path, *, seed: int, run_missing: bool, quiet: bool
) -> tuple[str, dict[str, Any] | None, dict[str, Any]]:
    """``(status, results, config)`` of ``planned`` in ``out``: collected, resumed, ran or missing.

    A finished run is collected when it is of the same experiment, scale and seed, with the same values of
    the planned overrides; an unfinished one is resumed (:func:`~.runner.run_experiment` refuses it unless
    its whole configuration is this one). Raises ``ValueError`` when ``out`` holds anything else (it is
    never overwritten) or a damaged file (named), and whatever the experiment raises.
    """
    from deeplandscape import experiments
    from deeplandscape.app.runner import run_experiment
    from deeplandscape.experiments.spec import resolve_config
    from deeplandscape.rundir import read_json

    experiment = experiments.get(planned.name)
    config = resolve_config(experiment, planned.scale, seed, list(planned.overrides))
    config_path, results_path = out / "config.json", out / "results.json"
    status = "ran"
    if config_path.exists():
        stored = read_json(config_path)
        if not isinstance(stored, dict) or stored.get("experiment") != planned.name:
            holder = stored.get("experiment") if isinstance(stored, dict) else None
            raise ValueError(f"Invalid run directory: {out} holds a run of {holder!r}")
        if stored.get("scale") != planned.scale or stored.get("seed") != seed:
            raise ValueError(
                f"Invalid run directory: {out} holds a run at scale {stored.get('scale')} with seed "
                f"{stored.get('seed')}, not {planned.scale} with seed {seed}; choose another directory"
            )
        keys = [item.split("=", 1)[0].strip().replace("-", "_") for item in planned.overrides]
        if any(json.dumps(stored.get(k)) != json.dumps(config[k]) for k in keys):
            raise ValueError(
                f"Invalid run directory: {out} holds a run with other values of {', '.join(keys)}"
            )
        if results_path.exists():
            results = read_json(results_path)
            if not isinstance(results, dict):
                raise ValueError(f"Damaged file: {results_path} does not hold results")
            return "collected", results, stored
        status = "resumed"
    if not run_missing:
        return "missing", None, config
    results = run_experiment(experiment, config, out, resume=status == "resumed", quiet=quiet)
    return status, json.loads(json.dumps(results)), config


REPORT_FILES = ("report.md", "report.html", "report.json", "index.md", "index.html")


def check_report_dir(runs_dir: Path, option: str = "runs directory") -> None:
    """Refuse (``ValueError``, before anything is written) a directory that is neither new, nor empty, nor
    a report's: one that holds only experiment run directories (named for their experiment), the
    diagnostics' directory and the report's own files, with a ``report.json`` written by
    :func:`build_report` beside any ``report.md``."""
    from deeplandscape import experiments
    from deeplandscape.rundir import RunDirError, describe, entries, read_json

    runs_dir = Path(runs_dir)
    names = entries(runs_dir, option)
    if not names:
        return
    known = {*experiments.available(), "diagnostics"}
    summary = read_json(runs_dir / "report.json") if "report.json" in names else None
    ours = isinstance(summary, dict) and "sections" in summary and "deeplandscape_version" in summary
    allowed = {*REPORT_FILES} if ours else {"index.md", "index.html"}  # write_index guards its own files
    foreign = [n for n in names if not (n in allowed or (n in known and (runs_dir / n).is_dir()))]
    if foreign:
        raise RunDirError(
            f"Invalid {option}: {runs_dir} holds files that are not a deeplandscape report's "
            f"({describe(foreign)}); choose a new or empty directory"
        )


def _section(planned: PlannedRun, out: Path, *, seed: int, run_missing: bool, quiet: bool) -> Section:
    """The section of one planned run (collected, resumed, ran, missing or failed)."""
    from deeplandscape import experiments

    try:
        experiment = experiments.get(planned.name)
        status, results, config = collect_or_run(
            planned, out, seed=seed, run_missing=run_missing, quiet=quiet
        )
    except Exception as error:  # one failure must not lose the other experiments
        # a refused input (ValueError) is the user's to fix: its message says what; a crash shows where
        detail = (
            f"{type(error).__name__}: {error}" if isinstance(error, ValueError) else traceback.format_exc()
        )
        print(f"[report] {planned.name} failed:\n{detail}", file=sys.stderr, flush=True)
        known = planned.name in experiments.available()
        return Section(
            name=planned.name,
            description=experiments.get(planned.name).description if known else "an unknown experiment",
            reproduces=experiments.get(planned.name).reproduces if known else "–",
            scale=planned.scale,
            status="failed",
            command=command_for(planned.name, planned.scale, seed, out, planned.overrides),
            error=f"{type(error).__name__}: {error}",
        )
    base = dict(name=planned.name, description=experiment.description, reproduces=experiment.reproduces,
                scale=planned.scale)  # fmt: skip
    command = command_for(planned.name, planned.scale, seed, out, overrides_of(experiment, config))
    if status == "missing":
        return Section(**base, status=status, command=command)
    timing = out / "timing.json"
    wall = json.loads(timing.read_text()).get("wall_seconds") if timing.exists() else None
    return section_of(experiment, config, results, out, status=status, command=command, wall_seconds=wall)


def _with_settings(name: str, overrides: Sequence[str], settings: dict[str, str] | None) -> tuple[str, ...]:
    """``overrides`` plus ``KEY=VALUE`` for every setting that experiment ``name`` has as a parameter."""
    from deeplandscape import experiments

    if not settings or name not in experiments.available():
        return tuple(overrides)
    params = experiments.get(name).params
    given = {item.split("=", 1)[0] for item in overrides}
    return (*overrides, *(f"{k}={v}" for k, v in settings.items() if k in params and k not in given))


def _explain(sections, runs_dir: Path, settings, *, seed: int, run_missing: bool, quiet: bool):
    """The sections with the diagnostics of their claims that did not hold attached, and those runs."""
    from deeplandscape import experiments

    explained, runs = [], {}
    for section in sections:
        if section.status in ("failed", "missing") or section.name not in experiments.available():
            explained.append(section)
            continue
        diagnostics = experiments.get(section.name).diagnostics
        results = []
        for r in section.claims:
            ids = []
            for d in diagnostics if r.verdict.status == NOT_HELD else ():
                if r.claim.id not in d.explains:
                    continue
                if d.id not in runs:
                    overrides = _with_settings(d.experiment, d.overrides, settings)
                    planned = PlannedRun(d.experiment, section.scale, overrides)
                    out = runs_dir / "diagnostics" / d.id
                    run = _section(planned, out, seed=seed, run_missing=run_missing, quiet=quiet)
                    runs[d.id] = (d, replace(run, name=d.id))
                ids.append((d.id, runs[d.id][1].command))
            results.append(replace(r, explained_by=tuple(ids)))
        explained.append(replace(section, claims=tuple(results)))
    return explained, list(runs.values())


def summary_counts(sections: Sequence[Section]) -> dict[str, int]:
    """The count of each outcome over the papers' claims (questions beyond the papers excluded)."""
    claims = [r for s in sections for r in s.claims if not r.claim.beyond_papers]
    return {status: sum(r.verdict.status == status for r in claims) for status in OUTCOMES}


def build_report(
    runs_dir: str | Path,
    plan: Sequence[PlannedRun],
    *,
    seed: int = 0,
    run_missing: bool = True,
    quiet: bool = False,
    title: str = "deeplandscape: the papers' figures and tables beside ours",
    command: str | None = None,
    settings: dict[str, str] | None = None,
) -> FullReport:
    """Collect or run every planned experiment into ``runs_dir/<name>/`` and write the report there.

    Each claim that did not hold gets the diagnostics its experiment declares for it, run into
    ``runs_dir/diagnostics/<id>/`` and shown after the experiments (never counted). ``settings``
    (``KEY: VALUE``, e.g. the MNIST path) apply to every diagnostic whose experiment has the key, as
    :func:`plan_for` applies them to the plan.
    """
    runs_dir = Path(runs_dir)
    if not plan:
        raise ValueError("Invalid plan: no experiment to report")
    runs_dir.mkdir(parents=True, exist_ok=True)
    sections = [_section(p, runs_dir / p.name, seed=seed, run_missing=run_missing, quiet=quiet) for p in plan]
    sections, explanations = _explain(
        sections, runs_dir, settings, seed=seed, run_missing=run_missing, quiet=quiet
    )
    counts = summary_counts(sections)
    scales = sorted({p.scale for p in plan})
    states = ", ".join(
        f"{sum(s.status == k for s in sections)} {k}"
        for k in ("collected", "ran", "resumed", "missing", "failed")
        if any(s.status == k for s in sections)
    )
    everything = [r for s in sections for r in s.claims]
    contents = [f"- [Claims summary](#claims-summary): {count_line(everything)}"]
    for s in sections:
        note = f"**failed**: {cell(s.error)}" if s.status == "failed" else count_line(s.claims)
        contents.append(f"- [{s.name}](#{slug(s.name)}) ({s.scale}): {note}")
    summary_line = ", ".join(f"{counts[k]} {k}" for k in OUTCOMES)
    header = [
        f"# {title}",
        f"Scale: {', '.join(scales)}; seed {seed}; deeplandscape {__version__}. "
        + (f"Written by `{command}`. " if command else "")
        + f"Experiments: {len(sections)} ({states}). Each section gives the command that produced our "
        "numbers; every claim is decided by the code of its experiment from the run, with the criterion and "
        "the interval that decides it.",
        f"**Of the papers' {sum(counts.values())} claims: {summary_line}.**",
        "## Contents",
        "\n".join(contents),
        "## Claims summary {#claims-summary}",
        "\n\n".join(claims_markdown(s, with_section=True) for s in sections if s.claims),
    ]
    parts = [section_markdown(s, prefix=s.name, level=2, run_link=True) for s in sections]
    if explanations:
        parts.append("## Explanations of the claims that did not hold {#explanations}")
        for diagnostic, section in explanations:
            parts.append(
                f"Run `{diagnostic.id}` explains {', '.join(f'`{c}`' for c in diagnostic.explains)}: "
                f"{diagnostic.question}"
            )
            prefix = f"diagnostics/{diagnostic.id}"
            parts.append(section_markdown(section, prefix=prefix, level=3, run_link=True))
    markdown = "\n\n".join(header + parts) + "\n"
    md_path = write_text(runs_dir / "report.md", markdown)
    html_path = write_text(runs_dir / "report.html", markdown_to_html(markdown, title, anchors=True))
    document = {
        "title": title,
        "scales": scales,
        "seed": seed,
        "deeplandscape_version": __version__,
        "command": command,
        "environment": environment(),
        "summary": counts,
        "sections": [s.as_dict() for s in sections],
        "explanations": [
            {"id": d.id, "explains": list(d.explains), "question": d.question, "section": s.as_dict()}
            for d, s in explanations
        ],
    }
    json_path = write_json(runs_dir / "report.json", document)
    return FullReport(md_path, html_path, json_path, tuple(sections))


def environment() -> dict[str, Any]:
    """Where a report was produced: date (UTC), library versions, machine."""
    import os
    import platform
    import time

    import torch

    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores"
        + (f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"),
    }


def plan_for(
    scale: str, names: Sequence[str] | None = None, settings: dict[str, str] | None = None
) -> list[PlannedRun]:
    """Every experiment (or the given ones, validated before any work) at ``scale``; ``settings``
    (``KEY: VALUE``) become overrides of every experiment that has the key (e.g. ``mnist_path``)."""
    from deeplandscape import experiments as registry
    from deeplandscape.experiments.spec import SCALES

    if scale not in SCALES:
        raise ValueError(f"Invalid scale: {scale!r} (must be one of {', '.join(SCALES)})")
    chosen = registry.available() if names is None else list(names)
    unknown = [n for n in chosen if n not in registry.available()]
    if unknown:
        raise ValueError(
            f"Unknown experiment: {', '.join(map(repr, unknown))} (known: {', '.join(registry.available())})"
        )
    if not chosen:
        raise ValueError("Invalid experiments: an empty list")
    return [PlannedRun(n, scale, _with_settings(n, (), settings)) for n in chosen]


def write_full_report(
    runs_dir: str | Path,
    scale: str,
    experiments: Sequence[str] | None = None,
    run_missing: bool = True,
    seed: int = 0,
    quiet: bool = False,
) -> Path:
    """Collect or run every experiment (or ``experiments``) at ``scale`` in ``runs_dir`` and write
    ``runs_dir/report.md``, ``report.html`` (returned) and ``report.json``."""
    return build_report(
        runs_dir, plan_for(scale, experiments), seed=seed, run_missing=run_missing, quiet=quiet
    ).html
