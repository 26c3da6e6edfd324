"""The project's migrations, applied once per worker by the project's own command."""

from __future__ import annotations

import shlex
import sys
import time

from harness.config import child_env
from harness.process import run
from harness.runtime.containers import PostgresInfo

__all__ = ["run_migrations"]


def run_migrations(command: str, postgres: PostgresInfo, *, env_var: str = "DATABASE_URL") -> float:
    """Run the project's migration command against `postgres`; returns the seconds it took."""
    argv = shlex.split(command)
    if argv and argv[0] in ("python", "python3"):
        argv[0] = sys.executable  # the test environment's interpreter, not whatever is on PATH
    started = time.monotonic()
    run(
        argv,
        env=child_env({env_var: postgres.url}),
        what="the migration command",
        fix="fix the migration, or the harness_migrate setting",
        shown=[*shlex.split(command), f"(with {env_var} pointing at the worker's database)"],
    )
    return time.monotonic() - started
