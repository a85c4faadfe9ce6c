"""``deeplandscape nets``: print the model zoo with parameter counts beside the papers' counts."""

from __future__ import annotations

import argparse
import dataclasses
import json

from .registry import available, format_table, table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``deeplandscape nets``."""
    parser.add_argument(
        "names", nargs="*", help=f"networks to list (default: all of {', '.join(available())})"
    )
    parser.add_argument("--json", action="store_true", help="print the table as a JSON list")


def run(args: argparse.Namespace) -> int:
    """Print the table; unknown names exit with status 2 and a message listing the known ones."""
    names = list(args.names) or None
    try:
        rows = table(names)
    except ValueError as err:
        print(f"error: {err}")
        return 2
    if args.json:
        print(json.dumps([dataclasses.asdict(r) for r in rows], indent=2))
    else:
        print(format_table(rows))
    return 0
