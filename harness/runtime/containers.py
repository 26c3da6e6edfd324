"""Postgres and Redis containers through testcontainers: labelled, random ports and
credentials, host-side readiness checks that report the container's logs on failure.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from testcontainers.community.postgres import PostgresContainer
from testcontainers.community.redis import RedisContainer
from testcontainers.core.config import testcontainers_config
from testcontainers.core.container import DockerContainer
from testcontainers.core.waiting_utils import WaitStrategy, WaitStrategyTarget

from harness.errors import ReadinessError
from harness.runtime.labels import RunIdentity

__all__ = [
    "PostgresInfo",
    "RedisInfo",
    "RunIdentity",
    "start_postgres",
    "start_redis",
    "start_services",
]

# Ryuk cannot be pulled here; the harness's own reaper (harness.runtime.reaper) does its job.
testcontainers_config.ryuk_disabled = True

POLL_SECONDS = 0.02
LOG_TAIL = 60

# Durability costs time and buys nothing in a throw-away test database.
FAST_POSTGRES = (
    "postgres -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
)


@dataclass(frozen=True)
class PostgresInfo:
    container_id: str
    host: str
    port: int
    user: str
    password: str
    dbname: str
    ready_seconds: float

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{self.dbname}"

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["password"] = "***"  # noqa: S105 - masks the secret in manifests
        return data


@dataclass(frozen=True)
class RedisInfo:
    container_id: str
    host: str
    port: int
    password: str
    ready_seconds: float

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@{self.host}:{self.port}/0"

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["password"] = "***"  # noqa: S105 - masks the secret in manifests
        return data


def host_address(container: DockerContainer) -> str:
    """Where the host reaches a container's published ports: loopback for a local engine.

    testcontainers may answer with the bridge gateway's address for containers on a
    user-defined network; traffic (load tests above all) must stay on loopback.
    """
    docker_host = os.environ.get("DOCKER_HOST", "")
    if not docker_host or docker_host.startswith("unix://"):
        return "127.0.0.1"
    return str(container.get_container_host_ip())


def _token() -> str:
    # Hex: safe in URLs, in SQL literals and on a command line without quoting.
    return secrets.token_hex(12)


def container_logs(container: DockerContainer, tail: int = LOG_TAIL) -> str:
    """The container's status and last `tail` log lines, for error messages."""
    try:
        wrapped = container.get_wrapped_container()
        wrapped.reload()
        raw = wrapped.logs(tail=tail).decode(errors="replace")
        return f"(container status: {wrapped.status})\n{raw}"
    except Exception as exc:  # the logs are a courtesy: never mask the real failure
        return f"(logs unavailable: {exc})"


def _wait(container: DockerContainer, what: str, probe: Callable[[], None], timeout: float) -> float:
    """Poll `probe` from the host until it stops raising; returns seconds since `start`."""
    started = time.monotonic()
    last: Exception | None = None
    checks = 0
    while time.monotonic() - started < timeout:
        try:
            probe()
            return time.monotonic() - started
        except Exception as exc:  # any failure to connect just means "not yet"
            last = exc
        checks += 1
        # A container that exited will never become ready: say so at once.
        if checks % 25 == 0:
            wrapped = container.get_wrapped_container()
            wrapped.reload()
            if wrapped.status in ("exited", "dead"):
                break
        time.sleep(POLL_SECONDS)
    raise ReadinessError(
        f"{container.image} never became ready (waited {time.monotonic() - started:.1f}s)\n"
        f"--- last {LOG_TAIL} lines of its log ---\n{container_logs(container)}",
        checked=f"{what}; last error: {last}",
        fix="read the log above; raise HARNESS_READY_TIMEOUT if the machine is just slow",
    )


class _HostCheckedPostgres(PostgresContainer):
    """PostgresContainer whose readiness is a real connection from the host, polled every 20 ms
    (the stock check runs psql inside the container once a second)."""

    def _connect(self) -> None:
        pass  # readiness is checked by start_postgres, which also times it


def stop(container: DockerContainer | None) -> None:
    """Remove a container and its anonymous volumes; already gone is fine."""
    if container is None or container._container is None:
        return
    # The reaper or a racing cleanup may have got there first.
    with contextlib.suppress(Exception):
        container._container.remove(force=True, v=True)


def _ready_timeout() -> float:
    return float(os.environ.get("HARNESS_READY_TIMEOUT", "60"))


def _launch(
    container: DockerContainer,
    identity: RunIdentity,
    role: str,
    port: int,
    *,
    probe: Callable[[str, int], None],
    waited_for: str,
    network: Any,
    alias: str | None,
    extra_labels: Mapping[str, str] | None,
) -> tuple[str, int, float]:
    """Label, name and start `container`, then wait until `probe(host, port)` succeeds.
    Returns (host, mapped port, seconds to ready); a half-started container is removed."""
    container.with_kwargs(labels={**identity.labels(role), **(extra_labels or {})})
    container.with_name(identity.name(role))
    if network is not None:
        container.with_network(network)
        if alias:
            container.with_network_aliases(alias)
    try:
        container.start()
        host = host_address(container)
        mapped = int(container.get_exposed_port(port))
        ready = _wait(
            container, f"{waited_for} at {host}:{mapped}", lambda: probe(host, mapped), _ready_timeout()
        )
    except BaseException:
        stop(container)  # a half-started server must not outlive its failure
        raise
    return host, mapped, ready


def start_postgres(
    image: str,
    identity: RunIdentity,
    *,
    command: str = FAST_POSTGRES,
    network: Any = None,
    alias: str | None = None,
    extra_labels: Mapping[str, str] | None = None,
) -> tuple[DockerContainer, PostgresInfo]:
    import psycopg

    user, password, dbname = f"u{_token()[:8]}", _token(), f"db_{identity.worker}".replace("-", "_")
    container = _HostCheckedPostgres(image, username=user, password=password, dbname=dbname, driver=None)
    container.with_command(command)

    def probe(host: str, port: int) -> None:
        conninfo = (
            f"host={host} port={port} user={user} password={password} dbname={dbname} connect_timeout=2"
        )
        with psycopg.connect(conninfo) as conn:
            conn.execute("SELECT 1")

    waited_for = f"a psycopg connection as {user} to {dbname}"
    host, port, ready = _launch(
        container, identity, "postgres", 5432, probe=probe, waited_for=waited_for,
        network=network, alias=alias, extra_labels=extra_labels,
    )  # fmt: skip
    info = PostgresInfo(container.get_wrapped_container().id, host, port, user, password, dbname, ready)
    return container, info


def start_redis(
    image: str,
    identity: RunIdentity,
    *,
    network: Any = None,
    alias: str | None = None,
    extra_labels: Mapping[str, str] | None = None,
) -> tuple[DockerContainer, RedisInfo]:
    import redis

    password = _token()
    container = RedisContainer(image, password=password)
    container.waiting_for(_NoWait())

    def probe(host: str, port: int) -> None:
        client = redis.Redis(host=host, port=port, password=password, socket_connect_timeout=1)
        try:
            client.ping()
        finally:
            client.close()

    host, port, ready = _launch(
        container, identity, "redis", 6379, probe=probe, waited_for="a Redis PING",
        network=network, alias=alias, extra_labels=extra_labels,
    )  # fmt: skip
    return container, RedisInfo(container.get_wrapped_container().id, host, port, password, ready)


class _NoWait(WaitStrategy):
    """Readiness is checked by the harness (and timed); testcontainers must not wait first."""

    def wait_until_ready(self, container: WaitStrategyTarget) -> None:
        return None


def start_services(
    postgres_image: str, redis_image: str, identity: RunIdentity
) -> tuple[tuple[DockerContainer, PostgresInfo], tuple[DockerContainer, RedisInfo]]:
    """Both containers at once; if either fails, the other is removed before the error propagates."""
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="harness-start") as pool:
        pg_future = pool.submit(start_postgres, postgres_image, identity)
        redis_future = pool.submit(start_redis, redis_image, identity)
        errors: list[BaseException] = []
        results: list[Any] = []
        for future in (pg_future, redis_future):
            try:
                results.append(future.result())
            except BaseException as exc:
                errors.append(exc)
                results.append(None)
    if errors:
        for result in results:
            if result is not None:
                stop(result[0])
        raise errors[0]
    return results[0], results[1]
