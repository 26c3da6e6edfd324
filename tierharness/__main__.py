"""`python -m tierharness`: the commands behind the nox sessions (see tierharness/cli/)."""

from __future__ import annotations

import sys

from tierharness.cli.main import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
