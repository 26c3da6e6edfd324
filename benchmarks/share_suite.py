"""The suite that benchmarks/parallel_share.py measures, written into a temporary project.

Each test connects to Postgres and Redis through DATABASE_URL and REDIS_URL, writes 5 rows and
increments a counter 3 times; the variants differ in the fixture each test requests (or none,
with `-p no:harness`), or are trivial tests. The project's conftest collects each phase's
duration from the reports, and with SHARE_PROFILE set runs every pytest process under cProfile.
"""

from __future__ import annotations

from pathlib import Path

from tierharness.config import load_settings

MIGRATE = """
import os
import psycopg
with psycopg.connect(os.environ.get("DATABASE_URL", ""), autocommit=True) as conn:
    conn.execute("CREATE TABLE IF NOT EXISTS items (id serial PRIMARY KEY, name text NOT NULL)")
"""

# The same body for the database variants; only a reset makes the exact counts hold.
DB_TESTS = """
import os
import psycopg
import pytest
import redis

CLEAN = {clean}


@pytest.mark.parametrize("n", range({tests}))
def test_writes(n{fixture}):
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        with conn.cursor() as cur:
            values = [(f"item-{{n}}-{{i}}",) for i in range(5)]
            cur.executemany("INSERT INTO items (name) VALUES (%s)", values)
        rows = conn.execute("SELECT count(*) FROM items").fetchone()[0]
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    try:
        count = [client.incr("counter") for _ in range(3)][-1]
    finally:
        client.close()
    if CLEAN:
        assert (rows, count) == (5, 3)
    else:
        assert rows >= 5 and count >= 3
"""

# Each phase's duration as the controller gets the reports (xdist brings the workers' back);
# with SHARE_PROFILE set, every pytest process of the run under cProfile.
CONFTEST = """
import cProfile
import json
import os

DURATIONS = {phase: [] for phase in ("setup", "call", "teardown")}
PROFILE = os.environ.get("SHARE_PROFILE")
_profiler = cProfile.Profile() if PROFILE else None
if _profiler is not None:
    _profiler.enable()


def pytest_runtest_logreport(report):
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        DURATIONS[report.when].append(report.duration)


def pytest_unconfigure(config):
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        with open("durations.json", "w", encoding="utf-8") as f:
            json.dump(DURATIONS, f)
    if _profiler is not None:
        _profiler.disable()
        name = os.environ.get("PYTEST_XDIST_WORKER", "controller")
        _profiler.dump_stats(f"{PROFILE}-{name}.pstats")
"""


def make_project(where: Path, variant: str, tests: int) -> None:
    images = load_settings().images
    ini = (
        "[tool.pytest.ini_options]\n"
        'addopts = "-q"\n'
        f'harness_postgres_image = "{images["postgres"].local}"\n'
        f'harness_redis_image = "{images["redis"].local}"\n'
        'harness_migrate = "python migrate.py"\n'
        "harness_migrate_once = false\n"
    )
    where.mkdir(parents=True)
    (where / "pyproject.toml").write_text(
        f'[project]\nname = "share"\nversion = "0"\n\n{ini}', encoding="utf-8"
    )
    (where / "conftest.py").write_text(CONFTEST, encoding="utf-8")
    (where / "migrate.py").write_text(MIGRATE, encoding="utf-8")
    if variant == "trivial":
        body = "".join(f"def test_{i}():\n    assert {i} == {i}\n\n\n" for i in range(tests))
    else:
        fixture = {"clean": ", harness_clean", "services": ", harness_services", "raw": ""}[variant]
        body = DB_TESTS.format(clean=variant == "clean", tests=tests, fixture=fixture)
    (where / "test_suite.py").write_text(body, encoding="utf-8")
