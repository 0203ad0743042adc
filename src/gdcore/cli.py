"""The ``gdcore`` command line: ``gdcore train`` and ``gdcore compare``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gdcore import __version__


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of the ``gdcore`` command and its subcommands."""
    from gdcore import _cli_compare, _cli_train

    parser = argparse.ArgumentParser(
        prog="gdcore",
        description="Gradient-descent optimization with a compiled core.",
    )
    parser.add_argument("--version", action="version", version=f"gdcore {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    _cli_train.add_parser(subparsers)
    _cli_compare.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line on `argv` (default: the process arguments)."""
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    if args.command is None:
        parser.print_help()
        return 2
    return int(args.func(args))
