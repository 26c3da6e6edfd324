"""Adoption by a project that is not the demo: each test writes a small project, runs pytest
on it in a subprocess (as its users would), and checks what reached which database."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from filelock import FileLock

from tests.projects import project_env
from tierharness.config import load_settings
from tierharness.engine.client import engine_client
from tierharness.engine.labels import LABEL_RUN, RunIdentity
from tierharness.engine.reaper import containers_of, remove_labelled, spawn_reaper
from tierharness.engine.reuse import LABEL_STATE_DIR, kept_containers, remove_kept
from tierharness.pytest_plugin import HarnessServices
from tierharness.runtime.networking import LABEL_PORT

# Settings read at import time, as real projects do: this is what early provisioning is for.
SETTINGS = """
import os
SERVER = os.environ.get("POSTGRES_SERVER", "localhost")
PORT = int(os.environ.get("POSTGRES_PORT", "5432"))
USER = os.environ.get("POSTGRES_USER", "postgres")
PASSWORD = os.environ.get("POSTGRES_PASSWORD", "")
DB = os.environ.get("POSTGRES_DB", "app")
"""

# Relies on libpq's defaults (PGHOST, PGPORT, ...): what `psql -f schema.sql` would do.
MIGRATE_WITH_LIBPQ_DEFAULTS = """
import psycopg
with psycopg.connect("", autocommit=True) as conn:
    conn.execute("CREATE TABLE IF NOT EXISTS users (id serial PRIMARY KEY, name text UNIQUE NOT NULL)")
    conn.execute("CREATE TABLE IF NOT EXISTS items (id serial PRIMARY KEY, "
                 "owner int REFERENCES users(id), name text NOT NULL)")
"""

MAPPING = """
[tool.harness.test-env]
POSTGRES_SERVER = "{postgres.host}"
POSTGRES_PORT = "{postgres.port}"
POSTGRES_USER = "{postgres.user}"
POSTGRES_PASSWORD = "{postgres.password}"
POSTGRES_DB = "{postgres.dbname}"
"""

CONFTEST = """
import psycopg
import pytest
from filelock import FileLock
import settings  # imported with the conftest: before any fixture runs

def connect():
    return psycopg.connect(host=settings.SERVER, port=settings.PORT, user=settings.USER,
                           password=settings.PASSWORD, dbname=settings.DB, autocommit=True)

@pytest.fixture(scope="session")
def superuser():
    with connect() as conn:
        conn.execute("INSERT INTO users (name) VALUES ('admin') ON CONFLICT DO NOTHING")
    return "admin"
"""

TESTS = """
import os
import pytest
from conftest import connect

@pytest.mark.parametrize("n", range(6))
def test_each_test_starts_from_the_seeded_state(n, superuser, harness_services):
    assert harness_services.postgres.dbname == os.environ["POSTGRES_DB"]
    with connect() as conn:
        assert conn.execute("SELECT name FROM users").fetchall() == [("admin",)]
        assert conn.execute("SELECT count(*) FROM items").fetchone() == (0,)
        uid = conn.execute("SELECT id FROM users WHERE name = 'admin'").fetchone()[0]
        conn.execute("INSERT INTO items (owner, name) VALUES (%s, %s)", (uid, f"item-{n}"))
        conn.execute("INSERT INTO users (name) VALUES (%s)", (f"user-{n}",))
"""


def _pyproject(ini: str, harness: str = MAPPING) -> str:
    return f"[tool.pytest.ini_options]\n{textwrap.dedent(ini)}\n{harness}"


def _project(tmp_path: Path, ini: str, *, migrate: str = MIGRATE_WITH_LIBPQ_DEFAULTS) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    images = load_settings().images
    ini += f'\nharness_postgres_image = "{images["postgres"].local}"\n'
    (root / "pyproject.toml").write_text(_pyproject(ini))
    (root / "settings.py").write_text(SETTINGS)
    (root / "migrate.py").write_text(migrate)
    (root / "conftest.py").write_text(CONFTEST)
    (root / "test_project.py").write_text(TESTS)
    return root


def _run(
    root: Path, *args: str, run_id: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    child = project_env(run_id, env)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--rootdir={root}", *args],
        cwd=root, env=child, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


@pytest.fixture
def run_id() -> Iterator[str]:
    run_id = f"adopt-{uuid.uuid4().hex[:8]}"
    yield run_id
    remove_labelled(engine_client(), {"label": [f"{LABEL_RUN}={run_id}"]})


EARLY = """
harness_provision = "early"
harness_services = "postgres"
harness_migrate = "python migrate.py"
harness_seed_fixture = "superuser"
harness_reset = "snapshot"
harness_autoclean = true
"""


def test_early_provisioning_mapping_and_snapshot_resets(tmp_path: Path, run_id: str) -> None:
    """In one process; under two xdist workers, with a decoy on the default address: below."""
    root = _project(tmp_path, EARLY)
    proc = _run(root, "-n", "0", run_id=run_id)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "6 passed" in proc.stdout
    assert "warning" not in proc.stdout, proc.stdout  # pytest's deprecations of the plugin's fixtures
    assert containers_of(engine_client(), run_id) == []  # removed at the end of the run


def _free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture
def decoy(tmp_path_factory: pytest.TempPathFactory, harness_services: HarnessServices) -> Iterator[str]:
    """A developer's own Postgres on the default address, accepting libpq's default user. It
    carries this run's labels, so the run's reaper removes it if the run is killed."""
    # One decoy at a time across xdist workers: there is only one default port.
    with FileLock(str(tmp_path_factory.getbasetemp().parent / "decoy.lock")):
        yield from _decoy(harness_services.identity)


def _decoy(identity: RunIdentity) -> Iterator[str]:
    if not _free(5432):
        pytest.skip("127.0.0.1:5432 is taken on this machine; the decoy needs it")
    image = load_settings().image("postgres").local
    user = os.environ.get("USER") or "root"
    container = engine_client().containers.run(
        image,
        detach=True,
        remove=False,
        ports={"5432/tcp": ("127.0.0.1", 5432)},
        environment={"POSTGRES_USER": user, "POSTGRES_DB": user, "POSTGRES_HOST_AUTH_METHOD": "trust"},
        labels=identity.labels("decoy"),
        name=identity.name("decoy"),
    )
    url = f"postgresql://{user}@127.0.0.1:5432/{user}"
    try:
        for _ in range(200):
            try:
                with psycopg.connect(url, connect_timeout=1):
                    break
            except psycopg.OperationalError:
                time.sleep(0.05)
        yield url
    finally:
        container.remove(force=True, v=True)


def _decoy_tables(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return [r[0] for r in rows]


def test_a_migration_relying_on_libpq_defaults_reaches_the_worker_not_the_decoy(
    tmp_path: Path, run_id: str, decoy: str
) -> None:
    """The same project as above under two xdist workers: each worker's early provisioning,
    mapping and snapshot resets hold, and the developer's database is untouched."""
    # Migrating in every worker, as the point is where the migration goes, not a migrated image.
    root = _project(tmp_path, EARLY + "harness_migrate_once = false\n")
    proc = _run(root, "-n", "2", run_id=run_id)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "6 passed" in proc.stdout
    assert "started migrated" not in proc.stdout
    assert _decoy_tables(decoy) == []  # the developer's database is untouched
    assert containers_of(engine_client(), run_id) == []  # removed at the end of the run


def test_a_migration_that_creates_nothing_in_the_worker_fails_naming_the_mapped_variables(
    tmp_path: Path, run_id: str, decoy: str
) -> None:
    # Ignores every variable it is given and writes to a fixed address: the decoy.
    hard_coded = MIGRATE_WITH_LIBPQ_DEFAULTS.replace('connect("",', f'connect("{decoy}",')
    root = _project(tmp_path, EARLY, migrate=hard_coded)
    proc = _run(root, "-n", "0", run_id=run_id)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "the migration command ran but created nothing in the worker's database" in output
    assert "PGHOST" in output
    assert "POSTGRES_SERVER" in output
    assert "same error for 6 tests" in output  # shown once, not six times
    assert output.count("harness: same error as") >= 5  # the 5 others say so in one line
    # The full message: in the first error, and in its short-summary line (not cut in CI).
    assert output.count("fix: make the command read one of those variables") <= 2


def test_a_missing_migration_program_is_named(tmp_path: Path, run_id: str) -> None:
    root = _project(tmp_path, EARLY.replace("python migrate.py", "no-such-migrate-tool upgrade head"))
    proc = _run(root, "-n", "0", run_id=run_id)
    assert proc.returncode != 0
    assert "the program 'no-such-migrate-tool' was not found" in proc.stdout


def test_a_mistyped_image_names_the_setting_once(tmp_path: Path, run_id: str) -> None:
    root = _project(tmp_path, EARLY)
    proc = _run(root, "-n", "0", "--harness-postgres-image", "no-such/postgres:typo", run_id=run_id)
    assert proc.returncode != 0
    assert "--harness-postgres-image (ini harness_postgres_image)" in proc.stdout
    assert "same error for 6 tests" in proc.stdout
    assert len(proc.stdout) < 20_000


def test_collect_only_starts_nothing_and_writes_nothing(tmp_path: Path, run_id: str) -> None:
    root = _project(tmp_path, EARLY)
    proc = _run(root, "--collect-only", run_id=run_id)
    assert proc.returncode == 0, proc.stdout
    assert not (root / ".harness").exists()
    assert containers_of(engine_client(), run_id) == []


def test_a_run_that_uses_no_harness_fixture_starts_nothing(tmp_path: Path, run_id: str) -> None:
    root = tmp_path / "plain"
    root.mkdir()
    (root / "test_plain.py").write_text("def test_plain():\n    assert 1 + 1 == 2\n")
    proc = _run(root, run_id=run_id)
    assert proc.returncode == 0, proc.stdout
    assert not (root / ".harness").exists()


def _kept_of(root: Path) -> list[Any]:
    """The kept containers of this project's runs (its state folder's), not another test's."""
    return [c for c in kept_containers(engine_client())
            if c.labels.get(LABEL_STATE_DIR, "").startswith(str(root.resolve()))]  # fmt: skip


def _reaped_with_this_process(root: Path, logs: Path, watched: set[str]) -> None:
    """A reaper watching this process for each run id of what `root`'s runs kept. Kept
    containers outlive their runs by design, and a test killed with SIGKILL runs no `finally`:
    these remove them then, not the idle time later (`nox -s tests` killed left them)."""
    for container in _kept_of(root):
        run = container.labels[LABEL_RUN]
        if run not in watched:
            watched.add(run)
            spawn_reaper(run, os.getpid(), logs / f"{run}.log")


def test_reuse_keeps_the_workers_containers_for_the_next_run_and_clean_removes_them(
    tmp_path: Path, run_id: str, kept_lock: None
) -> None:
    root = _project(tmp_path, EARLY)
    kept: set[str] = set()
    watched: set[str] = set()
    try:
        # Not too short an idle time: on a busy machine the second run may start 10 s after the
        # first one ended.
        idle = {"CI": "", "HARNESS_REUSE_IDLE": "60", "HARNESS_REAPER_GRACE": "20"}
        first = _run(root, "-n", "0", "--harness-reuse", run_id=run_id, env=idle)
        _reaped_with_this_process(root, tmp_path, watched)
        assert first.returncode == 0, first.stdout
        kept = {c.id for c in _kept_of(root)}
        mine = {c.id for c in _kept_of(root) if c.name.endswith("-master-postgres")}
        assert mine, "the first run kept nothing"
        second = _run(root, "-n", "0", "--harness-reuse", run_id=f"{run_id}-2", env=idle)
        assert second.returncode == 0, second.stdout
        assert "reused" in second.stdout  # the run's summary line
        assert mine <= {c.id for c in _kept_of(root)}
        in_ci = _run(root, "-n", "0", "--harness-reuse", run_id=f"{run_id}-3", env={"CI": "true"})
        assert in_ci.returncode == 0, in_ci.stdout
        assert "reused" not in in_ci.stdout
        if all(LABEL_PORT in c.labels for c in _kept_of(root) if c.id in mine):
            # Kept on the host network, asked for on a bridge: fresh containers, published ports.
            bridged = _run(
                root,
                "-n",
                "0",
                "--harness-reuse",
                "--harness-network",
                "bridge",
                run_id=f"{run_id}-4",
                env=idle,
            )
            _reaped_with_this_process(root, tmp_path, watched)
            assert bridged.returncode == 0, bridged.stdout
            assert "reused" not in bridged.stdout
            now = [c for c in _kept_of(root) if c.name.endswith("-master-postgres")]
            kept |= {c.id for c in now}
            assert now
            assert all(LABEL_PORT not in c.labels and c.ports for c in now)
        cleaned = subprocess.run(
            # The migrated images stay: the suite's other workers start from them meanwhile.
            [sys.executable, "-m", "tierharness", "clean", "--keep-migrated"],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
        )
        assert cleaned.returncode == 0, cleaned.stderr
        assert not kept & {c.id for c in _kept_of(root)}
        assert "and 0 migrated image(s)" in cleaned.stdout  # it removed none
    finally:
        for container in _kept_of(root):
            if container.id in kept:
                remove_kept(engine_client(), container.labels.get("harness.reuse-key"))


MIGRATE_WITH_ALEMBIC_TABLE = """
import psycopg
with psycopg.connect("", autocommit=True) as conn:
    conn.execute("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
    conn.execute("INSERT INTO alembic_version VALUES ('0002_items')")
    conn.execute("CREATE TABLE notes (id serial PRIMARY KEY, body text)")
"""

KEEPS_MIGRATION_STATE = """
from conftest import connect

def test_write(harness_clean):
    with connect() as conn:
        conn.execute("INSERT INTO notes (body) VALUES ('x')")

def test_reset_kept_the_migration_state(harness_clean):
    with connect() as conn:
        assert conn.execute("SELECT count(*) FROM notes").fetchone() == (0,)
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("0002_items",)]
"""


def test_a_deletion_reset_keeps_alembic_version_by_default(tmp_path: Path, run_id: str) -> None:
    ini = (
        'harness_provision = "early"\nharness_services = "postgres"\nharness_migrate = "python migrate.py"\n'
    )
    root = _project(tmp_path, ini, migrate=MIGRATE_WITH_ALEMBIC_TABLE)
    (root / "test_project.py").write_text(KEEPS_MIGRATION_STATE)
    (root / "conftest.py").write_text(CONFTEST.split("@pytest.fixture", maxsplit=1)[0])
    proc = _run(root, "-n", "0", "-p", "no:randomly", run_id=run_id)
    assert proc.returncode == 0, proc.stdout
    manifest = (root / ".harness" / "last-run.json").read_text()
    assert '"redis": null' in manifest  # harness_services = postgres: no Redis was started


def test_a_broken_harness_table_is_reported_not_swallowed(tmp_path: Path, run_id: str) -> None:
    root = _project(tmp_path, EARLY)
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + '\n[tool.harness.images.postgres]\nlocall = "x"\n')
    proc = _run(root, "-n", "0", run_id=run_id)
    assert proc.returncode != 0
    assert "unknown key(s) in [tool.harness.images.postgres]: locall" in proc.stdout
