"""`harness doctor`: each check from made-up facts, and the table it prints."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tierharness import doctor
from tierharness.__main__ import main
from tierharness.config import LogicalImage, Settings
from tierharness.doctor import (
    BUILD_CACHE_WARN_ABOVE,
    GIB,
    Check,
    EngineFacts,
    EnvRead,
    IniOptions,
    build_cache_check,
    build_history_check,
    buildx_check,
    disk_check,
    engine_checks,
    env_coverage_checks,
    env_mapping,
    exit_code,
    image_checks,
    is_database_variable,
    leftover_checks,
    migrate_check,
    network_check,
    read_ini_options,
    render,
    scan_env_reads,
)
from tierharness.engine.labels import OwnerPlace
from tierharness.errors import HarnessError
from tierharness.imaging.resolution import LocalOrigin

# --------------------------------------------------------------------------- scanning


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


SETTINGS_PY = '''"""Reads os.environ["IN_A_DOCSTRING"], which is not code."""
import os
from os import environ, getenv

HOST = os.environ["POSTGRES_HOST"]
URL = os.environ.get("DATABASE_URL", "sqlite://")
CACHE = os.getenv("REDIS_URL")
USER = environ["PGUSER"]
NAME = getenv("APP_DB")
os.environ["WRITTEN_NOT_READ"] = "x"
DEBUG = os.environ.get("DEBUG")
'''

PYDANTIC_PY = """from typing import ClassVar
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
import pydantic_settings


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="app_")
    db_host: str
    port: int = 5432
    dsn: str = Field("x", alias="SQLALCHEMY_DSN")
    _private: int = 0
    registry: ClassVar[dict[str, str]] = {}


class MoreSettings(Settings):
    pool_size: int = 5


class Legacy(pydantic_settings.BaseSettings):
    redis_url: str

    class Config:
        env_prefix = "OLD_"


class NotSettings:
    database_url: str
"""


def test_scan_finds_every_way_of_reading_a_variable_with_file_and_line(tmp_path: Path) -> None:
    _write(tmp_path, "pyproject.toml", "[tool.harness]\n")
    _write(tmp_path, "app/settings.py", SETTINGS_PY)
    _write(tmp_path, "app/config.py", PYDANTIC_PY)
    _write(tmp_path, "app/broken.py", 'os.environ["BROKEN_DB"\n')
    # Not the project's code: virtualenvs (by name or by pyvenv.cfg), outputs, caches,
    # tests' temporary trees, and another project nested inside this one.
    skipped = 'import os\nos.environ["SKIPPED_DB"]\n'
    for rel in (
        ".venv/lib/x.py",
        ".nox/s/x.py",
        "build/x.py",
        "node_modules/x.py",
        "pytest-of-root/pytest-0/x.py",
        "myenv/lib/x.py",
        "examples/other/app.py",
    ):
        _write(tmp_path, rel, skipped)
    _write(tmp_path, "myenv/pyvenv.cfg", "home = /usr/bin\n")
    _write(tmp_path, "examples/other/pyproject.toml", "[project]\nname = 'other'\n")

    found = [(r.name, r.where) for r in scan_env_reads(tmp_path)]

    assert found == [
        ("APP_DB_HOST", "app/config.py:9"),
        ("APP_PORT", "app/config.py:10"),
        ("SQLALCHEMY_DSN", "app/config.py:11"),
        ("APP_POOL_SIZE", "app/config.py:17"),
        ("OLD_REDIS_URL", "app/config.py:21"),
        ("POSTGRES_HOST", "app/settings.py:5"),
        ("DATABASE_URL", "app/settings.py:6"),
        ("REDIS_URL", "app/settings.py:7"),
        ("PGUSER", "app/settings.py:8"),
        ("APP_DB", "app/settings.py:9"),
        ("DEBUG", "app/settings.py:11"),
    ]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("PGHOST", True),
        ("POSTGRES_SERVER", True),
        ("DATABASE_URL_FILE", True),
        ("DB_POOL_MIN", True),
        ("APP_DB", True),
        ("REDIS_PREFIX", True),
        ("SQLALCHEMY_URL", True),
        ("APP_PG_DSN", True),
        ("UPGRADE_MODE", False),  # "PG" inside a word is not Postgres
        ("DEBUG", False),
        ("PORT", False),
    ],
)
def test_database_variables_are_told_by_name(name: str, expected: bool) -> None:
    assert is_database_variable(name) is expected


# --------------------------------------------------------------------------- mapping coverage


def _ini(**values: str | list[str]) -> IniOptions:
    return IniOptions(Path("/p/pyproject.toml"), values)


def test_the_mapping_is_the_defaults_the_test_env_table_and_harness_env_lines() -> None:
    defaults = {"PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "DATABASE_URL"}
    assert env_mapping(_ini(), []) == {*defaults, "REDIS_URL"}
    assert env_mapping(_ini(harness_services="postgres"), []) == defaults
    ini = _ini(
        harness_services="postgres, redis",
        harness_env="\nAPP_DB_URL={postgres.url}\n# a comment\n  CACHE_URL = {redis.url}\n",
    )
    assert env_mapping(ini, ["POSTGRES_SERVER"]) == {
        *defaults,
        "REDIS_URL",
        "POSTGRES_SERVER",
        "APP_DB_URL",
        "CACHE_URL",
    }
    # A TOML list in [tool.pytest.ini_options] works as well as ini continuation lines.
    assert "APP_DB_URL" in env_mapping(_ini(harness_env=["APP_DB_URL={postgres.url}"]), [])


def _read(name: str, where: str = "app/settings.py:3") -> EnvRead:
    path, line = where.split(":")
    return EnvRead(name, path, int(line))


def test_coverage_is_checked_when_provisioning_early_or_before_a_project_command() -> None:
    (check,) = env_coverage_checks(_ini(), [], [_read("POSTGRES_SERVER")])
    assert check.status == "PASS"
    assert "no harness_migrate or harness_seed, and harness_provision is not `early`" in check.detail
    # The plugin's guard stops the run before these commands over the same finding: a FAIL.
    for command in ("harness_migrate", "harness_seed"):
        (check,) = env_coverage_checks(
            _ini(**{command: "alembic upgrade head"}), [], [_read("POSTGRES_SERVER")]
        )
        assert (check.name, check.status) == ("test env POSTGRES_SERVER", "FAIL")
        assert check.detail.endswith(f"not set by the harness: the run stops before {command}")
    (early,) = env_coverage_checks(_ini(harness_provision="early"), [], [_read("POSTGRES_SERVER")])
    assert early.status == "WARN"


def test_the_ignore_list_covers_a_variable_and_a_bad_one_fails() -> None:
    reads = [_read("DB_POOL_SIZE"), _read("DATABASE_URL")]
    ini = _ini(harness_migrate="alembic upgrade head", harness_env_ignore="DB_POOL_SIZE")
    (check,) = env_coverage_checks(ini, [], reads)
    assert (check.status, check.detail) == (
        "PASS",
        "DATABASE_URL: all set by the harness; harness_env_ignore: DB_POOL_SIZE",
    )
    (bad,) = env_coverage_checks(_ini(harness_migrate="m", harness_env_ignore="DB-POOL"), [], reads)
    assert (bad.status, bad.detail) == (
        "FAIL",
        "harness_env_ignore lists 'DB-POOL', which is not a variable name",
    )


def test_a_dotenv_url_makes_any_name_a_database_variable() -> None:
    ini = _ini(harness_migrate="alembic upgrade head")
    (check,) = env_coverage_checks(ini, [], [_read("CACHE")], {"CACHE": "redis://localhost:6379/0"})
    assert (check.name, check.status) == ("test env CACHE", "FAIL")
    assert check.fix is not None
    assert 'CACHE = "{redis.url}"' in check.fix


def test_an_unmapped_database_variable_is_a_warning_naming_where_it_is_read_and_the_fix() -> None:
    reads = [
        _read("POSTGRES_SERVER", "app/settings.py:13"),
        _read("POSTGRES_SERVER", "app/db.py:4"),
        _read("POSTGRES_USER", "app/settings.py:15"),
        _read("DATABASE_URL", "app/settings.py:20"),  # a default: covered
        _read("SECRET_KEY", "app/settings.py:22"),  # not a database variable: ignored
    ]
    ini = _ini(harness_provision="early", harness_services="postgres")
    checks = env_coverage_checks(ini, ["POSTGRES_USER"], reads)
    assert [(c.name, c.status) for c in checks] == [("test env POSTGRES_SERVER", "WARN")]
    assert checks[0].detail == "read at app/db.py:4 (and 1 more) but not set by the harness"
    assert checks[0].fix is not None
    assert 'map it in [tool.harness.test-env] in pyproject.toml: POSTGRES_SERVER = "{postgres.host}"' in (
        checks[0].fix
    )


def test_redis_variables_need_redis_or_a_mapping() -> None:
    reads = [_read("REDIS_URL")]
    assert env_coverage_checks(_ini(harness_provision="early"), [], reads)[0].status == "PASS"
    only_pg = _ini(harness_provision="early", harness_services="postgres")
    assert env_coverage_checks(only_pg, [], reads)[0].name == "test env REDIS_URL"


def test_a_secrets_file_variant_is_covered_only_beside_its_plain_variable() -> None:
    early = _ini(harness_provision="early")
    both = [_read("DATABASE_URL"), _read("DATABASE_URL_FILE")]
    (check,) = env_coverage_checks(early, [], both)
    assert check.status == "PASS"
    assert check.detail == "DATABASE_URL, DATABASE_URL_FILE: all set by the harness"
    # Read alone, the _FILE variable is all the project looks at: the harness does not set it.
    (alone,) = env_coverage_checks(early, [], [_read("DATABASE_URL_FILE")])
    assert alone.status == "WARN"


# --------------------------------------------------------------------------- ini options


def test_ini_options_come_from_the_file_pytest_would_pick(tmp_path: Path) -> None:
    assert read_ini_options(tmp_path) == IniOptions(None, {})
    (tmp_path / "setup.cfg").write_text("[tool:pytest]\nharness_migrate = from-setup-cfg\n")
    assert read_ini_options(tmp_path).get("harness_migrate") == "from-setup-cfg"
    (tmp_path / "tox.ini").write_text("[pytest]\nharness_env =\n    A_DB=1\n    B_DB=2\n")
    assert read_ini_options(tmp_path).lines("harness_env") == ["A_DB=1", "B_DB=2"]
    (tmp_path / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\nharness_migrate = "alembic upgrade head"\nharness_autoclean = true\n'
    )
    options = read_ini_options(tmp_path)
    assert options.source == tmp_path / "pyproject.toml"
    assert options.get("harness_migrate") == "alembic upgrade head"
    assert options.get("harness_autoclean") == "True"
    # pytest.ini wins, even without a [pytest] section.
    (tmp_path / "pytest.ini").write_text("[other]\nx = 1\n")
    assert read_ini_options(tmp_path) == IniOptions(tmp_path / "pytest.ini", {})


# --------------------------------------------------------------------------- the migration command


def _executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_a_missing_bare_alembic_fails_naming_the_command_and_the_fix(tmp_path: Path) -> None:
    venv_python = str(tmp_path / "venv" / "bin" / "python")
    check = migrate_check(
        "alembic upgrade head",
        root=tmp_path,
        executable=venv_python,
        search_path=str(tmp_path / "empty"),
        source="pyproject.toml",
    )
    assert check.status == "FAIL"
    assert "'alembic upgrade head'" in check.detail
    assert "'alembic' not found" in check.detail
    assert str(tmp_path / "venv" / "bin") in check.detail
    assert check.fix is not None
    assert "harness_migrate in pyproject.toml" in check.fix


def test_the_migration_program_is_looked_up_in_the_venv_first_then_path(tmp_path: Path) -> None:
    venv_alembic = _executable(tmp_path / "venv" / "bin" / "alembic")
    path_alembic = _executable(tmp_path / "usr" / "bin" / "alembic")
    _executable(tmp_path / "usr" / "bin" / "yoyo")
    venv_python = str(tmp_path / "venv" / "bin" / "python")
    search_path = str(tmp_path / "usr" / "bin")
    first = migrate_check(
        "alembic upgrade head", root=tmp_path, executable=venv_python, search_path=search_path
    )
    assert first.status == "PASS"
    assert str(venv_alembic) in first.detail
    assert str(path_alembic) not in first.detail
    on_path = migrate_check("yoyo apply", root=tmp_path, executable=venv_python, search_path=search_path)
    assert on_path.status == "PASS"


def test_python_is_the_test_interpreter_and_paths_are_relative_to_the_root(tmp_path: Path) -> None:
    python = migrate_check(
        "python3 -m app migrate", root=tmp_path, executable="/venv/bin/python", search_path=""
    )
    assert python.status == "PASS"
    assert "/venv/bin/python" in python.detail
    _executable(tmp_path / "scripts" / "migrate.sh")
    assert (
        migrate_check("scripts/migrate.sh", root=tmp_path, executable="/x", search_path="").status == "PASS"
    )
    assert migrate_check("scripts/nope.sh", root=tmp_path, executable="/x", search_path="").status == "FAIL"


def test_an_unset_or_unsplittable_migration_command(tmp_path: Path) -> None:
    assert migrate_check(None, root=tmp_path, executable="/x", search_path="").status == "PASS"
    broken = migrate_check("alembic 'upgrade", root=tmp_path, executable="/x", search_path="")
    assert broken.status == "FAIL"
    assert "cannot split" in broken.detail


# --------------------------------------------------------------------------- engine, images, disk, leftovers


def test_an_unreachable_engine_fails_naming_docker_host_or_the_provisioning_script() -> None:
    (wrong_host,) = engine_checks(EngineFacts("tcp://nowhere:2375", "tcp://nowhere:2375", error="refused"))
    assert wrong_host.status == "FAIL"
    assert wrong_host.fix is not None
    assert "DOCKER_HOST=tcp://nowhere:2375" in wrong_host.fix
    assert "bash scripts/provision-docker.sh" in wrong_host.fix
    (stopped,) = engine_checks(EngineFacts("unix:///var/run/docker.sock", None, error="no such file"))
    assert stopped.fix is not None
    assert "bash scripts/provision-docker.sh" in stopped.fix
    assert "DOCKER_HOST=" not in stopped.fix


def test_an_engine_refused_for_its_tls_files_shows_the_harness_fix() -> None:
    fix = "point DOCKER_CERT_PATH at a folder holding the engine's ca.pem ..."
    (refused,) = engine_checks(EngineFacts("tcp://far:2376", "tcp://far:2376", error="TLS files", fix=fix))
    assert refused.status == "FAIL"
    assert refused.fix == fix


def test_engine_version_and_image_store() -> None:
    store = [["driver-type", "io.containerd.snapshotter.v1"]]
    good = engine_checks(EngineFacts("unix:///s", None, version="26.1.5+dfsg1", driver_status=store))
    assert [(c.name, c.status) for c in good] == [
        ("engine", "PASS"),
        ("engine version", "PASS"),
        ("image store", "PASS"),
    ]
    old = engine_checks(EngineFacts("unix:///s", None, version="24.0.7", driver_status=[["Backing", "ext4"]]))
    assert [c.status for c in old] == ["PASS", "FAIL", "FAIL"]
    assert "containerd-snapshotter" in str(old[2].fix)


@pytest.mark.parametrize(
    ("output", "status"),
    [
        ("github.com/docker/buildx v0.13.1 788433953af1\n", "PASS"),
        ("github.com/docker/buildx 0.13.1+ds1 0.13.1+ds1-3\n", "PASS"),
        ("github.com/docker/buildx v0.19.0 abc\n", "PASS"),
        ("github.com/docker/buildx v0.12.1 abc\n", "FAIL"),
        ("something else", "WARN"),
        (None, "FAIL"),
    ],
)
def test_buildx_version(output: str | None, status: str) -> None:
    assert buildx_check(output, "docker: 'buildx' is not a docker command").status == status


def _image(name: str, ref: str | None = None, *, allow_floating: bool = False) -> LogicalImage:
    return LogicalImage(
        name, ref or f"{name}:1", f"harness/{name}:1", Path("r"), "dockerfile", allow_floating=allow_floating
    )


def test_images_present_with_digest_or_missing_with_the_fix() -> None:
    digests = {"harness/base:1": "sha256:abc"}
    checks = image_checks([_image("base"), _image("redis")], digests.get)
    assert checks[0] == Check("image base", "PASS", "harness/base:1 sha256:abc")
    assert (checks[1].status, checks[1].fix) == ("WARN", "nox -s images")
    assert "would build it from its recipe" in checks[1].detail


def test_an_image_pulled_from_a_floating_tag_is_reported_with_what_happens_next() -> None:
    digest = "sha256:" + "ee" * 32
    digests = {"harness/db:1": digest}
    pulled = {"harness/db:1": LocalOrigin(None, (f"db@{digest}",))}

    def origin(tag: str) -> LocalOrigin:
        return pulled.get(tag, LocalOrigin())

    (untrusted,) = image_checks([_image("db")], digests.get, origin)
    assert untrusted.status == "WARN"
    assert f"was pulled from db:1 (as db@{digest})" in untrusted.detail
    assert "the next run replaces it with its recipe" in untrusted.detail

    (opted_in,) = image_checks([_image("db", allow_floating=True)], digests.get, origin)
    assert opted_in.status == "WARN"
    assert "db:1 is a floating tag pulled under allow-floating = true" in opted_in.detail
    assert opted_in.fix is not None
    assert f'ref = "db:1@{digest}"' in opted_in.fix

    (pinned,) = image_checks([_image("db", f"db:1@{digest}")], digests.get, origin)
    assert pinned == Check("image db", "PASS", f"harness/db:1 {digest}")
    (elsewhere,) = image_checks([_image("db", "db:1@sha256:" + "ab" * 32)], digests.get, origin)
    assert elsewhere.status == "WARN"
    assert "the next run replaces it with the pinned image" in elsewhere.detail


@pytest.mark.parametrize(
    ("free", "status"), [(50 * GIB, "PASS"), (9 * GIB, "WARN"), (GIB, "FAIL"), (None, "WARN")]
)
def test_disk_space_thresholds(free: int | None, status: str) -> None:
    assert disk_check("/var/lib/docker", free, "not local").status == status


def test_low_disk_space_advises_the_harness_own_prune_not_the_engines() -> None:
    low = disk_check("/var/lib/docker", GIB, "")
    assert low.status == "FAIL"
    assert low.fix is not None
    # The engine's own prune removes other users' stopped containers and images too.
    assert "python -m tierharness clean --prune" in low.fix
    assert "system prune" not in low.fix


def test_a_build_cache_above_the_limit_warns_with_the_clean_command() -> None:
    calm = build_cache_check(BUILD_CACHE_WARN_ABOVE, 10, 3600)
    assert (calm.status, calm.detail) == (
        "PASS",
        f"{BUILD_CACHE_WARN_ABOVE} record(s), 10 unused for over 3600 s (HARNESS_BUILD_CACHE_IDLE)",
    )
    heavy = build_cache_check(BUILD_CACHE_WARN_ABOVE + 1, 900, 3600)
    assert heavy.status == "WARN"
    assert "900 unused for over 3600 s" in heavy.detail
    assert heavy.fix is not None
    assert "python -m tierharness clean --prune" in heavy.fix


@pytest.mark.parametrize(
    ("mode", "refusal", "status", "said"),
    [
        ("auto", None, "PASS", "host network"),
        ("auto", "the engine is rootless", "PASS", "on 127.0.0.1, not the host network: the engine is"),
        ("bridge", None, "PASS", "published on 127.0.0.1"),
        ("host", None, "PASS", "host network"),
        ("host", "the engine is rootless", "FAIL", "harness_network = host, but the engine is rootless"),
        ("overlay", None, "FAIL", "'overlay' is unknown"),
    ],
)
def test_the_services_network_says_how_tests_reach_the_servers(
    mode: str, refusal: str | None, status: str, said: str
) -> None:
    check = network_check(mode, refusal)
    assert check.status == status
    assert said in check.detail
    assert (check.fix is not None) == (status == "FAIL")


def test_leftovers_are_grouped_by_run_and_judged_by_their_owner() -> None:
    def labels(run: str, pid: str = "", host: str = "here", ns: str = "pid:[1]") -> dict[str, str]:
        found = {"harness.run-id": run, "harness.host": host, "harness.pid-start": "7"}
        owner = {"harness.pid": pid, "harness.boot-id": "b1", "harness.pid-ns": ns}
        return {**found, **owner} if pid else found

    resources = [
        ("container", labels("live", "100")),
        ("container", labels("live", "100")),
        ("container", labels("dead", "200")),
        ("network", labels("dead", "200")),
        ("network", {"harness.run-id": "dead"}),
        ("container", labels("elsewhere", "300", host="other")),
        ("container", labels("other-ns", "400", ns="pid:[2]")),  # a CI job's own pid namespace
        ("container", {"harness.run-id": "older", "harness.host": "here", "harness.pid": "500"}),
        ("volume", labels("orphan")),
        ("container", {"harness.run-id": "reuse-k1", "harness.host": "here", "harness.reuse-key": "k1"}),
        ("container", {**labels("reuse-k2"), "harness.reuse-key": "k2", "harness.reuse-owner": "99999"}),
    ]
    asked: list[tuple[int, str | None]] = []

    def alive(pid: int, start: str | None) -> bool:
        asked.append((pid, start))
        return pid == 100

    here = OwnerPlace("here", "b1", "pid:[1]")
    checks = {c.name: c for c in leftover_checks(resources, here=here, alive=alive)}
    assert checks["run live"].status == "PASS"
    assert checks["run live"].detail == "2 containers; in use by live pid 100"
    assert checks["run dead"].status == "WARN"
    assert checks["run dead"].detail == "1 container, 2 networks; owner pid 200 is gone: left over"
    assert checks["run dead"].fix == "python -m tierharness clean"
    assert checks["run elsewhere"].status == "PASS"
    # Pids of another pid namespace, or labelled without one, mean nothing here either.
    assert checks["run other-ns"].status == "PASS"
    assert "another pid namespace (pid:[2]): not judged here" in checks["run other-ns"].detail
    assert checks["run older"].status == "PASS"
    assert "without boot id and pid namespace: not judged here" in checks["run older"].detail
    assert checks["run orphan"].status == "WARN"
    assert "docker ps -a --filter label=harness.run-id=orphan" in str(checks["run orphan"].fix)
    assert checks["run reuse-k1"].status == "PASS"  # kept on purpose for the next run
    assert "--harness-reuse" in checks["run reuse-k1"].detail
    every_users = "(`python -m tierharness clean --all-users` removes them)"
    assert checks["run reuse-k1"].detail.endswith(f"by an unknown user {every_users}")  # no owner label
    assert checks["run reuse-k2"].detail.endswith(f"by uid 99999 {every_users}")
    assert sorted(asked) == [(100, "7"), (200, "7")]
    assert [c.status for c in leftover_checks([], here=here)] == ["PASS"]


# --------------------------------------------------------------------------- the table and the command


def test_render_aligns_rows_and_puts_the_fix_under_anything_not_pass() -> None:
    checks = [
        Check("engine", "PASS", "answers", fix="never shown"),
        Check("image postgres", "WARN", "missing", fix="nox -s images"),
        Check("migrate command", "FAIL", "'alembic' not found", fix="install it"),
    ]
    assert render(checks).splitlines() == [
        "STATUS  CHECK            DETAIL",
        "PASS    engine           answers",
        "WARN    image postgres   missing",
        "                         fix: nox -s images",
        "FAIL    migrate command  'alembic' not found",
        "                         fix: install it",
        "doctor: 1 PASS, 1 WARN, 1 FAIL",
    ]
    assert exit_code(checks) == 1
    assert exit_code(checks[:2]) == 0


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HARNESS_PROJECT_ROOT", str(tmp_path))
    (tmp_path / "pyproject.toml").write_text("[tool.harness]\n")
    return tmp_path


def test_the_command_prints_the_table_and_exits_1_on_a_failure(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[Path] = []

    def fake(settings: Settings) -> list[Check]:
        seen.append(settings.root)
        return [Check("engine", "FAIL", "no answer", fix="start it")]

    monkeypatch.setattr(doctor, "diagnose", fake)
    assert main(["doctor"]) == 1
    assert seen == [project]
    out = capsys.readouterr().out
    assert "FAIL    engine  no answer" in out
    assert "fix: start it" in out


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("pyproject.toml", '[tool.pytest.ini_options]\nharness_migrate = "alembic upgrade head"\n'),
        ("pytest.ini", "[pytest]\nharness_migrate = alembic upgrade head\n"),
        ("setup.cfg", "[tool:pytest]\nharness_migrate = alembic upgrade head\n"),
    ],
)
def test_a_project_configured_for_pytest_alone_is_checked_from_any_of_its_folders(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
    text: str,
) -> None:
    """The plugin runs such a project on its defaults; doctor used to stop with "no project
    configuration found" until an empty [tool.harness] table was added."""
    monkeypatch.delenv("HARNESS_PROJECT_ROOT", raising=False)
    (tmp_path / name).write_text(text)
    (tmp_path / "app" / "core").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "app" / "core")
    seen: list[Settings] = []

    def fake(settings: Settings) -> list[Check]:
        seen.append(settings)
        return [Check("engine", "PASS", "answers")]

    monkeypatch.setattr(doctor, "diagnose", fake)
    assert main(["doctor"]) == 0, capsys.readouterr().err
    assert [s.root for s in seen] == [tmp_path]
    assert seen[0].test_env == {}  # the defaults: no [tool.harness] table to read


def test_the_nearest_project_wins_and_none_is_an_error_naming_what_was_looked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HARNESS_PROJECT_ROOT", raising=False)
    (tmp_path / "pyproject.toml").write_text("[tool.harness]\n")
    inner = tmp_path / "services" / "api"
    inner.mkdir(parents=True)
    (inner / "pytest.ini").write_text("[pytest]\n")
    assert doctor.project_root(inner) == inner
    assert doctor.project_root(tmp_path / "services") == tmp_path
    root = Path("/")
    if any(
        (root / n).exists() for n in ("pyproject.toml", "pytest.ini", ".pytest.ini", "tox.ini", "setup.cfg")
    ):
        pytest.skip("this machine's / holds a configuration file")
    with pytest.raises(HarnessError) as caught:
        doctor.project_root(root)
    assert caught.value.what == "no project configuration found"
    assert caught.value.checked is not None
    assert "[tool.pytest.ini_options] in pyproject.toml" in caught.value.checked


def test_a_broken_configuration_exits_2(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "pyproject.toml").write_text("[tool.harness\n")
    assert main(["doctor"]) == 2
    assert "fix the TOML syntax" in capsys.readouterr().err


def test_an_engine_configuration_without_a_build_history_bound_warns_with_the_provisioning_fix() -> None:
    bounded = build_history_check("/etc/docker/daemon.json", {"maxAge": "1h", "maxEntries": 50})
    assert (bounded.status, bounded.detail) == (
        "PASS",
        'bounded in /etc/docker/daemon.json: builder.history = {"maxAge": "1h", "maxEntries": 50}',
    )
    unbounded = build_history_check("/etc/docker/daemon.json", None)
    assert unbounded.status == "WARN"
    assert "sets no builder.history" in unbounded.detail
    assert unbounded.fix is not None
    assert "bash scripts/provision-docker.sh" in unbounded.fix
    unread = build_history_check("/etc/docker/daemon.json", None, "Expecting value: line 1 column 1")
    assert (unread.status, unread.detail) == (
        "WARN",
        "/etc/docker/daemon.json not read: Expecting value: line 1 column 1",
    )
