"""Reports: ``report.md`` + ``report.html`` of one run, and an index page over a directory of runs.

The HTML is produced from the Markdown by a deliberately small converter (headings, paragraphs, pipe
tables, images, inline code) so that reports need no extra dependency and open in any browser.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

from deeplandscape.rundir import write_text

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;"
    "text-align:right}th{background:#f4f4f4}img{max-width:100%}code{background:#f4f4f4;padding:0 .2em}"
)


def _inline(text: str) -> str:
    text = html.escape(text)
    text = re.sub(r"!\[([^\]]*)\]\(([^)]+)\)", r'<img alt="\1" src="\2">', text)
    text = re.sub(r"\[([^\]]+)\]\(([^)]+)\)", r'<a href="\2">\1</a>', text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text)


def markdown_to_html(markdown: str, title: str) -> str:
    """Convert the Markdown subset the reports use into a standalone HTML page."""
    body: list[str] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].rstrip()
        if not line:
            i += 1
            continue
        heading = re.match(r"(#{1,6}) (.*)", line)
        if heading:
            level = len(heading.group(1))
            body.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
            i += 1
            continue
        if line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
                if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                    rows.append(cells)
                i += 1
            head, *rest = rows
            body.append("<table><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr>")
            body += ["<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in rest]
            body.append("</table>")
            continue
        paragraph = []
        while i < len(lines) and lines[i].strip() and not re.match(r"#{1,6} |\|", lines[i]):
            paragraph.append(lines[i].strip())
            i += 1
        body.append(f"<p>{_inline(' '.join(paragraph))}</p>")
    return (
        f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


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
