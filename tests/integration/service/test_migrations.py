"""Migrations under an advisory lock: concurrent start-up applies each exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from services.api_gateway.migrations import LOCK_ID, available
from tierharness.pytest_plugin import HarnessServices


@pytest.fixture
def fresh_database(harness_services: HarnessServices) -> Iterator[str]:
    """An empty database in this worker's server, dropped afterwards."""
    pg = harness_services.postgres
    name = f"fresh_{os.getpid()}_{time.monotonic_ns()}"
    with psycopg.connect(pg.url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield pg.url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(pg.url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def _migrate_process(url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "services.api_gateway", "migrate"],
        env={**os.environ, "DATABASE_URL": url},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_concurrent_startups_apply_each_migration_exactly_once(fresh_database: str) -> None:
    procs = [_migrate_process(fresh_database) for _ in range(4)]
    outputs = [p.communicate(timeout=60)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outputs
    applied_counts = sorted(int(o.split("applied ")[1].split()[0]) for o in outputs)
    # Exactly one replica did the work; the others found it done.
    assert applied_counts == [0, 0, 0, len(available())]
    with psycopg.connect(fresh_database) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]
    assert versions == [v for v, _ in available()]


def test_migration_waits_for_the_advisory_lock(fresh_database: str) -> None:
    with psycopg.connect(fresh_database, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (LOCK_ID,))
        proc = _migrate_process(fresh_database)
        time.sleep(1.5)
        assert proc.poll() is None, "migrate ran although another replica held the lock"
        exists = holder.execute("SELECT to_regclass('public.articles') IS NOT NULL").fetchone()
        assert exists == (False,)
        holder.execute("SELECT pg_advisory_unlock(%s)", (LOCK_ID,))
        output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    assert f"applied {len(available())} migration(s)" in output
