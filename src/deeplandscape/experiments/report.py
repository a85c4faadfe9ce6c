"""Reports: ``report.md`` + ``report.html`` of one run, and an index page over a directory of runs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from deeplandscape.htmlreport import markdown_to_html
from deeplandscape.rundir import RunDirError, read_json, write_text


def write_report(out: Path, experiment, config: dict[str, Any], wall_seconds: float, body: str) -> None:
    """Write ``report.md`` and ``report.html``: the experiment's own text, then its configuration."""
    settings = ", ".join(f"`{k}={v}`" for k, v in config.items() if k != "experiment")
    markdown = (
        f"# {experiment.name}: {experiment.description}\n\n"
        f"Reproduces: {experiment.reproduces}. Configuration: {settings}. "
        f"Wall time: {wall_seconds:.1f} s.\n\n{body.strip()}\n"
    )
    write_text(out / "report.md", markdown)
    write_text(out / "report.html", markdown_to_html(markdown, experiment.name))


def report_body(markdown: str) -> str:
    """The experiment's own text of a ``report.md`` written by :func:`write_report`: without the title line
    and the "Reproduces: … Wall time" paragraph (the full report states both itself)."""
    lines = markdown.strip().splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    text = "\n".join(lines).strip()
    if text.startswith("Reproduces:"):
        text = text.split("\n\n", 1)[1] if "\n\n" in text else ""
    return text.strip()


def key_numbers(results: dict[str, Any], limit: int = 6) -> str:
    """The top-level scalar numbers of a ``results.json``, for the index page."""
    items = [(k, v) for k, v in results.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in items[:limit])


def _run_dirs(runs_dir: Path) -> list[Path]:
    """The run directories in ``runs_dir`` and one level below (a report's or the demo's runs)."""
    found = {
        path.parent for pattern in ("*/config.json", "*/*/config.json") for path in runs_dir.glob(pattern)
    }
    return sorted(found)


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
    """Write ``runs_dir/index.md`` and ``index.html`` linking every run directory (also those one level
    down, as in a report's or the demo's directory) with its key numbers.

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
    rows = []
    for run in _run_dirs(runs_dir):
        try:
            rows.append(_index_row(run, runs_dir))
        except RunDirError as error:
            print(f"warning: {run} skipped: {error}", file=sys.stderr)
            name = run.relative_to(runs_dir).as_posix()
            rows.append(f"| {name} | ? | ? | damaged: {_cell(str(error))} | |")
    markdown = "\n".join(
        [
            f"{INDEX_TITLE}{runs_dir.name}",
            "",
            "| run | experiment | scale | status | key numbers |",
            "|---|---|---|---|---|",
            *rows,
            "",
        ]
    )
    write_text(runs_dir / "index.md", markdown)
    write_text(runs_dir / "index.html", markdown_to_html(markdown, f"deeplandscape runs: {runs_dir.name}"))
    return runs_dir / "index.html"


def _cell(text: str) -> str:
    return text.replace("\n", " ").replace("|", "\\|")
