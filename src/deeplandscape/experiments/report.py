"""Reports: ``report.md`` + ``report.html`` of one run, and an index page over a directory of runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from deeplandscape.htmlreport import markdown_to_html
from deeplandscape.rundir import write_text


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


def write_index(runs_dir: Path) -> Path:
    """Write ``runs_dir/index.md`` and ``index.html`` linking every run directory with its key numbers."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise ValueError(f"Invalid runs directory: {runs_dir} does not exist")
    rows = []
    for config_path in sorted(runs_dir.glob("*/config.json")):
        run = config_path.parent
        config = json.loads(config_path.read_text())
        results_path = run / "results.json"
        status = "finished" if results_path.exists() else "unfinished"
        numbers = key_numbers(json.loads(results_path.read_text())) if results_path.exists() else ""
        link = f"[{run.name}]({run.name}/report.html)" if results_path.exists() else run.name
        rows.append(
            f"| {link} | {config.get('experiment', '?')} | {config.get('scale', '?')} "
            f"| {status} | {numbers} |"
        )
    markdown = "\n".join(
        [
            f"# Runs in {runs_dir.name}",
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
