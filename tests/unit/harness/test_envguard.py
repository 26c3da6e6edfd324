"""The guard before harness_migrate and harness_seed (tierharness.runtime.envguard): what counts
as a database variable, the scan, the error, and the plugin stopping a run with it. No Docker:
the guard stops a run before anything starts, and the runs that pass it use no service."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tierharness.errors import HarnessError, UnsetVariableError
from tierharness.runtime.envguard import (
    EnvRead,
    guard_commands,
    is_database_variable,
    parse_ignore,
    read_dotenv,
    scan_env_reads,
    suggested_template,
    unset_variables,
)
from tierharness.runtime.worker import DEFAULT_ENV

# --------------------------------------------------------------------------- what counts


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("POSTGRES_SERVER", True),
        ("PGHOST", True),
        ("PG_HOST", True),
        ("PGBOUNCER_HOST", True),
        ("DBNAME", True),
        ("DB_POOL_SIZE", True),  # looks like one: the ignore list is for these
        ("CELERY_BROKER_URL", True),
        ("SQLALCHEMY_DATABASE_URI", True),
        ("REDIS_HOST", True),
        ("LOG_LEVEL", False),
        ("SENTRY_DSN", False),
        ("SECRET_KEY", False),
        ("UPGRADE_MODE", False),  # PG inside a word
        ("MONGODB_URI", False),  # DB inside a word: not a service the harness gives
        ("DBUS_SESSION_BUS_ADDRESS", False),
        ("PGID", False),  # a container's group id, not libpq
    ],
)
def test_database_variables_by_name(name: str, expected: bool) -> None:
    assert is_database_variable(name) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("redis://localhost:6379/0", True),
        ("postgresql+psycopg://app@localhost/app", True),
        ("postgres://localhost/app", True),
        ("rediss://cache.example:6380", True),
        ("memory://", False),
        ("https://sentry.example/1", False),
        ("localhost", False),
        (None, False),
    ],
)
def test_any_name_with_a_postgres_or_redis_url_counts(value: str | None, expected: bool) -> None:
    assert is_database_variable("CACHE_LOCATION", value) is expected


@pytest.mark.parametrize(
    ("name", "value", "template"),
    [
        ("POSTGRES_SERVER", None, "{postgres.host}"),
        ("POSTGRES_PORT", None, "{postgres.port}"),
        ("POSTGRES_USER", None, "{postgres.user}"),
        ("POSTGRES_PASSWORD", None, "{postgres.password}"),
        ("POSTGRES_DB", None, "{postgres.dbname}"),
        ("SQLALCHEMY_DATABASE_URI", None, "{postgres.url}"),
        ("PGHOST", None, "{postgres.host}"),
        ("REDIS_HOST", None, "{redis.host}"),
        ("CELERY_BROKER_URL", None, "{redis.url}"),
        ("CACHE_URL", "redis://localhost", "{redis.url}"),
        ("REDIS_DB", None, None),  # a Redis database number: no placeholder holds it
        ("DB_POOL_SIZE", None, None),
    ],
)
def test_the_suggested_template_follows_the_last_word(
    name: str, value: str | None, template: str | None
) -> None:
    assert suggested_template(name, value) == template


# --------------------------------------------------------------------------- the scan


def test_the_scan_keeps_literal_defaults_for_their_scheme_but_never_shows_them(tmp_path: Path) -> None:
    (tmp_path / "settings.py").write_text(
        textwrap.dedent(
            """
            import os
            from pydantic import Field
            from pydantic_settings import BaseSettings

            CACHE = os.environ.get("CACHE_URL", "redis://:hunter2@localhost:6379/0")
            MODE = os.getenv("MODE", default="dev")

            class Settings(BaseSettings):
                broker: str = "redis://localhost"
                store: str = Field(default="postgresql://app:s3cret@localhost/app")
            """
        )
    )
    (tmp_path / "plain.py").write_text("VALUE = 1\n")  # never parsed: no way to read a variable
    reads = {r.name: r for r in scan_env_reads(tmp_path)}
    assert {n: r.default for n, r in reads.items()} == {
        "CACHE_URL": "redis://:hunter2@localhost:6379/0",
        "MODE": "dev",
        "BROKER": "redis://localhost",
        "STORE": "postgresql://app:s3cret@localhost/app",  # pragma: allowlist secret
    }
    assert "hunter2" not in repr(reads["CACHE_URL"])
    assert reads["CACHE_URL"] == EnvRead("CACHE_URL", "settings.py", 6)  # the default is not compared


def test_dotenv_values_with_export_quotes_and_comments(tmp_path: Path) -> None:
    assert read_dotenv(tmp_path) == {}
    (tmp_path / ".env").write_text(
        "# the developer's own\n"
        "export POSTGRES_SERVER=localhost\n"
        "CACHE='redis://localhost:6379/0'\n"
        'NAME="a # not a comment"\n'
        "PORT=5432 # a comment\n"
        "not a line\n"
    )
    assert read_dotenv(tmp_path) == {
        "POSTGRES_SERVER": "localhost",
        "CACHE": "redis://localhost:6379/0",
        "NAME": "a # not a comment",
        "PORT": "5432",
    }


# --------------------------------------------------------------------------- coverage


def _read(name: str, where: str = "app/settings.py:3", default: str | None = None) -> EnvRead:
    path, line = where.split(":")
    return EnvRead(name, path, int(line), default)


def test_unset_database_variables_name_every_place_and_skip_the_ignored() -> None:
    reads = [
        _read("POSTGRES_SERVER", "app/settings.py:13"),
        _read("POSTGRES_SERVER", "app/db.py:4"),
        _read("DB_POOL_SIZE", "app/db.py:9"),
        _read("DATABASE_URL", "app/settings.py:20"),  # a default of the mapping
        _read("LOG_LEVEL", "app/settings.py:22"),
        _read("CACHE", "app/cache.py:2"),  # a database by its .env value
    ]
    unset = unset_variables(reads, set(DEFAULT_ENV), ignore={"DB_POOL_SIZE"}, dotenv={"CACHE": "redis://x"})
    assert [(u.name, u.where, u.template) for u in unset] == [
        ("CACHE", "app/cache.py:2", "{redis.url}"),
        ("POSTGRES_SERVER", "app/db.py:4 (and 1 more)", "{postgres.host}"),
    ]
    assert unset_variables(reads, {*DEFAULT_ENV, "POSTGRES_SERVER", "CACHE"}, ignore={"DB_POOL_SIZE"}) == []


@pytest.mark.parametrize(
    ("raw", "names"),
    [
        (None, set()),
        ("", set()),
        ("DB_POOL_SIZE REDIS_KEY_PREFIX", {"DB_POOL_SIZE", "REDIS_KEY_PREFIX"}),
        ("DB_POOL_SIZE,REDIS_KEY_PREFIX", {"DB_POOL_SIZE", "REDIS_KEY_PREFIX"}),
        (
            "\nDB_POOL_SIZE  # pool tuning, not an address\nPG_STATEMENT_TIMEOUT\n",
            {"DB_POOL_SIZE", "PG_STATEMENT_TIMEOUT"},
        ),
        (["DB_POOL_SIZE", "PG_STATEMENT_TIMEOUT"], {"DB_POOL_SIZE", "PG_STATEMENT_TIMEOUT"}),
    ],
)
def test_the_ignore_list_takes_spaces_commas_lines_and_lists(
    raw: str | list[str] | None, names: set[str]
) -> None:
    assert parse_ignore(raw, source="pyproject.toml") == names


def test_an_ignore_entry_that_is_not_a_variable_name_is_refused() -> None:
    with pytest.raises(HarnessError) as caught:
        parse_ignore("DB_POOL_SIZE {postgres.host}", source="/p/pyproject.toml")
    assert "'{postgres.host}', which is not a variable name" in caught.value.what
    assert caught.value.checked == "--harness-env-ignore / ini harness_env_ignore in /p/pyproject.toml"
    assert caught.value.fix is not None
    assert "harness_env_ignore = " in caught.value.fix


# --------------------------------------------------------------------------- the guard

FASTAPI_CONFIG = """\
import os

POSTGRES_SERVER = os.environ.get("POSTGRES_SERVER", "localhost")
POSTGRES_PORT = int(os.environ.get("POSTGRES_PORT", "5432"))
POSTGRES_PASSWORD = os.environ.get("POSTGRES_PASSWORD", "")
LOG_LEVEL = os.environ.get("LOG_LEVEL", "info")
"""


def _fastapi_project(root: Path) -> Path:
    (root / "app" / "core").mkdir(parents=True)
    (root / "app" / "core" / "config.py").write_text(FASTAPI_CONFIG)
    dotenv = "POSTGRES_SERVER=localhost\nPOSTGRES_PASSWORD=devpass-not-shown\n"  # pragma: allowlist secret
    (root / ".env").write_text(dotenv)
    return root


def test_the_guard_names_each_variable_its_place_and_the_fix(tmp_path: Path) -> None:
    root = _fastapi_project(tmp_path)
    commands = {"harness_migrate": "alembic upgrade head"}
    with pytest.raises(UnsetVariableError) as caught:
        guard_commands(root, set(DEFAULT_ENV), commands=commands)
    error = caught.value
    assert error.what.startswith(
        "the project reads database variables that the harness does not set: "
        "POSTGRES_PASSWORD (read at app/core/config.py:5), POSTGRES_PORT (read at app/core/config.py:4), "
        "POSTGRES_SERVER (read at app/core/config.py:3). Not started: harness_migrate `alembic upgrade head`"
    )
    assert "LOG_LEVEL" not in error.what
    assert error.checked is not None
    assert str(root) in error.checked
    assert "PGHOST" in error.checked
    assert error.fix is not None
    assert 'POSTGRES_SERVER = "{postgres.host}"' in error.fix
    assert 'POSTGRES_PORT = "{postgres.port}"' in error.fix
    assert "[tool.harness.test-env]" in error.fix
    assert "harness_env_ignore" in error.fix
    assert "devpass-not-shown" not in str(error)  # the .env's values are never shown


def test_the_guard_passes_a_mapped_or_ignored_project_and_one_without_commands(tmp_path: Path) -> None:
    root = _fastapi_project(tmp_path)
    mapped = {*DEFAULT_ENV, "POSTGRES_SERVER", "POSTGRES_PORT"}
    guard_commands(root, mapped, commands={"harness_seed": "python seed.py"}, ignore={"POSTGRES_PASSWORD"})
    guard_commands(root, set(DEFAULT_ENV), commands={})  # nothing would run: nothing to guard


# --------------------------------------------------------------------------- the plugin

PYPROJECT = """\
[tool.pytest.ini_options]
harness_migrate = "python -c 'raise SystemExit(3)'"
{extra}
"""


def _plugin_args() -> list[str]:
    """The plugin comes through its entry point where the harness is installed; the image's
    test stage has only the source on PYTHONPATH, so there it is named."""
    installed = {ep.value for ep in importlib.metadata.entry_points(group="pytest11")}
    return [] if "tierharness.pytest_plugin" in installed else ["-p", "tierharness.pytest_plugin"]


def _pytest(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_XDIST_WORKER", "HARNESS_CONTROLLER")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *_plugin_args(), f"--rootdir={root}",
         *args],
        cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.fixture
def plugin_project(tmp_path: Path) -> Path:
    """A project that reads POSTGRES_SERVER and sets harness_migrate, with one test that uses no
    harness fixture: when the guard lets the run through, nothing starts and the test passes."""
    root = _fastapi_project(tmp_path / "project")
    (root / "test_plain.py").write_text("def test_plain():\n    assert True\n")
    return root


def _configure(root: Path, extra: str = "") -> None:
    (root / "pyproject.toml").write_text(PYPROJECT.format(extra=extra))


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["one-process", "xdist"])
def test_the_plugin_stops_the_run_before_anything_starts(plugin_project: Path, xdist: list[str]) -> None:
    _configure(plugin_project)
    proc = _pytest(plugin_project, *xdist)
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout + proc.stderr
    assert "POSTGRES_SERVER (read at app/core/config.py:3)" in proc.stderr
    assert "Not started: harness_migrate" in proc.stderr
    assert "fix: map each in [tool.harness.test-env]" in proc.stderr
    assert proc.stderr.count("the project reads database variables") == 1  # once, by the controller
    assert "passed" not in proc.stdout
    assert not (plugin_project / ".harness").exists()


@pytest.mark.parametrize(
    ("extra", "args"),
    [
        ('harness_env_ignore = "POSTGRES_SERVER POSTGRES_PORT POSTGRES_PASSWORD"', []),
        ('harness_env_ignore = ["POSTGRES_SERVER", "POSTGRES_PORT", "POSTGRES_PASSWORD"]', []),
        ("", ["--harness-env-ignore", "POSTGRES_SERVER,POSTGRES_PORT,POSTGRES_PASSWORD"]),
        (
            '[tool.harness.test-env]\nPOSTGRES_SERVER = "{postgres.host}"\n'
            'POSTGRES_PORT = "{postgres.port}"\nPOSTGRES_PASSWORD = "{postgres.password}"',
            [],
        ),
    ],
    ids=["ini-string", "toml-list", "command-line", "mapped"],
)
def test_ignored_or_mapped_variables_let_the_run_through(
    plugin_project: Path, extra: str, args: list[str]
) -> None:
    _configure(plugin_project, extra)
    proc = _pytest(plugin_project, "-W", "error", *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout


def test_a_bad_ignore_entry_stops_the_run_naming_the_option(plugin_project: Path) -> None:
    _configure(plugin_project, 'harness_env_ignore = "POSTGRES_SERVER=x"')
    proc = _pytest(plugin_project)
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout + proc.stderr
    assert "harness_env_ignore lists 'POSTGRES_SERVER=x', which is not a variable name" in proc.stderr
    assert f"ini harness_env_ignore in {plugin_project / 'pyproject.toml'}" in proc.stderr


def test_collect_only_is_not_stopped(plugin_project: Path) -> None:
    _configure(plugin_project)
    proc = _pytest(plugin_project, "--collect-only")
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(("services", "stopped"), [("postgres,redis", False), ("postgres", True)])
def test_redis_url_is_set_by_the_harness_only_when_it_starts_redis(
    plugin_project: Path, services: str, stopped: bool
) -> None:
    """The guard's mapping is the worker's own (WorkerPlan.templates), made before any image
    is resolved: REDIS_URL is in it exactly when harness_services starts Redis."""
    (plugin_project / "app" / "core" / "config.py").write_text('import os\nCACHE = os.environ["REDIS_URL"]\n')
    _configure(plugin_project, f'harness_services = "{services}"')
    proc = _pytest(plugin_project)
    if stopped:
        assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout + proc.stderr
        assert "REDIS_URL (read at app/core/config.py:2)" in proc.stderr
        assert 'REDIS_URL = "{redis.url}"' in proc.stderr
    else:
        assert proc.returncode == 0, proc.stdout + proc.stderr
