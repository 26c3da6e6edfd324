"""What the harness does to a worker's database: snapshot resets, and the check that a
migration created something. Each test gets a database of its own on the worker's Postgres."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
import redis
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


@pytest.fixture
def scratch_reset(harness_services: HarnessServices, scratch_database: PostgresInfo) -> Iterator[StateReset]:
    """A reset of a scratch database with one table, and of the worker's Redis."""
    with psycopg.connect(scratch_database.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL)")
    assert harness_services.redis is not None  # this project's workers get Redis too
    with StateReset(scratch_database, harness_services.redis, []) as reset:
        yield reset


def _other_redis(reset: StateReset) -> redis.Redis:
    info = reset.redis.connection_pool.connection_kwargs  # type: ignore[union-attr]
    return redis.Redis(host=info["host"], port=info["port"], password=info["password"])


def test_resets_flush_redis_and_leave_its_connection_in_step(scratch_reset: StateReset) -> None:
    """FLUSHDB's reply is read after the Postgres reset: every later reply answers its own command."""
    client = scratch_reset.redis
    assert client is not None
    for n in range(3):
        client.set("left-over", f"v{n}")
        client.incr("counter")
        scratch_reset.reset()
        assert client.dbsize() == 0
        assert client.set("after", "x") is True
        assert client.get("after") == b"x"
    scratch_reset.empty()
    assert client.dbsize() == 0


def test_a_reset_whose_postgres_part_fails_still_flushes_redis(
    scratch_database: PostgresInfo, scratch_reset: StateReset
) -> None:
    client = scratch_reset.redis
    assert client is not None
    client.set("left-over", "1")
    with psycopg.connect(scratch_database.url, autocommit=True) as conn:
        conn.execute("DROP TABLE items")  # the reset's DELETE now fails
    with pytest.raises(psycopg.errors.UndefinedTable):
        scratch_reset.reset()
    assert client.dbsize() == 0
    assert client.get("left-over") is None


def test_a_reset_whose_redis_connection_was_dropped_flushes_over_a_new_one(scratch_reset: StateReset) -> None:
    client = scratch_reset.redis
    assert client is not None
    other = _other_redis(scratch_reset)
    try:
        killed = other.client_kill_filter(_id=client.client_id())
        assert killed == 1
        other.set("left-over", "1")
        scratch_reset.reset()
        assert other.dbsize() == 0
        assert client.get("left-over") is None
    finally:
        other.close()
