"""The project's own commands against a worker's database: migrations, and an optional seed.

They run in the rootdir, with the rootdir on PYTHONPATH and the test environment's `bin`
first on PATH (so `alembic` finds the venv's alembic), and with the worker's environment
mapping: libpq's PG* variables, DATABASE_URL and whatever the project mapped. A command
that ignores all of them and writes to another database must not pass as a success: after
migrating, the worker's database has to hold something it did not hold before (a table, a
view, a type, a function, ... `database_objects`), or the run stops and says which
variables the command was given.
"""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import psycopg
from psycopg import sql

from tierharness.config import child_env
from tierharness.errors import HarnessError
from tierharness.process import run
from tierharness.runtime.containers import PostgresInfo

__all__ = ["database_objects", "run_migrations", "run_project_command"]


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


# Outside the system schemas: pg_catalog, information_schema, pg_toast and the temporary ones.
_USER_SCHEMA = sql.SQL("n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'")
# Every kind of object a migration may create, one name per object: tables (also partitioned
# and foreign), views, materialized views, sequences, indexes; enums, domains, ranges and
# composite types; functions, procedures and aggregates; schemas; extensions.
_OBJECTS = sql.SQL("""
SELECT 'relation ' || c.oid::regclass FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm', 'S', 'i', 'I') AND {user}
UNION ALL
SELECT 'type ' || t.oid::regtype FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 LEFT JOIN pg_class c ON c.oid = t.typrelid
 WHERE (t.typtype IN ('e', 'd', 'r', 'm') OR c.relkind = 'c') AND {user}
UNION ALL
SELECT 'routine ' || p.oid::regprocedure FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE {user}
UNION ALL
SELECT 'schema ' || quote_ident(n.nspname) FROM pg_namespace n WHERE {user}
UNION ALL
SELECT 'extension ' || quote_ident(extname) FROM pg_extension
""").format(user=_USER_SCHEMA)


def database_objects(postgres: PostgresInfo) -> set[str]:
    """What the worker's database holds outside the system schemas ("relation public.users",
    "type mood", "routine f(integer)", ...)."""
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        return {str(row[0]) for row in conn.execute(_OBJECTS).fetchall()}


def run_migrations(command: str, postgres: PostgresInfo, *, rootdir: Path, env: Mapping[str, str]) -> float:
    """Run the project's migration command for the worker; refuse a run that created nothing
    in the worker's own database. Returns the seconds the command took."""
    # A fresh database already holds some (public, plpgsql): judge by what the command added.
    before = database_objects(postgres)
    seconds = run_project_command(
        command,
        rootdir=rootdir,
        env=env,
        what="the migration command",
        fix="fix the migration, or the harness_migrate setting",
    )
    if not database_objects(postgres) - before:
        names = ", ".join(sorted(env))
        raise HarnessError(
            f"the migration command ran but created nothing in the worker's database: does it read {names}?",
            checked=f"tables, views, sequences, types, functions, schemas and extensions in database "
            f"{postgres.dbname!r} at {postgres.host}:{postgres.port} before and after `{command}` "
            f"(run in {rootdir})",
            fix="make the command read one of those variables (for Alembic, have env.py build its URL "
            "from them), or map the variables it does read in [tool.harness.test-env] or harness_env",
        )
    return seconds
