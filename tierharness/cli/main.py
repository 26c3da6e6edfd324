"""`python -m tierharness`: the commands behind the nox sessions.

Thin on purpose: argument parsing here, the work in the modules it calls.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tierharness.cli.commands import COMMANDS
from tierharness.config import withhold_secrets
from tierharness.errors import HarnessError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command in COMMANDS, in its order."""
    parser = argparse.ArgumentParser(prog="tierharness", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        child = sub.add_parser(command.name, help=command.help)
        for argument in command.arguments:
            child.add_argument(*argument.flags, **argument.options)
        child.set_defaults(func=command.handler)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    withhold_secrets()  # before any child process: none of them inherits the key password
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except HarnessError as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
