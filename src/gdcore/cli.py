"""The ``gdcore`` command line: ``gdcore train`` and ``gdcore compare``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from gdcore import __version__


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage block)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of the ``gdcore`` command and its subcommands."""
    from gdcore import _cli_compare, _cli_train

    parser = _Parser(
        prog="gdcore",
        description="Gradient-descent optimization with a compiled core.",
    )
    parser.add_argument("--version", action="version", version=f"gdcore {__version__}")
    subparsers = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=_Parser
    )
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
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print(f"gdcore {args.command}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OverflowError, MemoryError, OSError) as exc:
        # What the arguments led to (a value out of range, a network too large for
        # memory): one line, as for the errors found while parsing.
        print(f"gdcore {args.command}: error: {exc}", file=sys.stderr)
        return 2
