"""Provisioning a worker's services, one code path (`tierharness.runtime.worker`) two ways:
- lazy (default): the first fixture that asks starts them (`start_worker`);
- early (`harness_provision = early`): each worker starts them before conftests and test
  modules are imported, and exports the environment mapping into its own environment, so a
  project that reads its settings at import time sees the worker's database."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tierharness.config import environment
from tierharness.errors import HarnessError
from tierharness.plugin.identity import identity
from tierharness.plugin.plans import mapping_plan, worker_plan
from tierharness.plugin.records import ensure_reaper, write_manifest
from tierharness.plugin.session import EARLY, options_of

if TYPE_CHECKING:
    from tierharness.runtime.worker import Worker

__all__ = ["provision_early", "start_worker"]


def provision_early(config: pytest.Config) -> None:
    """Where tests run, the worker's services now (a failure kept for the fixture to report);
    elsewhere, placeholders for settings read at import."""
    if _runs_tests_here(config):
        config.stash[EARLY] = _provision_or_error(config)
        config.pluginmanager.register(_EarlyCloser(), "harness-early-closer")
    else:
        _export_placeholders(config)


def start_worker(config: pytest.Config) -> Worker:
    """This worker's services, provisioned, the reaper running and the manifest written."""
    from tierharness.runtime.worker import provision  # noqa: PLC0415  lazy: plugin start-up time (docker)

    plan = worker_plan(options_of(config), Path(config.rootpath))
    ensure_reaper(config)
    return provision(plan, identity(config))


def _runs_tests_here(config: pytest.Config) -> bool:
    """False in an xdist controller whose workers run the tests, and under --collect-only."""
    namespace = config.known_args_namespace
    if getattr(namespace, "collectonly", False):
        return False
    if environment().xdist_worker:
        return True
    # xdist's -n (its --dist is not settled yet at this point): workers will run the tests.
    return not getattr(namespace, "numprocesses", None)


def _export_placeholders(config: pytest.Config) -> None:
    """An xdist controller (or --collect-only) imports the conftests too but runs no test:
    settings read at import get values that point nowhere (an .invalid host), never a real
    database, and never a KeyError."""
    from tierharness.runtime.containers import (  # noqa: PLC0415  lazy: plugin start-up time (docker)
        PostgresInfo,
        RedisInfo,
    )
    from tierharness.runtime.worker import (  # noqa: PLC0415  lazy: plugin start-up time (docker)
        export_mapping,
        render_mapping,
    )

    host = "harness-not-provisioned.invalid"
    try:
        plan = mapping_plan(options_of(config), Path(config.rootpath))
        postgres = PostgresInfo("", host, 5432, "harness", "", "harness", 0.0)
        redis_info = RedisInfo("", host, 6379, "", 0.0) if plan.redis_image is not None else None
        export_mapping(render_mapping(plan, postgres, redis_info))
    except HarnessError:
        pass  # a broken setting is reported by the workers, where tests run


def _provision_or_error(config: pytest.Config) -> Worker | HarnessError:
    """A failure is kept, not raised: raising here would crash the worker (and xdist would
    start it again); the services fixture reports it, once."""
    from tierharness.runtime.worker import worker_error  # noqa: PLC0415  lazy: plugin start-up time (docker)

    try:
        worker = start_worker(config)
    except Exception as exc:
        return worker_error(exc)
    write_manifest(config, worker)
    return worker


class _EarlyCloser:
    """Stops the early-provisioned services last in the session's end, after the session's
    fixtures are torn down (they may still use them), and not at unconfigure: an xdist worker
    reports "finished" when this hook returns, and the run may end (and its caller go on) once
    every worker has. Removed at unconfigure, the containers were still listed, mid-removal,
    after the run had ended."""

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        early = session.config.stash.get(EARLY, None)
        if early is not None and not isinstance(early, HarnessError):
            early.close()
            write_manifest(session.config, early)
