"""The ``deeplandscape`` command line: thin, it parses arguments and calls the library."""

from __future__ import annotations

import argparse
import sys

from deeplandscape import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deeplandscape", description=__doc__)
    parser.add_argument("--version", action="version", version=f"deeplandscape {__version__}")
    parser.add_subparsers(dest="command", required=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
