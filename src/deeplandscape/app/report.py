"""Reports: what a run shows (its claims decided, its tables and figures beside the papers'), as a
structured :class:`Section` rendered to Markdown/HTML for one run (``report.md``/``report.html``) or as a
part of the full report; and an index page over a directory of runs."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deeplandscape.experiments.claims import OUTCOMES, Claim, RunData, Verdict, fmt
from deeplandscape.htmlreport import markdown_to_html, slug
from deeplandscape.rundir import RunDirError, read_json, write_json, write_text

SECTION_STATES = ("ran", "resumed", "collected", "missing", "failed")


@dataclass(frozen=True)
class ClaimResult:
    """A claim and its verdict on one run; ``explained_by``: the diagnostics run for it (ids, commands)."""

    claim: Claim
    verdict: Verdict
    explained_by: tuple[tuple[str, str], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The claim as ``report.json`` holds it (README, "report.json")."""
        c, v = self.claim, self.verdict
        return {
            "id": c.id,
            "claim": c.claim,
            "source": c.source,
            "criterion": c.criterion,
            "status": v.status,
            "reason": v.reason or None,
            "beyond_papers": c.beyond_papers,
            "evidence": v.evidence,
            "statistic": v.statistic.as_dict() if v.statistic is not None else None,
            "warnings": list(v.warnings),
            "shown_in": c.shown_in or None,
            "explained_by": [{"id": i, "command": command} for i, command in self.explained_by],
        }


@dataclass(frozen=True)
class Section:
    """What a report says about one experiment's run.

    ``status``: "ran", "resumed", "collected" (a finished run was there), "missing" (not run) or "failed"
    (``error`` says why). ``failed_units`` names the units that raised in a run that went on without them
    (``inspect``: an instrument and its error).
    """

    name: str
    description: str
    reproduces: str
    scale: str
    status: str
    command: str
    claims: tuple[ClaimResult, ...] = ()
    tables: tuple[Any, ...] = ()
    figures: tuple[Any, ...] = ()
    results: dict[str, Any] | None = None
    error: str | None = None
    wall_seconds: float | None = None
    failed_units: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.status not in SECTION_STATES:
            raise ValueError(f"Invalid section status: {self.status!r} (one of {', '.join(SECTION_STATES)})")

    @property
    def claim_warnings(self) -> list[str]:
        return [f"{r.claim.id}: {w}" for r in self.claims for w in r.verdict.warnings]

    @property
    def warnings(self) -> list[str]:
        failures = [f"{key} failed (the rest ran without it): {error}" for key, error in self.failed_units]
        return failures + self.claim_warnings

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "scale": self.scale,
            "status": self.status,
            "command": self.command,
            "error": self.error,
            "wall_seconds": self.wall_seconds,
            "warnings": self.warnings,
            "failed_units": dict(self.failed_units),
            "claims": [r.as_dict() for r in self.claims],
            "tables": [
                {"id": t.id, "title": t.title, "header": list(t.header), "rows": [list(r) for r in t.rows]}
                for t in self.tables
            ],
            "figures": [{"file": f.file, "caption": f.caption, "paper": f.paper} for f in self.figures],
        }


def decide_claims(experiment, config: dict[str, Any], results: dict[str, Any], run_dir: Path | None):
    """Every claim of ``experiment`` decided on the run (``results``, ``config``, raw data in ``run_dir``)."""
    run = RunData(results, config, run_dir)
    return tuple(ClaimResult(claim, claim.evaluate(run)) for claim in experiment.claims)


def section_of(
    experiment,
    config: dict[str, Any],
    results: dict[str, Any],
    run_dir: Path,
    *,
    status: str,
    command: str,
    wall_seconds: float | None = None,
    failed_units: dict[str, str] | None = None,
) -> Section:
    """The section of a finished run: claims decided, tables built, figures present in ``run_dir``."""
    return Section(
        name=experiment.name,
        description=experiment.description,
        reproduces=experiment.reproduces,
        scale=config["scale"],
        status=status,
        command=command,
        claims=decide_claims(experiment, config, results, run_dir),
        tables=tuple(experiment.tables(results, config)),
        figures=tuple(f for f in experiment.figures if (run_dir / f.file).is_file()),
        results=results,
        wall_seconds=wall_seconds,
        failed_units=tuple((failed_units or {}).items()),
    )


# ---------------------------------------------------------------------------------------------- commands


def command_for(name: str, scale: str, seed: int, out: Path | str, overrides: Sequence[str] = ()) -> str:
    """The ``deeplandscape run`` command line that writes this run into ``out``."""
    flag = {"quick": " --quick", "reference": " --reference", "paper": " --paper"}.get(scale, "")
    extra = "".join(f" {item}" for item in overrides)
    return f"deeplandscape run {name}{flag} --seed {seed} --out {out}{extra}"


def overrides_of(experiment, config: dict[str, Any]) -> list[str]:
    """``KEY=VALUE`` for every key of ``config`` that differs from its scale's value."""
    from deeplandscape.experiments.spec import resolve_config

    plain = resolve_config(experiment, config["scale"], config["seed"])
    items = []
    for key, value in config.items():
        if key in plain and key not in ("experiment", "scale", "seed") and value != plain[key]:
            if isinstance(value, list):
                text = ",".join(map(str, value))
            else:
                text = str(value).lower() if isinstance(value, bool) else str(value)
            items.append(f"{key}={text}")
    return items


# ---------------------------------------------------------------------------------------------- Markdown


def cell(text: Any) -> str:
    """Text for a table cell: one line, a literal ``|`` escaped, numbers with 4 significant digits."""
    return fmt(text).replace("\n", " ").replace("|", "\\|")


def markdown_table(header: Sequence[Any], rows: Sequence[Sequence[Any]], align: str = "") -> str:
    """A pipe table (``align``: one of ``l``/``r``/``c`` per column, default left for the first column)."""
    marks = {"l": ":---", "r": "---:", "c": ":---:"}
    seps = [marks[a] for a in align] if align else ["---"] * len(header)
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "|".join(seps) + "|"]
    lines += ["| " + " | ".join(cell(x) for x in row) + " |" for row in rows]
    return "\n".join(lines)


def anchor(section: str, kind: str, key: str) -> str:
    """The ``id`` of a section's figure or table (unique in a full report)."""
    return slug(f"{section}-{kind}-{key}")


def count_line(claims: Sequence[ClaimResult]) -> str:
    """ "a held, b did not hold, …" over the papers' claims (questions beyond them counted apart)."""
    papers = [r for r in claims if not r.claim.beyond_papers]
    counts = ", ".join(f"{sum(r.verdict.status == s for r in papers)} {s}" for s in OUTCOMES)
    beyond = len(claims) - len(papers)
    return counts + (f"; {beyond} beyond the papers (not counted)" if beyond else "")


def claims_markdown(section: Section, *, with_section: bool = False) -> str:
    """The claims of ``section`` as a table: the paper's words, criterion, verdict with its reason, our
    evidence with the deciding statistic, and a link to the figure or table that shows it."""
    header = (["experiment"] if with_section else []) + ["claim", "criterion", "verdict", "evidence"]
    rows = []
    for r in section.claims:
        c, v = r.claim, r.verdict
        words = f"{c.claim} ({c.source})" + (" — *beyond the papers, not counted*" if c.beyond_papers else "")
        if c.shown_in:
            kind = "figure" if c.shown_in.endswith(".png") else "table"
            words += f" [→ {kind}](#{anchor(section.name, kind, c.shown_in)})"
        verdict = f"**{v.status}**" + (f": {v.reason}" if v.reason else "")
        if r.explained_by:
            verdict += "; explained by " + ", ".join(f"[{i}](#{slug(i)})" for i, _ in r.explained_by)
        first = [f"[{section.name}](#{slug(section.name)})"] if with_section else []
        rows.append([*first, f"`{c.id}` {words}", c.criterion, verdict, v.evidence])
    return markdown_table(header, rows, "l" * len(header))


def section_markdown(
    section: Section, *, prefix: str = "", level: int = 2, run_link: bool = False, title: str = ""
) -> str:
    """The Markdown of one section; ``prefix`` is the run directory relative to the page (figure paths),
    ``title`` replaces the heading (the experiment's name)."""
    h = "#" * level
    path = f"{prefix}/" if prefix else ""
    parts = [f"{'#' * (level - 1) if title else h} {title or section.name} {{#{slug(section.name)}}}"]
    if section.status == "failed":
        parts.append(
            f"**Failed** at scale {section.scale}: `{cell(section.error)}`. Command: `{section.command}`."
        )
        return "\n\n".join(parts)
    how = {"collected": "collected from an earlier run", "ran": "run now", "resumed": "resumed now",
           "missing": "not run"}[section.status]  # fmt: skip
    wall = (
        f", wall time {section.wall_seconds:.1f} s" if isinstance(section.wall_seconds, (int, float)) else ""
    )
    link = f" Run directory: [{prefix}/report.html]({prefix}/report.html)." if run_link and prefix else ""
    parts.append(
        f"{section.description[:1].upper()}{section.description[1:]}. Reproduces: {section.reproduces}. "
        f"Scale **{section.scale}** ({how}{wall}); command: `{section.command}`.{link}"
    )
    if section.status == "missing":
        return "\n\n".join(parts)
    if section.warnings:
        parts.append(f"{h}# Warnings ({section.name})")
        parts.append("\n".join(f"- {w}" for w in section.warnings))
    if section.claims:
        parts.append(f"{h}# Claims ({section.name}): {count_line(section.claims)}")
        parts.append(claims_markdown(section))
    for figure in section.figures:
        parts.append(f"{h}# Figure: {figure.caption} {{#{anchor(section.name, 'figure', figure.file)}}}")
        if figure.paper:
            parts.append(f"The paper: {figure.paper}")
        parts.append(f"[![{figure.caption}]({path}{figure.file})]({path}{figure.file})")
    for table in section.tables:
        parts.append(f"{h}# Table: {table.title} {{#{anchor(section.name, 'table', table.id)}}}")
        parts.append(markdown_table(table.header, table.rows))
        if table.note:
            parts.append(table.note)
    return "\n\n".join(parts)


def write_run_report(out: Path, section: Section, config: dict[str, Any]) -> None:
    """``report.md``, ``report.html`` and ``report.json`` (the section, as in the full report) of a run."""
    settings = ", ".join(f"`{k}={v}`" for k, v in config.items() if k != "experiment")
    title = f"{section.name}: {section.description}"
    markdown = section_markdown(section, title=title) + f"\n\n## Configuration\n\n{settings}\n"
    write_text(out / "report.md", markdown)
    write_text(out / "report.html", markdown_to_html(markdown, section.name))
    write_json(out / "report.json", {"sections": [section.as_dict()]})


def run_summary(out: Path) -> dict[str, Any]:
    """What ``deeplandscape run --json`` prints: the run directory, its report, the results and the claims'
    verdicts (as the run's ``report.json`` holds them), with the count of each outcome."""
    results = read_json(out / "results.json")
    section = read_json(out / "report.json")["sections"][0]
    papers = [c for c in section["claims"] if not c["beyond_papers"]]
    return {
        "run_dir": str(out),
        "report": str(out / "report.html"),
        "experiment": section["name"],
        "scale": section["scale"],
        "command": section["command"],
        "warnings": section["warnings"],
        "summary": {status: sum(c["status"] == status for c in papers) for status in OUTCOMES},
        "claims": section["claims"],
        "results": results,
    }


# ---------------------------------------------------------------------------------------------- index


def key_numbers(results: dict[str, Any], limit: int = 6) -> str:
    """The top-level scalar numbers of a ``results.json``, for the index page."""
    items = [(k, v) for k, v in results.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in items[:limit])


def _run_dirs(runs_dir: Path) -> list[Path]:
    """The run directories under ``runs_dir``, at any depth (a report's or the demo's runs, their
    diagnostics): every directory holding a ``config.json``."""
    return sorted({path.parent for path in runs_dir.rglob("config.json") if path.parent != runs_dir})


def _report_row(directory: Path, runs_dir: Path) -> str | None:
    """The index row of a full report (``report --all``, ``demo``) in ``directory``: its ``report.json``
    has a ``summary``; ``None`` for anything else. :class:`~deeplandscape.rundir.RunDirError` if damaged."""
    document = read_json(directory / "report.json")
    if not (isinstance(document, dict) and isinstance(document.get("summary"), dict)):
        return None
    name = directory.relative_to(runs_dir).as_posix()
    counts = ", ".join(f"{document['summary'].get(status, 0)} {status}" for status in OUTCOMES)
    scales = ", ".join(document.get("scales", []))
    title, experiments = cell(document.get("title", "")), len(document.get("sections", []))
    return f"| [{name}]({name}/report.html) | {title} | {scales} | {experiments} | {counts} |"


def _index_row(run: Path, runs_dir: Path) -> str:
    """One row of the index; :class:`~deeplandscape.rundir.RunDirError` when a file of ``run`` is damaged."""
    config = read_json(run / "config.json")
    if not isinstance(config, dict):
        raise RunDirError(f"Damaged file: {run / 'config.json'} does not hold a configuration")
    name = run.relative_to(runs_dir).as_posix()
    results_path = run / "results.json"
    finished = results_path.exists()
    results = read_json(results_path) if finished else {}
    if not isinstance(results, dict):
        raise RunDirError(f"Damaged file: {results_path} does not hold results")
    numbers = key_numbers(results)
    experiment = config.get("experiment") or config.get("command", "?")
    link = f"[{name}]({name}/report.html)" if finished else name
    status = "finished" if finished else "unfinished"
    return f"| {link} | {experiment} | {config.get('scale', '?')} | {status} | {numbers} |"


INDEX_TITLE = "# Runs in "


def write_index(runs_dir: Path) -> Path:
    """Write ``runs_dir/index.md`` and ``index.html`` linking every full report (``report --all``,
    ``demo``: its title and the count of each outcome) and every run directory at any depth (a report's
    or the demo's runs, their diagnostics) with its key numbers.

    A run directory whose files are damaged is listed as such, with a warning on stderr, and the others
    are reported. An ``index.md`` or ``index.html`` that this function did not write is never overwritten.
    """
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        what = "is not a directory" if runs_dir.exists() else "does not exist"
        raise ValueError(f"Invalid runs directory: {runs_dir} {what}")
    for name in ("index.md", "index.html"):
        mine = (runs_dir / "index.md").exists() and (runs_dir / "index.md").read_text(
            errors="replace"
        ).startswith(INDEX_TITLE)
        if (runs_dir / name).exists() and not mine:
            raise RunDirError(
                f"Invalid runs directory: {runs_dir / name} exists and was not written by deeplandscape; "
                "it is not overwritten"
            )
    rows, reports = [], []
    for run in _run_dirs(runs_dir):
        try:
            rows.append(_index_row(run, runs_dir))
        except RunDirError as error:
            print(f"warning: {run} skipped: {error}", file=sys.stderr)
            name = run.relative_to(runs_dir).as_posix()
            rows.append(f"| {name} | ? | ? | damaged: {cell(str(error))} | |")
    for path in sorted(runs_dir.rglob("report.json")):
        try:
            row = _report_row(path.parent, runs_dir)
        except RunDirError as error:
            print(f"warning: {path} skipped: {error}", file=sys.stderr)
            continue
        reports += [row] if row is not None else []
    head = [f"{INDEX_TITLE}{runs_dir.name}", ""]
    if reports:
        head += [
            "## Full reports (`report --all`, `demo`)",
            "",
            "| report | title | scales | experiments | the papers' claims |",
            "|---|---|---|---|---|",
            *reports,
            "",
            "## Runs",
            "",
        ]
    markdown = "\n".join(
        [*head, "| run | experiment | scale | status | key numbers |", "|---|---|---|---|---|", *rows, ""]
    )
    write_text(runs_dir / "index.md", markdown)
    write_text(runs_dir / "index.html", markdown_to_html(markdown, f"deeplandscape runs: {runs_dir.name}"))
    return runs_dir / "index.html"
