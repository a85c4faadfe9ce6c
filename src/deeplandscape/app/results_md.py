"""RESULTS.md, generated from full reports' ``report.json`` (never edited by hand).

``results_markdown([(label, document), ...])`` renders, for each report: how it was produced (command,
date, machine), the summary line with the count of each of the four outcomes over the papers' claims,
every claim with its verdict and deciding statistic, each claim that did not hold with the runs that
explain it (their commands and verdicts), each claim not decidable with its reason, and every table with
the papers' numbers beside ours.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deeplandscape.app.report import markdown_table
from deeplandscape.experiments.claims import NOT_HELD, OUTCOMES, UNDECIDABLE


def _statistic(claim: dict[str, Any]) -> str:
    s = claim.get("statistic")
    if not s:
        return "–"
    if s["ci_low"] == s["ci_high"] == s["estimate"]:
        return f"{s['name']} = {s['estimate']:.6g}"
    return f"{s['name']} = {s['estimate']:.4g} [{s['ci_low']:.4g}, {s['ci_high']:.4g}]"


def _summary(document: dict[str, Any]) -> str:
    counts = document["summary"]
    total = sum(counts.values())
    return f"Of the papers' {total} claims: " + ", ".join(f"{counts[k]} {k}" for k in OUTCOMES) + "."


def _environment(document: dict[str, Any]) -> str:
    env = document.get("environment") or {}
    parts = [f"deeplandscape {document.get('deeplandscape_version', '?')}"]
    parts += [f"{k} {env[k]}" for k in ("torch", "python") if k in env]
    if "machine" in env:
        parts.append(env["machine"])
    when = f" on {env['date']}" if "date" in env else ""
    return ", ".join(parts) + when


def report_markdown(label: str, document: dict[str, Any]) -> str:
    """The part of RESULTS.md for one full report."""
    sections = document["sections"]
    claims = [(s["name"], c) for s in sections for c in s["claims"]]
    explained = {e["id"]: e for e in document.get("explanations", [])}
    command = document.get("command") or "deeplandscape report --all"
    lines = [
        f"## {label}",
        f"Produced by `{command}` ({_environment(document)}); "
        f"scale {', '.join(document.get('scales', []))}, seed {document.get('seed')}.",
        f"**{_summary(document)}**",
        *_not_run(sections),
        f"### Every claim ({label})",
        markdown_table(
            ["experiment", "claim", "source", "verdict", "deciding statistic (95% interval)"],
            [
                [
                    name,
                    c["claim"] + (" *(beyond the papers, not counted)*" if c["beyond_papers"] else ""),
                    c["source"],
                    c["status"],
                    _statistic(c),
                ]
                for name, c in claims
            ],
        ),
    ]
    failed = [(n, c) for n, c in claims if c["status"] == NOT_HELD and not c["beyond_papers"]]
    if failed:
        lines.append(f"### What did not hold, and the runs that explain it ({label})")
        for name, c in failed:
            lines.append(f"- **{c['id']}** ({name}): {c['claim']} — {c['evidence']}")
            for ref in c.get("explained_by", []):
                run = explained.get(ref["id"], {})
                section = run.get("section", {})
                if section.get("claims"):
                    verdicts = "; ".join(
                        f"{x['id']}: {x['status']} ({_statistic(x)})" for x in section["claims"]
                    )
                    outcome = f"Its verdicts: {verdicts}"
                else:
                    outcome = (
                        f"Not run in this report ({section.get('status', 'missing')}); the command runs it."
                    )
                lines.append(f"  - explained by `{ref['command']}`: {run.get('question', '')} {outcome}")
            if not c.get("explained_by"):
                lines.append("  - no diagnostic run declared for this claim")
    undecided = [(n, c) for n, c in claims if c["status"] == UNDECIDABLE and not c["beyond_papers"]]
    if undecided:
        lines.append(f"### Not decidable at this scale ({label})")
        lines += [f"- **{c['id']}** ({name}): {c['reason']}" for name, c in undecided]
    for section in sections:
        for table in section.get("tables", []):
            lines.append(f"#### {section['name']}: {table['title']}")
            lines.append(markdown_table(table["header"], table["rows"]))
    return "\n\n".join(lines)


def _not_run(sections: Sequence[dict[str, Any]]) -> list[str]:
    """A line naming the experiments of the report that have no finished run (missing or failed)."""
    absent = [f"`{s['name']}` ({s['status']})" for s in sections if s["status"] in ("missing", "failed")]
    if not absent:
        return []
    return [f"Not in this report (no finished run; their claims are not counted): {', '.join(absent)}."]


def results_markdown(reports: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """RESULTS.md for the given ``(label, report.json document)`` pairs."""
    head = [
        "# Results: our numbers beside the papers'",
        "Generated from the full reports' `report.json` by `deeplandscape results`, not edited by hand. "
        "Each claim of the papers is decided by the code of its experiment with a 95% interval: *held* "
        "or *did not hold* only when the interval lies on one side of the criterion, *not decidable at "
        "this scale* when it straddles it or a guard fired (the reason is given), *not checked* when the "
        "run did not measure it.",
        "## Summary",
        "\n".join(f"- **{label}**: {_summary(document)}" for label, document in reports),
    ]
    return "\n\n".join(head + [report_markdown(label, d) for label, d in reports]) + "\n"


def write_results(paths: Sequence[tuple[str, Path]], out: Path) -> Path:
    """Read each labelled ``report.json`` and write RESULTS.md to ``out``."""
    from deeplandscape.rundir import write_text

    reports = []
    for label, path in paths:
        try:
            document = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"Invalid report: {path} cannot be read ({error})") from None
        if "sections" not in document or "summary" not in document:
            raise ValueError(f"Invalid report: {path} is not a full report's report.json")
        reports.append((label or document.get("title", str(path)), document))
    return write_text(out, results_markdown(reports))
