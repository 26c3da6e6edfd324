"""What the harness does to a worker's database: snapshot resets, and the check that a
migration created something. Each test gets a database of its own on the worker's Postgres."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tierharness.errors import HarnessError
from tierharness.pytest_plugin import HarnessServices
from tierharness.runtime.containers import PostgresInfo
from tierharness.runtime.migrations import run_migrations
from tierharness.runtime.reset import StateReset


@pytest.fixture
def scratch_database(harness_services: HarnessServices) -> Iterator[PostgresInfo]:
    """A fresh database on the worker's Postgres: the schemas, tables and types these tests
    create must not show up in the worker's own database (nor in its resets)."""
    server = harness_services.postgres
    name = f"scratch_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield replace(server, dbname=name)
    finally:
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


# What Prisma makes of `model User { id Int @id @default(autoincrement()) }`: a quoted,
# mixed-case table and sequence, here also in a mixed-case schema other than public.
MIXED_CASE = """
CREATE SCHEMA "Tenant";
CREATE TABLE public."User" (id serial PRIMARY KEY, name text NOT NULL);
CREATE TABLE "Tenant"."User" (id serial PRIMARY KEY, name text NOT NULL);
INSERT INTO public."User" (name) VALUES ('seed');
INSERT INTO "Tenant"."User" (name) VALUES ('seed');
"""
USERS = (sql.Identifier("public", "User"), sql.Identifier("Tenant", "User"))


@pytest.mark.parametrize(
    ("strategy", "rows_after", "next_id"),
    [("snapshot", ["seed"], 2), ("deletion", [], 1), ("truncation", [], 1)],
)
def test_resets_handle_mixed_case_tables_sequences_and_schemas(
    scratch_database: PostgresInfo, strategy: str, rows_after: list[str], next_id: int
) -> None:
    with psycopg.connect(scratch_database.url, autocommit=True) as conn:
        conn.execute(MIXED_CASE)
        with StateReset(scratch_database, None, [], strategy) as reset:
            assert reset.stats()["resets"] == 0
            reset.reset()  # "snapshot": the first reset records the seeded state
            for _round in range(2):
                for table in USERS:
                    conn.execute(sql.SQL("INSERT INTO {} (name) VALUES ('test'), ('test')").format(table))
                reset.reset()
                for table in USERS:
                    shown = table.as_string(conn)
                    rows = conn.execute(sql.SQL("SELECT name FROM {} ORDER BY id").format(table)).fetchall()
                    assert [r[0] for r in rows] == rows_after, f"{shown} after a {strategy} reset"
                    # Serial ids are back to where the snapshot (or an empty table) had them.
                    probe = sql.SQL("INSERT INTO {} (name) VALUES ('probe') RETURNING id").format(table)
                    assert conn.execute(probe).fetchone() == (next_id,), f"{shown}'s sequence after a reset"
                    conn.execute(sql.SQL("DELETE FROM {} WHERE name = 'probe'").format(table))


# A migration command as a project has one: it reads DATABASE_URL and runs its DDL there.
MIGRATE_PY = """
import os, pathlib, psycopg
with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
    conn.execute(pathlib.Path("migration.sql").read_text())
"""


@pytest.mark.parametrize(
    "ddl",
    [
        pytest.param(
            "CREATE VIEW answer AS SELECT 42 AS n; CREATE MATERIALIZED VIEW m AS SELECT 1", id="views"
        ),
        pytest.param(
            "CREATE TYPE mood AS ENUM ('ok'); CREATE TYPE pair AS (a int, b int); "
            "CREATE DOMAIN positive AS int CHECK (VALUE > 0)",
            id="types",
        ),
        pytest.param(
            "CREATE FUNCTION one() RETURNS int LANGUAGE sql AS 'SELECT 1'; "
            "CREATE PROCEDURE noop() LANGUAGE sql AS 'SELECT 1'",
            id="functions",
        ),
        pytest.param('CREATE SCHEMA "Tenant"', id="schema"),
        pytest.param("CREATE SEQUENCE ticket", id="sequence"),
    ],
)
def test_a_migration_that_creates_no_table_is_accepted(
    scratch_database: PostgresInfo, tmp_path: Path, ddl: str
) -> None:
    (tmp_path / "migrate.py").write_text(MIGRATE_PY)
    (tmp_path / "migration.sql").write_text(ddl)
    run_migrations(
        "python migrate.py", scratch_database, rootdir=tmp_path, env={"DATABASE_URL": scratch_database.url}
    )


def test_a_migration_that_creates_nothing_is_refused(scratch_database: PostgresInfo, tmp_path: Path) -> None:
    (tmp_path / "migrate.py").write_text(MIGRATE_PY)
    (tmp_path / "migration.sql").write_text("SELECT 1")
    env = {"DATABASE_URL": scratch_database.url}
    with pytest.raises(
        HarnessError, match="created nothing in the worker's database: does it read DATABASE_URL"
    ):
        run_migrations("python migrate.py", scratch_database, rootdir=tmp_path, env=env)
