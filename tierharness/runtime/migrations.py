"""The project's own commands against a worker's database: migrations, and an optional seed.

They run in the rootdir, with the rootdir on PYTHONPATH and the test environment's `bin`
first on PATH (so `alembic` finds the venv's alembic), and with the worker's environment
mapping: libpq's PG* variables, DATABASE_URL and whatever the project mapped. A command
that ignores all of them and writes to another database must not pass as a success: after
migrating, the worker's database has to hold tables, or the run stops and says which
variables the command was given.
"""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import psycopg

from tierharness.config import child_env
from tierharness.errors import HarnessError
from tierharness.process import run
from tierharness.runtime.containers import PostgresInfo

__all__ = ["count_tables", "run_migrations", "run_project_command"]


def run_project_command(command: str, *, rootdir: Path, env: Mapping[str, str], what: str, fix: str) -> float:
    """Run `command` (a shell-like string, not through a shell) for a worker; seconds it took."""
    argv = shlex.split(command)
    if not argv:
        raise HarnessError(f"{what} is empty", checked=repr(command), fix=fix)
    if argv[0] in ("python", "python3"):
        argv[0] = sys.executable  # the test environment's interpreter, not whatever is on PATH
    started = time.monotonic()
    run(
        argv,
        cwd=rootdir,
        env=child_env(env, prepend={"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(rootdir)}),
        what=f"{what} `{command}`",
        fix=fix,
        shown=[*shlex.split(command), f"(in {rootdir}, with {', '.join(sorted(env))} set for the worker)"],
    )
    return time.monotonic() - started


def count_tables(postgres: PostgresInfo) -> int:
    """Tables in the worker's database outside the system schemas."""
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
        ).fetchone()
    return int(row[0]) if row else 0


def run_migrations(command: str, postgres: PostgresInfo, *, rootdir: Path, env: Mapping[str, str]) -> float:
    """Run the project's migration command for the worker; refuse a run that created nothing
    in the worker's own database. Returns the seconds the command took."""
    seconds = run_project_command(
        command,
        rootdir=rootdir,
        env=env,
        what="the migration command",
        fix="fix the migration, or the harness_migrate setting",
    )
    if count_tables(postgres) == 0:
        names = ", ".join(sorted(env))
        raise HarnessError(
            f"the migration command ran but created nothing in the worker's database: does it read {names}?",
            checked=f"tables in database {postgres.dbname!r} at {postgres.host}:{postgres.port} "
            f"after `{command}` (run in {rootdir})",
            fix="make the command read one of those variables (for Alembic, have env.py build its URL "
            "from them), or map the variables it does read in [tool.harness.test-env] or harness_env",
        )
    return seconds
