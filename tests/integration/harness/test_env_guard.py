"""The guard runs before the damage: a FastAPI-shaped project whose settings read POSTGRES_* and
fall back to its own .env (localhost:5432, the developer's Postgres), with `alembic upgrade
head` as harness_migrate and the POSTGRES_* variables left out of [tool.harness.test-env].

The developer's Postgres is a real one (a decoy from the harness's own postgres image on
127.0.0.1:5432, or a free port written into the project's .env when 5432 is taken). The run
must stop before Alembic starts, naming the variables and where they are read, and the decoy
must end the run without a new table. Without the guard, Alembic migrates the decoy."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from docker.errors import APIError
from filelock import FileLock

from tests.integration.harness.test_adoption import _free, _run
from tierharness.config import load_settings
from tierharness.engine.client import engine_client
from tierharness.engine.labels import LABEL_RUN, RunIdentity
from tierharness.engine.reaper import containers_of, remove_labelled
from tierharness.engine.run_ids import new_run_id
from tierharness.runtime.networking import free_loopback_port

# app/core/config.py: the environment first, then the project's .env (as pydantic-settings'
# env_file and python-dotenv's load_dotenv do), then the code's defaults.
CONFIG = '''\
"""Settings, read at import time."""

import os
from pathlib import Path


def _dotenv() -> dict[str, str]:
    path = Path(__file__).resolve().parents[2] / ".env"
    values = {}
    for line in path.read_text().splitlines() if path.is_file() else []:
        name, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            values[name.strip()] = value.strip()
    return values


for _name, _value in _dotenv().items():
    os.environ.setdefault(_name, _value)  # what the environment sets wins

PROJECT_NAME = os.environ.get("PROJECT_NAME", "app")
LOG_LEVEL = os.environ.get("LOG_LEVEL", "info")
POSTGRES_SERVER = os.environ.get("POSTGRES_SERVER", "localhost")
POSTGRES_PORT = int(os.environ.get("POSTGRES_PORT", "5432"))
POSTGRES_USER = os.environ.get("POSTGRES_USER", "postgres")
POSTGRES_PASSWORD = os.environ.get("POSTGRES_PASSWORD", "")
POSTGRES_DB = os.environ.get("POSTGRES_DB", "app")
SQLALCHEMY_DATABASE_URI = (
    f"postgresql+psycopg://{POSTGRES_USER}:{POSTGRES_PASSWORD}@{POSTGRES_SERVER}:{POSTGRES_PORT}/{POSTGRES_DB}"
)
'''

ALEMBIC_INI = """\
[alembic]
script_location = %(here)s/app/alembic
prepend_sys_path = %(here)s
path_separator = os
"""

ALEMBIC_ENV = """\
from alembic import context
from sqlalchemy import create_engine, pool

from app.core import config

engine = create_engine(config.SQLALCHEMY_DATABASE_URI, poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()
"""

REVISION = """\
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("item", sa.Column("id", sa.Integer(), primary_key=True), sa.Column("title", sa.String()))


def downgrade() -> None:
    op.drop_table("item")
"""

TESTS = """\
from sqlalchemy import create_engine, text

from app.core import config


def test_the_migrated_table_is_in_the_workers_database(harness_services):
    assert config.POSTGRES_PORT == harness_services.postgres.port
    with create_engine(config.SQLALCHEMY_DATABASE_URI).connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM item")).scalar() == 0
"""

MAPPING = """
[tool.harness.test-env]
POSTGRES_SERVER = "{postgres.host}"
POSTGRES_PORT = "{postgres.port}"
POSTGRES_USER = "{postgres.user}"
POSTGRES_PASSWORD = "{postgres.password}"
POSTGRES_DB = "{postgres.dbname}"
"""

VARIABLES = ("POSTGRES_SERVER", "POSTGRES_PORT", "POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB")


@dataclass(frozen=True)
class Decoy:
    """The developer's own Postgres, where the project's .env points."""

    port: int
    user: str
    password: str
    dbname: str

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.dbname}"

    def tables(self) -> list[str]:
        with psycopg.connect(self.url, connect_timeout=5) as conn:
            rows = conn.execute(
                "SELECT schemaname || '.' || tablename FROM pg_tables "
                "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
            ).fetchall()
        return [r[0] for r in rows]


@pytest.fixture
def run_id() -> Iterator[str]:
    run_id = f"guard-{uuid.uuid4().hex[:8]}"
    yield run_id
    remove_labelled(engine_client(), {"label": [f"{LABEL_RUN}={run_id}"]})


@pytest.fixture
def decoy(tmp_path_factory: pytest.TempPathFactory, harness_reaper: None) -> Iterator[Decoy]:
    """On 127.0.0.1:5432 when it is free (the realistic case), else on a free port that the
    project's .env then names. Labelled with a run this process owns: if the run is killed, a
    reaper's sweep removes it."""
    # The same lock as test_adoption's decoy: while one holds 5432, the other waits instead of
    # skipping (its decoy) or moving to another port (this one).
    with FileLock(str(tmp_path_factory.getbasetemp().parent / "decoy.lock")):
        identity = RunIdentity(new_run_id("decoy-"), "decoy", os.getpid())
        found = Decoy(0, "app", secrets.token_hex(8), "app")
        image = load_settings().image("postgres").local
        container = None
        for port in ([5432] if _free(5432) else []) + [free_loopback_port()]:
            with contextlib.suppress(APIError):  # taken between the check and the bind
                container = engine_client().containers.run(
                    image,
                    detach=True,
                    ports={"5432/tcp": ("127.0.0.1", port)},
                    environment={
                        "POSTGRES_USER": found.user,
                        "POSTGRES_PASSWORD": found.password,
                        "POSTGRES_DB": found.dbname,
                    },
                    labels=identity.labels("decoy"),
                    name=identity.name("decoy"),
                )
                found = Decoy(port, found.user, found.password, found.dbname)
                break
            remove_labelled(engine_client(), {"label": [f"{LABEL_RUN}={identity.run_id}"]})
        assert container is not None, "the decoy could not bind 127.0.0.1:5432 or a free port"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    found.tables()
                    break
                except psycopg.OperationalError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            yield found
        finally:
            container.remove(force=True, v=True)


def _project(root: Path, decoy: Decoy, *, mapping: str = "") -> Path:
    images = load_settings().images
    files = {
        # [tool.pytest.ini_options] alone, no [tool.harness]: the plugin needs none.
        "pyproject.toml": textwrap.dedent(
            f"""\
            [tool.pytest.ini_options]
            testpaths = ["tests"]
            harness_provision = "early"
            harness_services = "postgres"
            harness_migrate = "alembic upgrade head"
            harness_postgres_image = "{images["postgres"].local}"
            """
        )
        + mapping,
        ".env": (
            f"PROJECT_NAME=app\nPOSTGRES_SERVER=localhost\nPOSTGRES_PORT={decoy.port}\n"
            f"POSTGRES_USER={decoy.user}\nPOSTGRES_PASSWORD={decoy.password}\nPOSTGRES_DB={decoy.dbname}\n"
        ),
        "alembic.ini": ALEMBIC_INI,
        "app/__init__.py": "",
        "app/core/__init__.py": "",
        "app/core/config.py": CONFIG,
        "app/alembic/env.py": ALEMBIC_ENV,
        "app/alembic/versions/0001_item.py": REVISION,
        "tests/__init__.py": "",
        "tests/test_items.py": TESTS,
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def _line_of(variable: str) -> int:
    """Where CONFIG reads `variable`."""
    return next(n for n, line in enumerate(CONFIG.splitlines(), 1) if f'os.environ.get("{variable}"' in line)


def test_unmapped_postgres_variables_stop_the_run_before_alembic_touches_the_developers_database(
    tmp_path: Path, run_id: str, decoy: Decoy
) -> None:
    root = _project(tmp_path / "project", decoy)
    assert decoy.tables() == []
    proc = _run(root, "-n", "2", run_id=run_id)
    output = proc.stdout + proc.stderr
    # First what matters: without the guard, Alembic created alembic_version and item here.
    assert decoy.tables() == [], f"the developer's database was migrated:\n{output}"
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, output
    for variable in VARIABLES:
        assert f"{variable} (read at app/core/config.py:{_line_of(variable)})" in proc.stderr, output
    assert "LOG_LEVEL" not in proc.stderr.split("checked:")[0]  # not a database variable
    assert "Not started: harness_migrate `alembic upgrade head`" in proc.stderr
    assert 'POSTGRES_SERVER = "{postgres.host}"' in proc.stderr  # the fix: what to map it to
    assert "harness_env_ignore" in proc.stderr
    assert decoy.password not in output  # the .env's password is read, never shown
    assert containers_of(engine_client(), run_id) == []  # no worker was started
    assert not (root / ".harness").exists()

    # doctor, in the same project (no [tool.harness] table), reports the same finding.
    env = {k: v for k, v in os.environ.items() if k != "HARNESS_PROJECT_ROOT"}
    doctor = subprocess.run(
        [sys.executable, "-m", "tierharness", "doctor"],
        cwd=root / "app", env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert doctor.returncode == 1, doctor.stdout + doctor.stderr
    line = f"read at app/core/config.py:{_line_of('POSTGRES_SERVER')} but not set by the harness"
    assert any(
        row.startswith("FAIL") and "test env POSTGRES_SERVER" in row and line in row
        for row in doctor.stdout.splitlines()
    ), doctor.stdout


def test_with_the_variables_mapped_alembic_migrates_the_worker_and_not_the_developer(
    tmp_path: Path, run_id: str, decoy: Decoy
) -> None:
    root = _project(tmp_path / "project", decoy, mapping=MAPPING)
    proc = _run(root, "-n", "0", run_id=run_id)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout
    assert decoy.tables() == []
    assert containers_of(engine_client(), run_id) == []  # removed at the end of the run
