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
        epilog = f"-- ARGS: {command.passthrough}" if command.passthrough else None
        child = sub.add_parser(command.name, help=command.help, epilog=epilog)
        for argument in command.arguments:
            child.add_argument(*argument.flags, **argument.options)
        child.set_defaults(func=command.handler, **({"passthrough": []} if command.passthrough else {}))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    withhold_secrets()  # before any child process: none of them inherits the key password
    words = list(sys.argv[1:] if argv is None else argv)
    # What follows `--` is another program's (connect's psql): argparse would take it for a
    # positional of its own when an option stands between.
    cut = words.index("--") if "--" in words else len(words)
    parser = build_parser()
    args = parser.parse_args(words[:cut])
    if cut < len(words):
        if not hasattr(args, "passthrough"):
            parser.error(f"`{args.command}` takes no arguments after --")
        args.passthrough = words[cut + 1 :]
    try:
        return int(args.func(args))
    except HarnessError as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
