"""An experiment's configuration keys as the command line shows them: type, value at each scale, allowed
range (``deeplandscape run NAME --help``, ``deeplandscape list --json``)."""

from __future__ import annotations

from typing import Any

from deeplandscape.experiments.spec import SCALES, Experiment, Param, show


def allowed(param: Param) -> str:
    """The values a key accepts, in words: its range, its choices, whether list items must differ."""
    parts = []
    if param.choices is not None:
        parts.append(f"one of {', '.join(param.choices)}")
    if param.low is not None and param.high is not None:
        parts.append(f"{param.low:g} to {param.high:g}")
    elif param.low is not None:
        parts.append(f"≥ {param.low:g}")
    elif param.high is not None:
        parts.append(f"≤ {param.high:g}")
    if param.kind in ("float", "floats"):
        parts.append("finite")
    if param.kind in ("ints", "floats"):
        parts.append("distinct items" if param.distinct else "comma-separated")
    if param.kind == "bool":
        parts.append("true or false")
    return ", ".join(parts) or "any"


def describe(experiment: Experiment) -> list[dict[str, Any]]:
    """Every key of ``experiment``: ``key``, ``type``, ``help``, ``values`` (one per scale), ``low``,
    ``high``, ``choices`` and ``allowed`` (in words)."""
    return [
        {
            "key": key,
            "type": param.kind,
            "help": param.help,
            "values": {scale: param.at(scale) for scale in SCALES},
            "low": param.low,
            "high": param.high,
            "choices": list(param.choices) if param.choices is not None else None,
            "allowed": allowed(param),
        }
        for key, param in experiment.params.items()
    ]


def keys_text(experiment: Experiment, width: int = 28) -> str:
    """The keys of ``experiment`` as an aligned table (values longer than ``width`` are cut with …), each
    followed by its help on an indented line."""

    def cut(text: str) -> str:
        return text if len(text) <= width else text[: width - 1] + "…"

    header = ("key", "type", *SCALES, "allowed")
    rows = [
        (
            item["key"],
            item["type"],
            *(cut(show(item["values"][scale]) or '""') for scale in SCALES),
            item["allowed"],
        )
        for item in describe(experiment)
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(row: tuple[str, ...]) -> str:
        return "  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()

    lines = [
        f"keys of {experiment.name} (KEY=VALUE after the name; the scale's value unless given):",
        line(header),
    ]
    for row, item in zip(rows, describe(experiment), strict=True):
        lines += [line(row), f"      {item['help']}"]
    return "\n".join(lines)
