"""A failed test's database and Redis, kept for a post-mortem (`--harness-keep-failed`).

Before the next test's reset wipes them, the worker's database is copied (`pg_dump` in the
worker's container, `pg_restore` in a new one) and its Redis keys too (DUMP and RESTORE), into
a pair of containers of their own. The copy, not the worker's containers, is what survives: the
worker goes on resetting and testing, and is removed at the run's end as always.

The kept pair are kept containers (`engine.reuse`): no owner pid, so no reaper or dead-run
sweep removes them; their owner's uid, so `clean` removes them for that user only; an idle
time, so they expire (HARNESS_REUSE_IDLE after the failure) like reused workers. They also
carry the failed test's id (`harness.kept-failed`), by which `python -m tierharness connect`
finds them. The passwords stay in the containers' own configuration, never in the report.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from filelock import FileLock

from tierharness.engine.labels import LABEL_ROLE, RunIdentity
from tierharness.engine.reuse import LABEL_REUSE, ReuseSlot, owner_of
from tierharness.errors import HarnessError
from tierharness.runtime import containers
from tierharness.runtime.containers import PostgresInfo, RedisInfo, postgres_of, redis_of
from tierharness.runtime.networking import LABEL_PORT

__all__ = [
    "LABEL_KEPT_FAILED",
    "Connection",
    "FailedWorker",
    "KeptFailure",
    "connection",
    "find_kept",
    "forget_stale_claims",
    "keep_failed",
    "kept_count",
    "urls",
]

LABEL_KEPT_FAILED = "harness.kept-failed"  # the failed test's id
_DUMP = "/harness-failed.dump"  # in the kept container, which holds nothing else of anyone's


@dataclass(frozen=True)
class KeptFailure:
    """Where a failed test's copy lives. Passwords are not in the repr (reports show reprs)."""

    test_id: str
    postgres: PostgresInfo
    redis: RedisInfo | None
    idle_seconds: float
    containers: tuple[str, ...] = field(default=(), repr=False)

    def commands(self) -> list[str]:
        """What the failure report prints: ready command lines, and no password."""
        quoted = "'" + self.test_id.replace("'", "'\\''") + "'"
        pg = self.postgres
        lines = [
            f"python -m tierharness connect {quoted}            # psql, in the kept container",
            f'psql "postgresql://{pg.user}@{pg.host}:{pg.port}/{pg.dbname}"   '
            f"# its password: python -m tierharness connect {quoted} --url",
        ]
        if self.redis is not None:
            lines += [
                f"python -m tierharness connect {quoted} --redis    # redis-cli, in the kept container",
                f"redis-cli -u redis://{self.redis.host}:{self.redis.port}/0",
            ]
        return lines


def kept_count(state_dir: Path, run_id: str) -> int:
    """How many failures this run has kept so far (every worker's)."""
    return sum(1 for _ in _records(state_dir, run_id))


def _records(state_dir: Path, run_id: str) -> Iterator[Path]:
    for path in (state_dir / "failed").glob("*.json"):
        with suppress(OSError, ValueError):
            if json.loads(path.read_text(encoding="utf-8")).get("run") == run_id:
                yield path


def forget_stale_claims(state_dir: Path, idle_seconds: float) -> int:
    """Remove the claims older than a kept copy lives (`idle_seconds`): they only count toward
    their own run's bound, and that run is long over. Returns how many went."""
    gone = 0
    for path in (state_dir / "failed").glob("*.json"):
        with suppress(OSError, ValueError):
            at = float(json.loads(path.read_text(encoding="utf-8")).get("at", 0))
            if time.time() - at > idle_seconds:
                path.unlink()
                gone += 1
    return gone


@contextmanager
def _run_lock(state_dir: Path) -> Iterator[None]:
    """The run's workers count and claim under one lock, so the bound holds across them."""
    folder = state_dir / "failed"
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder / ".lock")):
        yield


@dataclass(frozen=True)
class FailedWorker:
    """The worker whose test failed: what is copied, and how its copy is started."""

    run_id: str
    worker: str
    source: Any = field(repr=False)  # its Postgres container (the docker SDK's): pg_dump runs there
    postgres: PostgresInfo
    redis: RedisInfo | None
    images: tuple[str, str | None]  # the plain images the worker started from
    on_host: bool
    state_dir: Path


def keep_failed(failed: FailedWorker, test_id: str, *, idle_seconds: float, limit: int) -> KeptFailure | None:
    """Copy the failed test's state into a kept pair; None when the run has kept `limit` already."""
    digest = hashlib.sha256(f"{os.getuid()}\n{failed.run_id}\n{test_id}".encode()).hexdigest()[:16]
    key = f"failed-{digest}"
    with _run_lock(failed.state_dir):
        forget_stale_claims(failed.state_dir, idle_seconds)
        if kept_count(failed.state_dir, failed.run_id) >= limit:
            return None
        record = failed.state_dir / "failed" / f"{key}.json"
        # Claimed before the copy, so a worker failing at the same time counts it.
        claim = {"run": failed.run_id, "test": test_id, "at": time.time()}
        record.write_text(json.dumps(claim), encoding="utf-8")
    try:
        return _copy(failed, test_id, key, idle_seconds)
    except BaseException:
        record.unlink(missing_ok=True)  # not kept: it does not count against the bound
        raise


def _copy(failed: FailedWorker, test_id: str, key: str, idle_seconds: float) -> KeptFailure:
    slot = ReuseSlot(failed.state_dir, key, idle_seconds)
    dump = _pg_dump(failed.source, failed.postgres)
    # Held while the copy is made: a sweep (any run's) expires a kept key with no recent use
    # unless its lock is held, and this one has no use recorded yet.
    slot.acquire()
    try:
        return _start_copy(failed, test_id, key, slot, dump)
    finally:
        slot.release()  # its last use is now: it expires `idle_seconds` from here


def _start_copy(failed: FailedWorker, test_id: str, key: str, slot: ReuseSlot, dump: bytes) -> KeptFailure:
    (pg_container, pg_copy), rd_started = containers.start_services(
        failed.images[0],
        failed.images[1] if failed.redis is not None else None,
        RunIdentity(key, failed.worker, 0, owned=False),
        extra_labels={**slot.labels(), LABEL_KEPT_FAILED: test_id},
        on_host=failed.on_host,
    )
    started = [pg_container.get_wrapped_container()]
    if rd_started is not None:
        started.append(rd_started[0].get_wrapped_container())
    try:
        _pg_restore(started[0], pg_copy, dump)
        if failed.redis is not None and rd_started is not None:
            _copy_redis(failed.redis, rd_started[1])
    except BaseException:
        for container in started:
            with suppress(Exception):
                container.remove(force=True, v=True)
        raise
    copy_redis = rd_started[1] if rd_started is not None else None
    return KeptFailure(test_id, pg_copy, copy_redis, slot.idle_seconds, tuple(c.id for c in started))


def _local(container: Any, user: str, dbname: str) -> list[str]:
    """libpq's arguments for the server in `container`, over its unix socket. On the host
    network the server listens on a port of its own, which names the socket too."""
    return ["-p", container.labels.get(LABEL_PORT, "5432"), "-U", user, "-d", dbname]


def _run_in(container: Any, argv: list[str], where: str) -> bytes:
    """`argv` in the container; its standard output, or a HarnessError with its error's tail."""
    result = container.exec_run(argv, demux=True)
    out, err = result.output
    if result.exit_code != 0:
        raise HarnessError(
            f"{argv[0]} of the failed test's database exited {result.exit_code}: "
            f"{(err or b'').decode(errors='replace')[-500:]}",
            checked=f"{argv[0]} in {where} {container.short_id}",
            fix="run without --harness-keep-failed, or read the container's log (docker logs)",
        )
    return bytes(out or b"")


def _pg_dump(container: Any, postgres: PostgresInfo) -> bytes:
    """The worker's database, in pg_dump's custom format, over the container's own socket
    (local connections are trusted there: no password on any command line)."""
    local = _local(container, postgres.user, postgres.dbname)
    return _run_in(container, ["pg_dump", "--format=custom", "--no-owner", *local], "the worker's Postgres")


def _pg_restore(container: Any, postgres: PostgresInfo, dump: bytes) -> None:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        info = tarfile.TarInfo(Path(_DUMP).name)
        info.size, info.mode = len(dump), 0o644
        tar.addfile(info, io.BytesIO(dump))
    container.put_archive(str(Path(_DUMP).parent), archive.getvalue())
    local = _local(container, postgres.user, postgres.dbname)
    _run_in(container, ["pg_restore", "--no-owner", "--exit-on-error", *local, _DUMP], "the kept Postgres")


def _copy_redis(source: RedisInfo, target: RedisInfo) -> None:
    """Every key, with its time to live."""
    src = redis.Redis(host=source.host, port=source.port, password=source.password)
    dst = redis.Redis(host=target.host, port=target.port, password=target.password)
    try:
        for name in src.scan_iter(count=1000):
            value = src.dump(name)
            if value is not None:  # expired between SCAN and DUMP
                ttl = int(src.pttl(name))
                dst.restore(name, max(ttl, 0), value, replace=True)
    finally:
        src.close()
        dst.close()


def find_kept(client: Any, test_id: str) -> tuple[str, list[Any]]:
    """The invoking user's kept copy of `test_id` (its full id, or a part that names one test
    alone; of several runs' copies, the newest): (the test's id, its containers)."""
    copies: dict[str, list[Any]] = {}  # by kept key: one failure's Postgres and Redis
    flt = {"label": [LABEL_KEPT_FAILED, LABEL_REUSE]}
    for container in client.containers.list(all=True, ignore_removed=True, filters=flt):
        if owner_of(container.labels) == os.getuid():
            copies.setdefault(container.labels[LABEL_REUSE], []).append(container)
    tests = {c[0].labels[LABEL_KEPT_FAILED] for c in copies.values()}
    matches = [t for t in tests if t == test_id] or [t for t in tests if test_id in t]
    if len(matches) != 1:
        listing = "\n  ".join(sorted(tests)) or "(none)"
        raise HarnessError(
            f"{len(matches) or 'no'} kept failed test(s) match {test_id!r}",
            checked="containers labelled harness.kept-failed of this user; kept now:\n  " + listing,
            fix="give a test's full id as the failure report printed it (run with --harness-keep-failed)",
        )
    mine = [c for c in copies.values() if c[0].labels[LABEL_KEPT_FAILED] == matches[0]]
    newest = max(mine, key=lambda c: str(c[0].attrs.get("Created", "")))
    return matches[0], newest


@dataclass(frozen=True)
class Connection:
    """How `connect` reaches a kept copy: the command to run and what its environment adds."""

    argv: list[str]
    env: dict[str, str] = field(repr=False)


def connection(found: list[Any], *, to_redis: bool, extra: list[str], tty: bool) -> Connection:
    """psql (or redis-cli) inside the kept container, through the docker CLI: psql needs no
    password there (local connections are trusted); redis-cli reads its password from
    REDISCLI_AUTH, which `docker exec -e` passes from this environment, not from argv."""
    role = "redis" if to_redis else "postgres"
    container = next((c for c in found if c.labels.get(LABEL_ROLE) == role), None)
    if container is None:
        raise HarnessError(
            f"the kept copy has no {role} container",
            checked="the containers labelled with this test's id",
            fix="the worker had no Redis (harness_services = postgres): connect to Postgres instead",
        )
    exec_argv = ["docker", "exec", "-it" if tty else "-i"]
    if to_redis:
        password = redis_of(container, "", 0).password
        port = container.labels.get(LABEL_PORT, "6379")
        return Connection([*exec_argv, "-e", "REDISCLI_AUTH", container.id, "redis-cli", "-p", port, *extra],
                          {"REDISCLI_AUTH": password})  # fmt: skip
    pg = postgres_of(container, "", 0)
    return Connection([*exec_argv, container.id, "psql", *_local(container, pg.user, pg.dbname), *extra], {})


def urls(found: list[Any], host: str, port_of: Callable[[Any, int], int]) -> list[str]:
    """The kept copy's URLs, passwords included: printed only when asked (`connect --url`)."""
    lines = []
    for container in found:
        role = container.labels.get(LABEL_ROLE)
        if role == "postgres":
            lines.append(postgres_of(container, host, port_of(container, 5432)).url)
        elif role == "redis":
            lines.append(redis_of(container, host, port_of(container, 6379)).url)
    return lines
