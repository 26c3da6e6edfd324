"""Post-mortem databases: with --harness-keep-failed, a failed test's database and Redis are
copied before the next reset into labelled, kept containers; the report prints how to
connect, without a password; `connect` reaches the copy; the run's bound holds; nothing is
kept without the flag, nor in CI from the ini alone; `clean` removes the copies."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from tierharness.config import load_settings
from tierharness.engine.client import engine_client
from tierharness.engine.reuse import kept_containers, remove_kept
from tierharness.runtime.postmortem import LABEL_KEPT_FAILED

TESTS = """
import os

import psycopg
import redis


def _write(name):
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("INSERT INTO items (name) VALUES (%s)", (name,))
    redis.Redis.from_url(os.environ["REDIS_URL"]).set("last", name)


def test_fails_after_writing(harness_clean):
    _write("a")
    _write("b")
    assert False, "deliberately"


def test_passes(harness_clean):
    _write("c")


def test_fails_too(harness_clean):
    _write("z")
    assert False, "deliberately, beyond the bound"
"""
FAILING = "test_project.py::test_fails_after_writing"
MIGRATE = """
import psycopg
with psycopg.connect(autocommit=True) as conn:
    conn.execute("CREATE TABLE items (id serial PRIMARY KEY, name text)")
"""


def _project(root: Path, ini: str = "") -> Path:
    root.mkdir()
    image = load_settings().images["postgres"].local
    (root / "pyproject.toml").write_text(
        '[project]\nname = "kept"\nversion = "0"\n\n[tool.pytest.ini_options]\n'
        f'harness_postgres_image = "{image}"\nharness_migrate = "python migrate.py"\n{ini}'
    )
    (root / "migrate.py").write_text(MIGRATE)
    (root / "test_project.py").write_text(TESTS)
    return root


def _run(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    child = {**os.environ, "HARNESS_RUN_ID": f"kept-{uuid.uuid4().hex[:8]}", **(env or {})}
    for name in ("PYTEST_XDIST_WORKER", "HARNESS_CONTROLLER", "COV_CORE_SOURCE", "PGHOST", "PGPORT", "PGUSER",
                 "PGPASSWORD", "PGDATABASE", "DATABASE_URL", "REDIS_URL"):  # fmt: skip
        child.pop(name, None)
    return subprocess.run(
        [sys.executable, *args], cwd=root, env=child, capture_output=True, text=True, timeout=300, check=False
    )


def _kept(root: Path) -> list[str]:
    """The ids of kept copies made for this project's tests (its folder's name is unique)."""
    return [c.id for c in kept_containers(engine_client()) if LABEL_KEPT_FAILED in c.labels
            and c.labels.get("harness.state-dir", "").startswith(str(root))]  # fmt: skip


def test_a_failed_tests_rows_are_kept_connectable_bounded_and_cleaned(
    tmp_path: Path, kept_lock: None
) -> None:
    root = _project(tmp_path / "project", "harness_keep_failed_max = 1\n")
    try:
        run = _run(root, "-m", "pytest", "-p", "no:cacheprovider", "-n", "2", "--harness-keep-failed",
                   env={"CI": ""})  # fmt: skip
        assert run.returncode == 1, run.stdout + run.stderr
        assert "harness: kept for a post-mortem" in run.stdout
        assert f"python -m tierharness connect '{FAILING}'" in run.stdout
        assert "harness: kept 1 failed test(s) for a post-mortem" in run.stdout
        assert "1 not kept" in run.stdout
        assert "its bound" in run.stdout
        assert len(_kept(root)) == 2  # one failure's Postgres and Redis: the bound kept the other out

        rows = _run(
            root, "-m", "tierharness", "connect", FAILING, "--", "-tAc", "SELECT name FROM items ORDER BY 1"
        )
        assert rows.returncode == 0, rows.stderr
        assert rows.stdout.split() == ["a", "b"]
        last = _run(root, "-m", "tierharness", "connect", "test_fails_after", "--redis", "--", "GET", "last")
        assert last.returncode == 0, last.stderr
        assert last.stdout.strip() == "b"
        urls = _run(root, "-m", "tierharness", "connect", FAILING, "--url").stdout.splitlines()[1:]
        passwords = [url.split("@")[0].rsplit(":", 1)[1] for url in urls]
        assert len(passwords) == 2
        assert all(passwords)
        assert not [p for p in passwords if p in run.stdout + run.stderr], "a password reached the report"

        cleaned = _run(root, "-m", "tierharness", "clean", "--keep-migrated")
        assert cleaned.returncode == 0, cleaned.stderr
        assert _kept(root) == []
        gone = _run(root, "-m", "tierharness", "connect", FAILING)
        assert gone.returncode != 0
        assert "no kept failed test(s) match" in gone.stderr
    finally:
        for container in kept_containers(engine_client()):
            if container.id in _kept(root):
                remove_kept(engine_client(), container.labels.get("harness.reuse-key"))


def test_nothing_is_kept_without_the_flag_nor_in_ci_from_the_ini(tmp_path: Path, kept_lock: None) -> None:
    plain = _project(tmp_path / "plain")
    run = _run(plain, "-m", "pytest", "-p", "no:cacheprovider", "-n", "0", env={"CI": ""})
    assert run.returncode == 1, run.stdout
    assert "post-mortem" not in run.stdout
    assert _kept(plain) == []

    in_ci = _project(tmp_path / "ci", "harness_keep_failed = true\n")
    run = _run(in_ci, "-m", "pytest", "-p", "no:cacheprovider", "-n", "0", env={"CI": "true"})
    assert run.returncode == 1, run.stdout
    assert "harness: not kept for a post-mortem" in run.stdout
    assert "CI is set" in run.stdout
    assert _kept(in_ci) == []
