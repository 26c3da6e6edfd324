"""One worker's services, from nothing to ready: Postgres (and Redis), the environment
mapping exported, migrations and seed run, the reset prepared, the manifest record made.

The pytest plugin calls `provision()` either early (before conftests and test modules are
imported, so settings read at import time see the worker's database) or from the first
fixture that asks; both paths are this one. With `reuse`, the worker's containers are kept
after the run and taken back by the next one (see `engine.reuse`).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import docker.errors

from tierharness.config import environment
from tierharness.engine.client import engine_client, local_image_id
from tierharness.engine.labels import RunIdentity
from tierharness.engine.reaper import sweep_dead_runs
from tierharness.engine.reuse import (
    ReuseSlot,
    expire_idle,
    kept_containers,
    migrations_digest,
    remove_kept,
    reuse_key,
)
from tierharness.errors import HarnessError
from tierharness.runtime import containers
from tierharness.runtime.containers import PostgresInfo, RedisInfo
from tierharness.runtime.migrated import capture, committable, migrated_image, migrated_key
from tierharness.runtime.migrations import run_migrations, run_project_command
from tierharness.runtime.networking import LABEL_PORT, use_host_network
from tierharness.runtime.plan import DEFAULT_ENV, LIBPQ_REDIRECTS, REDIS_ENV, WorkerPlan
from tierharness.runtime.reset import StateReset
from tierharness.runtime.templates import render

__all__ = [
    "DEFAULT_ENV",
    "REDIS_ENV",
    "Worker",
    "WorkerPlan",
    "engine_host",
    "export_mapping",
    "host_port",
    "provision",
    "render_mapping",
    "worker_error",
]


@dataclass
class Worker:
    """A provisioned worker. `env` is what was exported (it holds passwords: no repr)."""

    identity: RunIdentity
    postgres: PostgresInfo
    redis: RedisInfo | None
    reset: StateReset = field(repr=False)
    env: dict[str, str] = field(repr=False)
    record: dict[str, Any] = field(repr=False)
    reused: bool = False
    migrated: bool = False  # started from a migrated image: no migration or seed ran
    _containers: list[Any] = field(default_factory=list, repr=False)
    _slot: ReuseSlot | None = field(default=None, repr=False)

    def close(self) -> None:
        """Stop the containers, or keep them for the next run when they are reused ones."""
        self.record["isolation"] = self.reset.stats()
        self.reset.close()
        if self._slot is not None:
            self._slot.release()
            return
        # At once: each removal is mostly the engine waiting on its own container, and the
        # run's end waits for the last worker's.
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="harness-remove") as pool:
            list(pool.map(_remove, self._containers))


def _remove(container: Any) -> None:
    with contextlib.suppress(Exception):  # the reaper may have got there first
        container.remove(force=True, v=True)


def engine_host() -> str:
    """Where this process reaches the engine's containers' ports."""
    env = environment()
    if env.engine_is_local:
        return "127.0.0.1"
    return urlsplit(env.docker_host or "").hostname or "127.0.0.1"


def _adopt(
    client: Any, key: str, plan: WorkerPlan, on_host: bool
) -> tuple[PostgresInfo, RedisInfo | None, list[Any]] | None:
    """The kept containers of `key`, running, complete and on the network asked for, as
    connection records; else None."""
    found = {c.labels.get("harness.role"): c for c in kept_containers(client, key)}
    pg, rd = found.get("postgres"), found.get("redis")
    wanted_redis = plan.redis_image is not None
    if pg is None or pg.status != "running" or (wanted_redis and (rd is None or rd.status != "running")):
        return None
    if (LABEL_PORT in pg.labels) != on_host:  # harness_network changed since they were kept
        return None
    host = engine_host()
    postgres = containers.postgres_of(pg, host, host_port(pg, 5432))
    redis_info = None
    if wanted_redis and rd is not None:
        redis_info = containers.redis_of(rd, host, host_port(rd, 6379))
    return postgres, redis_info, [c for c in (pg, rd if wanted_redis else None) if c is not None]


def host_port(container: Any, port: int) -> int:
    """Where the host reaches a kept container's `port`: its label on the host network,
    else its published mapping."""
    if LABEL_PORT in container.labels:
        return int(container.labels[LABEL_PORT])
    return int(container.attrs["NetworkSettings"]["Ports"][f"{port}/tcp"][0]["HostPort"])


def render_mapping(plan: WorkerPlan, postgres: PostgresInfo, redis_info: RedisInfo | None) -> dict[str, str]:
    """The plan's mapping filled with these services (a bad placeholder is an error here)."""
    values: dict[str, Any] = {"postgres": postgres}
    if redis_info is not None:
        values["redis"] = redis_info
    return render(plan.templates(), values, where="[tool.harness.test-env]")


def export_mapping(mapping: Mapping[str, str]) -> None:
    """Into this process's own environment: the tests' process and every child it starts.
    libpq variables that would send a connection elsewhere go."""
    for name in LIBPQ_REDIRECTS:
        os.environ.pop(name, None)
    os.environ.update(mapping)


def provision(
    plan: WorkerPlan, identity: RunIdentity, *, log: Callable[[str], None] = lambda _m: None
) -> Worker:
    """Start (or take back) the worker's services and make them ready for its tests."""
    client = engine_client()
    # Leftovers of runs that died with their reaper: swept beside this worker's start, not
    # before it (it lists every labelled resource on the engine).
    sweeper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="harness-sweep")
    # Kept containers are expired by the reuse path itself, under its lock, not by this thread.
    sweep = sweeper.submit(sweep_dead_runs, client, expire=False)
    try:
        return _provision(plan, identity, client, log)
    finally:
        with contextlib.suppress(Exception):  # a sweep is a courtesy; it never fails a worker
            sweep.result()
        sweeper.shutdown()


def _provision(plan: WorkerPlan, identity: RunIdentity, client: Any, log: Callable[[str], None]) -> Worker:
    env = environment()
    on_host = use_host_network(plan.network, client)  # a bad setting fails before anything starts
    slot: ReuseSlot | None = None
    if plan.reuse and env.ci:
        log("harness: --harness-reuse is ignored in CI (CI is set): fresh containers")
    elif plan.reuse:
        expire_idle(client)
        digests = {"postgres": local_image_id(plan.postgres_image) or plan.postgres_image}
        if plan.redis_image:
            digests["redis"] = local_image_id(plan.redis_image) or plan.redis_image
        key = reuse_key(
            plan.rootdir, identity.worker, digests, migrations_digest(plan.rootdir, plan.migrate, plan.seed)
        )
        candidate = ReuseSlot(plan.state_dir, key, env.reuse_idle)
        slot = candidate if candidate.acquire() else None
    started = time.monotonic()
    # Kept containers migrate once per key already: only fresh ones start migrated.
    migrated, to_commit = _migrated(plan, client) if slot is None else (None, None)
    adopted = _adopt(client, slot.key, plan, on_host) if slot is not None else None
    try:
        if adopted is not None:
            postgres, redis_info, kept = adopted
        else:
            postgres, redis_info, kept, migrated = _start_fresh(
                plan, identity, client, slot, migrated, on_host=on_host
            )
        worker = _prepare(
            plan,
            identity,
            postgres,
            redis_info,
            kept,
            slot=slot,
            reused=adopted is not None,
            migrated=bool(migrated),
        )
    except BaseException:
        if slot is not None:
            slot.release(used=False)
        raise
    if to_commit is not None:
        _commit(plan, client, worker, to_commit, log)
    worker.record["provision_seconds"] = round(time.monotonic() - started, 3)
    worker.record["host_network"] = on_host
    return worker


def _migrated(plan: WorkerPlan, client: Any) -> tuple[str | None, str | None]:
    """(the migrated image to start from, or None; the key to commit one for, or None)."""
    if not plan.migrate_once or not (plan.migrate or plan.seed):
        return None, None
    image_id = local_image_id(plan.postgres_image) or plan.postgres_image
    key = migrated_key(image_id, migrations_digest(plan.rootdir, plan.migrate, plan.seed))
    found = migrated_image(client, key)
    if found is not None:
        return found, None
    return None, (key if committable(client, plan.postgres_image) else None)


def _start_fresh(
    plan: WorkerPlan,
    identity: RunIdentity,
    client: Any,
    slot: ReuseSlot | None,
    migrated: str | None,
    *,
    on_host: bool,
) -> tuple[PostgresInfo, RedisInfo | None, list[Any], str | None]:
    """New containers: from the migrated image when there is one, else (or when it was removed
    since it was found, by a `clean` beside the run) from the plan's image."""
    if migrated is not None:
        try:
            return (*_start(plan, identity, client, slot, migrated, on_host=on_host), migrated)
        except docker.errors.APIError:
            if local_image_id(migrated) is not None:
                raise
    return (*_start(plan, identity, client, slot, plan.postgres_image, on_host=on_host), None)


def _commit(plan: WorkerPlan, client: Any, worker: Worker, key: str, log: Callable[[str], None]) -> None:
    """The worker's Postgres, migrated and seeded, committed as the migrated image of `key`."""
    started = time.monotonic()
    committed = capture(
        client, worker._containers[0], worker.postgres, base_image=plan.postgres_image, key=key,
        rootdir=plan.rootdir, state_dir=plan.state_dir, log=log,
    )  # fmt: skip
    worker.record["migrated_image_committed"] = committed is not None
    worker.record["commit_seconds"] = round(time.monotonic() - started, 3)


def _start(
    plan: WorkerPlan,
    identity: RunIdentity,
    client: Any,
    slot: ReuseSlot | None,
    postgres_image: str,
    *,
    on_host: bool,
) -> tuple[PostgresInfo, RedisInfo | None, list[Any]]:
    if slot is not None:
        remove_kept(client, slot.key)  # an incomplete or stopped set: start over
        identity = RunIdentity(f"reuse-{slot.key}", identity.worker, identity.owner_pid, owned=False)
        extra = slot.labels()
    else:
        extra = {}
    (pg_container, postgres), redis_started = containers.start_services(
        postgres_image,
        plan.redis_image,
        identity,
        extra_labels=extra,
        on_host=on_host,
    )
    started = [pg_container.get_wrapped_container()]
    redis_info = None
    if redis_started is not None:
        started.append(redis_started[0].get_wrapped_container())
        redis_info = redis_started[1]
    return postgres, redis_info, started


def _prepare(
    plan: WorkerPlan,
    identity: RunIdentity,
    postgres: PostgresInfo,
    redis_info: RedisInfo | None,
    started: list[Any],
    *,
    slot: ReuseSlot | None,
    reused: bool,
    migrated: bool,
) -> Worker:
    """Export the mapping, migrate, seed, and open the reset; a failure removes what started."""
    try:
        # Rendered now (a bad placeholder fails before anything runs), exported at the end.
        mapping = render_mapping(plan, postgres, redis_info)
        migrate_seconds = 0.0
        if plan.migrate and not (reused or migrated):
            migrate_seconds = run_migrations(plan.migrate, postgres, rootdir=plan.rootdir, env=mapping)
        reset = StateReset(postgres, redis_info, plan.keep_tables, plan.reset)
        try:
            if reused:
                reset.empty()  # the last run's rows: back to "clean and migrated"
            if plan.seed and not migrated:  # a migrated image holds the seed's rows
                run_project_command(
                    plan.seed,
                    rootdir=plan.rootdir,
                    env=mapping,
                    what="the seed command",
                    fix="fix the seed, or the harness_seed setting",
                )
        except BaseException:
            reset.close()
            raise
    except BaseException:
        # Kept containers too: a half-migrated set must not be taken back by the next run.
        for container in started:
            with contextlib.suppress(Exception):
                container.remove(force=True, v=True)
        raise
    export_mapping(mapping)  # only once it all worked: a failed worker points nowhere
    record: dict[str, Any] = {
        "worker": identity.worker,
        "postgres": {**postgres.as_dict(), "image": plan.postgres_image},
        "redis": {**redis_info.as_dict(), "image": plan.redis_image} if redis_info else None,
        "migrate_seconds": round(migrate_seconds, 3),
        "reused": reused,
        "migrated_image": migrated,
    }
    return Worker(identity, postgres, redis_info, reset, mapping, record, reused, migrated, started, slot)


def worker_error(exc: BaseException) -> HarnessError:
    """Any provisioning failure as a HarnessError (docker's own errors included)."""
    if isinstance(exc, HarnessError):
        return exc
    return HarnessError(
        f"the worker's services could not be started: {type(exc).__name__}: {exc}",
        checked="starting the per-worker containers through the Docker engine",
        fix="run `python -m tierharness doctor`; the image settings are --harness-postgres-image "
        "(ini harness_postgres_image) and --harness-redis-image (ini harness_redis_image)",
    )
