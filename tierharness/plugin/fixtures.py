"""The fixture factories (`services_fixture`, `clean_fixture`, `stack_fixture`) and what their
fixtures give (`HarnessServices`); the plugin creates the default fixtures from them."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pytest

from tierharness.errors import HarnessError
from tierharness.plugin.identity import identity
from tierharness.plugin.session import EARLY, LAZY, options_of

if TYPE_CHECKING:
    from tierharness.engine.labels import RunIdentity
    from tierharness.runtime.containers import PostgresInfo, RedisInfo
    from tierharness.runtime.reset import StateReset
    from tierharness.runtime.stack import Stack
    from tierharness.runtime.worker import Worker

__all__ = ["HarnessServices", "clean_fixture", "services_fixture", "stack_fixture"]

Scope = Literal["session", "package", "module", "class", "function"]


@dataclass
class HarnessServices:
    """What a worker got: its Postgres (and Redis), how to reset them, what was exported."""

    identity: RunIdentity
    postgres: PostgresInfo
    redis: RedisInfo | None
    reset: StateReset = field(repr=False)
    exported: dict[str, str] = field(default_factory=dict, repr=False)
    reused: bool = False
    _last_reset: object = field(default=None, repr=False)

    def env(self) -> dict[str, str]:
        """The environment mapping exported for this worker (DATABASE_URL, PG*, ...)."""
        return dict(self.exported)


def _services_of(worker: Worker) -> HarnessServices:
    return HarnessServices(
        worker.identity, worker.postgres, worker.redis, worker.reset, dict(worker.env), worker.reused
    )


def services_fixture(
    *, scope: Scope = "session"
) -> Callable[[pytest.FixtureRequest], Iterator[HarnessServices]]:
    """A fixture factory: this worker's services, provisioned early or now, migrated once."""

    @pytest.fixture(scope=scope)
    def _services(request: pytest.FixtureRequest) -> Iterator[HarnessServices]:
        from tierharness.runtime.worker import (  # noqa: PLC0415  lazy: plugin start-up time (docker)
            worker_error,
        )

        config = request.config
        early = config.stash.get(EARLY, None)
        if isinstance(early, HarnessError):
            raise early
        if early is not None:
            yield _services_of(early)
            return
        from tierharness.plugin.provisioning import start_worker  # noqa: PLC0415  lazy: plugin start-up time (an unused plugin costs nothing)
        from tierharness.plugin.records import write_manifest  # noqa: PLC0415  lazy: plugin start-up time (an unused plugin costs nothing)

        try:
            worker = start_worker(config)
        except Exception as exc:
            raise worker_error(exc) from exc
        write_manifest(config, worker)
        config.stash[LAZY] = worker
        try:
            yield _services_of(worker)
        finally:
            del config.stash[LAZY]
            worker.close()
            write_manifest(config, worker)

    return _services


def clean_fixture(
    services_name: str = "harness_services",
) -> Callable[[pytest.FixtureRequest], HarnessServices]:
    """A fixture factory: the worker's services, reset for this test (or this module, or once,
    by harness_reset_scope). With a seed fixture configured, it runs before the first reset,
    so a "snapshot" reset keeps what it committed."""

    @pytest.fixture
    def _clean(request: pytest.FixtureRequest) -> HarnessServices:
        options = options_of(request.config)
        services: HarnessServices = request.getfixturevalue(services_name)
        if options.seed_fixture:
            request.getfixturevalue(options.seed_fixture)
        scope = options.reset_scope
        if scope not in ("function", "module", "session"):
            raise HarnessError(
                f"harness_reset_scope = {scope!r} is not a scope",
                checked="--harness-reset-scope / ini harness_reset_scope",
                fix='use "function", "module" or "session"',
            )
        marker: object = {"function": request.node, "module": request.node.module, "session": True}[scope]
        if services._last_reset is not marker:
            services.reset.reset()
            services._last_reset = marker
        return services

    return _clean


def stack_fixture(
    image: str | None = None, scope: Scope = "session"
) -> Callable[[pytest.FixtureRequest], Iterator[Stack]]:
    """A fixture factory: the built image running beside its own Postgres and Redis."""

    @pytest.fixture(scope=scope)
    def _stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
        from tierharness.plugin.plans import image_for, settings_of  # noqa: PLC0415  lazy: plugin start-up time (an unused plugin costs nothing)
        from tierharness.plugin.records import ensure_reaper  # noqa: PLC0415  lazy: plugin start-up time (an unused plugin costs nothing)
        from tierharness.runtime.stack import (  # noqa: PLC0415  lazy: plugin start-up time (docker)
            running_stack,
        )
        from tierharness.supply.stack_image import image_to_run  # noqa: PLC0415  lazy: plugin start-up time (docker)

        config = request.config
        options = options_of(config)
        settings = settings_of(Path(config.rootpath))
        ref = _image_under_test(image or options.image, settings.image_record)
        ensure_reaper(config)
        # Verified in the registry and run by digest; a failure starts nothing. Unverified, a
        # warning says so (xdist brings workers' warnings to the run's summary).
        ref = image_to_run(settings, ref, identity(config), log=lambda m: warnings.warn(m, stacklevel=2))
        pg_image = image_for(options, settings, "postgres")
        rd_image = image_for(options, settings, "redis")
        with running_stack(ref, pg_image, rd_image, identity(config), settings.stack) as stack:
            yield stack

    return _stack


def _image_under_test(ref: str | None, record: Path) -> str:
    """`ref`, else the image the last build recorded; either way one the engine holds."""
    from tierharness.engine.client import local_image_id  # noqa: PLC0415  lazy: plugin start-up time (docker)

    if ref is None:
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
            "(or `python -m tierharness build`), or name another with --harness-image"
        )
    return ref
