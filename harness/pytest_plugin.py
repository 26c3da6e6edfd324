"""The pytest plugin: each xdist worker (or a run without xdist) gets its own Postgres and
Redis containers, migrated once, reset before every test that asks for them.

Registered through the `pytest11` entry point. Fixtures are built by factories
(`services_fixture`, `clean_fixture`, `stack_fixture`); the default ones are created at
the bottom. Every setting is both a command-line option and an ini key (see README).
Nothing is started, and no reaper runs, until a test asks for a harness fixture.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pytest

from harness.config import environment
from harness.errors import HarnessError
from harness.runtime.labels import RunIdentity, new_run_id

if TYPE_CHECKING:
    from harness.config import Settings
    from harness.runtime.containers import PostgresInfo, RedisInfo
    from harness.runtime.reset import StateReset
    from harness.runtime.stack import Stack

__all__ = ["HarnessServices", "clean_fixture", "services_fixture", "stack_fixture"]

Scope = Literal["session", "package", "module", "class", "function"]

_RUN_ID = pytest.StashKey[str]()
_OWNER_PID = pytest.StashKey[int]()
_STARTED = pytest.StashKey[str]()
_SUMMARY = pytest.StashKey[str]()

# (name, help, default); each is --harness-<name> and ini harness_<name>.
_SETTINGS: list[tuple[str, str, str | None]] = [
    ("postgres-image", "image for the per-worker Postgres (default: the `postgres` logical image)", None),
    ("redis-image", "image for the per-worker Redis (default: the `redis` logical image)", None),
    ("migrate", "command applying the project's migrations; DATABASE_URL is set for it", None),
    ("keep-tables", "comma-separated tables a reset leaves alone", "schema_migrations"),
    ("reset", "how a test's database is emptied: deletion (fast for small data) or truncation", "deletion"),
    ("state-dir", "where run manifests are written", ".harness"),
    ("image", "image the stack fixture runs (default: the one recorded in build/image.json)", None),
    ("reaper", "start the reaper that removes this run's containers if the run is killed (1/0)", "1"),
]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "per-worker Postgres and Redis containers")
    for name, help_text, default in _SETTINGS:
        key = name.replace("-", "_")
        group.addoption(f"--harness-{name}", dest=f"harness_{key}", default=None, help=help_text)
        parser.addini(f"harness_{key}", help_text, default=default)


def _setting(config: pytest.Config, name: str) -> str | None:
    """A setting: the command-line option, else the ini key, else its default."""
    key = f"harness_{name.replace('-', '_')}"
    value = config.getoption(key)
    if value is None:
        value = config.getini(key)
    return str(value) if value not in (None, "") else None


def _worker_id(config: pytest.Config) -> str:
    """The xdist way: `workerinput["workerid"]` in a worker, "master" without xdist."""
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    return str(workerinput["workerid"]) if workerinput else "master"


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    if _is_worker(config):
        workerinput: dict[str, Any] = config.workerinput  # type: ignore[attr-defined]
        config.stash[_RUN_ID] = workerinput["harness_run_id"]
        config.stash[_OWNER_PID] = int(workerinput["harness_owner_pid"])
        return
    config.stash[_RUN_ID] = environment().run_id or new_run_id()
    config.stash[_OWNER_PID] = os.getpid()
    config.stash[_STARTED] = datetime.now(UTC).isoformat(timespec="seconds")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller: hand each worker the run's identity."""
    node.workerinput["harness_run_id"] = node.config.stash[_RUN_ID]
    node.workerinput["harness_owner_pid"] = node.config.stash[_OWNER_PID]


def _state_dir(config: pytest.Config) -> Path:
    explicit = config.getoption("harness_state_dir") or environment().state_dir
    return Path(config.rootpath) / (explicit or _setting(config, "state-dir") or ".harness")


def _identity(config: pytest.Config) -> RunIdentity:
    return RunIdentity(config.stash[_RUN_ID], _worker_id(config), config.stash[_OWNER_PID])


def _ensure_reaper(config: pytest.Config) -> None:
    """Start the run's reaper once, the first time anything is started: whichever process
    gets here first (a worker, or the controller without xdist) starts it for the run's
    controller. A marker file created exclusively makes "once" hold across workers."""
    if _setting(config, "reaper") != "1":
        return
    from harness.runtime.reaper import spawn_reaper

    run_id = config.stash[_RUN_ID]
    state_dir = _state_dir(config)
    marker = state_dir / "runs" / run_id / ".reaper"
    marker.parent.mkdir(parents=True, exist_ok=True)
    try:
        marker.touch(exist_ok=False)
    except FileExistsError:
        return
    spawn_reaper(run_id, config.stash[_OWNER_PID], state_dir / "reaper.log")


def _settings(config: pytest.Config) -> Settings:
    from harness.config import load_settings

    return load_settings(Path(config.rootpath))


@dataclass
class HarnessServices:
    """What a worker got: its Postgres and Redis, and how to reset them."""

    identity: RunIdentity
    postgres: PostgresInfo
    redis: RedisInfo
    reset: StateReset = field(repr=False)

    def env(self) -> dict[str, str]:
        return {"DATABASE_URL": self.postgres.url, "REDIS_URL": self.redis.url}


def services_fixture(
    *,
    postgres_image: str | None = None,
    redis_image: str | None = None,
    migrate: str | None = None,
    scope: Scope = "session",
) -> Callable[[pytest.FixtureRequest], Iterator[HarnessServices]]:
    """A fixture factory: Postgres + Redis for this worker, started at once, migrated once."""

    @pytest.fixture(scope=scope)
    def _services(request: pytest.FixtureRequest) -> Iterator[HarnessServices]:
        import time

        from harness.engine import engine_client
        from harness.runtime import containers, manifest
        from harness.runtime.migrations import run_migrations
        from harness.runtime.reaper import sweep_dead_runs
        from harness.runtime.reset import StateReset

        config = request.config
        identity = _identity(config)
        pg_image = postgres_image or _setting(config, "postgres-image") or _logical(config, "postgres")
        rd_image = redis_image or _setting(config, "redis-image") or _logical(config, "redis")
        _ensure_reaper(config)
        sweep_dead_runs(engine_client())  # leftovers of runs that died with their reaper

        started = time.monotonic()
        (pg_container, pg), (rd_container, rd) = containers.start_services(pg_image, rd_image, identity)
        try:
            migrate_cmd = migrate or _setting(config, "migrate")
            migrate_seconds = run_migrations(migrate_cmd, pg) if migrate_cmd else 0.0
            keep = [t.strip() for t in (_setting(config, "keep-tables") or "").split(",") if t.strip()]
            with StateReset(pg, rd, keep, _setting(config, "reset") or "deletion") as reset:
                record: dict[str, Any] = {
                    "worker": identity.worker,
                    "postgres": {**pg.as_dict(), "image": pg_image},
                    "redis": {**rd.as_dict(), "image": rd_image},
                    "migrate_seconds": round(migrate_seconds, 3),
                    "provision_seconds": round(time.monotonic() - started, 3),
                }
                state_dir = _state_dir(config)
                manifest.write_worker(state_dir, identity.run_id, identity.worker, record)
                try:
                    yield HarnessServices(identity, pg, rd, reset)
                finally:
                    record["isolation"] = reset.stats()
                    manifest.write_worker(state_dir, identity.run_id, identity.worker, record)
        finally:
            containers.stop(pg_container)
            containers.stop(rd_container)

    return _services


def clean_fixture(
    services_name: str = "harness_services",
) -> Callable[[pytest.FixtureRequest], HarnessServices]:
    """A fixture factory: the worker's services, reset to clean and migrated for this test."""

    @pytest.fixture
    def _clean(request: pytest.FixtureRequest) -> HarnessServices:
        services: HarnessServices = request.getfixturevalue(services_name)
        services.reset.reset()
        return services

    return _clean


def stack_fixture(
    image: str | None = None, scope: Scope = "session"
) -> Callable[[pytest.FixtureRequest], Iterator[Stack]]:
    """A fixture factory: the built image running beside its own Postgres and Redis."""

    @pytest.fixture(scope=scope)
    def _stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
        import json

        from harness.engine import local_image_id
        from harness.runtime.stack import running_stack

        config = request.config
        settings = _settings(config)
        ref = image or _setting(config, "image")
        if ref is None:
            record = settings.image_record
            if not record.exists():
                raise pytest.UsageError(
                    f"no image to test: {record} does not exist. Build it first (`nox -s build`), "
                    "or name one with --harness-image"
                )
            ref = str(json.loads(record.read_text())["image"])
        if local_image_id(ref) is None:
            raise pytest.UsageError(
                f"the image under test, {ref}, is not in the engine "
                f"(checked: docker image inspect {ref}). Build it with `nox -s build` "
                "(or `python -m harness build`), or name another with --harness-image"
            )
        pg_image = _setting(config, "postgres-image") or _logical(config, "postgres")
        rd_image = _setting(config, "redis-image") or _logical(config, "redis")
        _ensure_reaper(config)
        with running_stack(ref, pg_image, rd_image, _identity(config), settings.stack) as stack:
            yield stack

    return _stack


def _logical(config: pytest.Config, name: str) -> str:
    """The logical image's local tag, made available (local copy, pull, or offline build)."""
    from harness.build.images import resolve_images

    settings = _settings(config)
    if name not in settings.images:
        raise HarnessError(
            f"no image for the per-worker {name}: no setting names one and [tool.harness.images] "
            f"has no {name!r} image",
            checked=f"--harness-{name}-image, ini harness_{name}_image, "
            f"[tool.harness.images.{name}] in {settings.root / 'pyproject.toml'}",
            fix=f"set harness_{name}_image (e.g. {name}:<tag>) or declare the {name!r} logical image",
        )
    (image,) = resolve_images(settings, [name], log=lambda _m: None)
    return image.ref


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if _is_worker(config):
        return
    from harness.runtime import manifest

    state_dir = _state_dir(config)
    merged = manifest.merge_run(
        state_dir, config.stash[_RUN_ID], {"started": config.stash.get(_STARTED, ""), "pid": os.getpid()}
    )
    if merged is not None:
        config.stash[_SUMMARY] = manifest.summary_line(merged, state_dir / "last-run.json")


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    line = config.stash.get(_SUMMARY, None)
    if line:
        terminalreporter.write_line(line)


# The default fixtures.
harness_services = services_fixture()
harness_clean = clean_fixture()
harness_stack = stack_fixture()
