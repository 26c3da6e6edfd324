"""Postgres and Redis containers through testcontainers: labelled, random ports and
credentials, host-side readiness checks that report the container's logs on failure.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from testcontainers.core.config import testcontainers_config
from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network

from tierharness.config import environment
from tierharness.engine.client import prepare_clients
from tierharness.engine.labels import RunIdentity
from tierharness.errors import ReadinessError
from tierharness.runtime.networking import LABEL_PORT, free_loopback_port
from tierharness.runtime.readiness import HostProbe

__all__ = [
    "CHEAP_SCRAM_ITERATIONS",
    "PostgresInfo",
    "RedisInfo",
    "publish_on_loopback",
    "start_postgres",
    "start_redis",
    "start_services",
    "stop",
]

# Ryuk cannot be pulled here; the harness's own reaper (tierharness.engine.reaper) does its job.
testcontainers_config.ryuk_disabled = True

# A host-network server that finds its port taken exits saying so (Postgres and Redis both).
_PORT_TAKEN = "Address already in use"
_PORT_ATTEMPTS = 3

# Durability costs time and buys nothing in a throw-away test database.
FAST_POSTGRES = (
    "postgres -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
)

# PBKDF2 rounds in the role's SCRAM verifier: Postgres's default 4,096 make every connection
# cost milliseconds of CPU on both ends. Safe for these clusters: the server listens on
# 127.0.0.1 or a private network only, the password is random per run and the container
# lives for one run (or one reuse key); SCRAM still never sends the password. Few rounds
# only cheapen an offline guess at the stored verifier, which is removed with the container.
CHEAP_SCRAM_ITERATIONS = 1
_SCRAM_ITERATIONS_SINCE = 160000  # scram_iterations is a setting from Postgres 16 on


def _cheapen_password(conn: Any, user: str, password: str, iterations: int) -> None:
    """Set `user`'s password again, hashed with `iterations` PBKDF2 rounds: the verifier is
    computed when a password is set, so the entrypoint's one has the default's. A server
    older than 16 has no such setting and keeps its verifier."""
    from psycopg import sql  # noqa: PLC0415  lazy: psycopg loads in workers that start Postgres

    if conn.info.server_version < _SCRAM_ITERATIONS_SINCE:
        return
    conn.execute(sql.SQL("SET scram_iterations = {}").format(sql.Literal(iterations)))
    conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(user), sql.Literal(password)))


def _masked(info: object) -> dict[str, Any]:
    """A connection record for manifests: everything but the password."""
    data: dict[str, Any] = asdict(info)  # type: ignore[call-overload]
    data["password"] = "***"  # noqa: S105 - masks the secret in manifests
    return data


@dataclass(frozen=True)
class PostgresInfo:
    """Where a worker's Postgres listens, as the host reaches it. The password never shows
    in a repr (reprs end up in test reports)."""

    container_id: str
    host: str
    port: int
    user: str
    password: str = field(repr=False)
    dbname: str = ""
    ready_seconds: float = 0.0

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{self.dbname}"

    def as_dict(self) -> dict[str, Any]:
        return _masked(self)


@dataclass(frozen=True)
class RedisInfo:
    """Where a worker's Redis listens, as the host reaches it; the password is not in the repr."""

    container_id: str
    host: str
    port: int
    password: str = field(repr=False)
    ready_seconds: float = 0.0

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@{self.host}:{self.port}/0"

    def as_dict(self) -> dict[str, Any]:
        return _masked(self)


def _token() -> str:
    # Hex: safe in URLs, in SQL literals and on a command line without quoting.
    return secrets.token_hex(12)


def _postgres_container(image: str, user: str, password: str, dbname: str) -> DockerContainer:
    """A plain DockerContainer, configured as testcontainers' PostgresContainer would be:
    importing that module imports all of SQLAlchemy wherever it is installed (for one
    exception class), in every worker. Its readiness check (psql inside the container, once a
    second) is HostProbe's job here."""
    container = DockerContainer(image).with_exposed_ports(5432)
    container.with_env("POSTGRES_USER", user).with_env("POSTGRES_PASSWORD", password)
    return container.with_env("POSTGRES_DB", dbname)


def stop(container: DockerContainer | None) -> None:
    """Remove a container and its anonymous volumes; already gone is fine."""
    if container is None:
        return
    # Not started (nothing to remove), or the reaper or a racing cleanup got there first.
    with contextlib.suppress(Exception):
        container.get_wrapped_container().remove(force=True, v=True)


def publish_on_loopback(container: DockerContainer) -> None:
    """Publish `container`'s exposed ports on 127.0.0.1 only (a random host port each), not
    on every interface: a test Postgres with a superuser role must not be reachable from the
    network. A remote engine's ports are reached over the network, so they keep the default."""
    if not environment().engine_is_local:
        return
    # testcontainers types the values as host ports; the Docker SDK also takes (address, port).
    ports: dict[str, Any] = container.ports
    for port, host in list(ports.items()):
        if host is None:  # exposed, no host port asked for
            ports[port] = ("127.0.0.1", None)


def _launch(
    container: DockerContainer,
    identity: RunIdentity,
    role: str,
    wait: HostProbe,
    *,
    network: Network | None,
    alias: str | None,
    extra_labels: Mapping[str, str] | None,
    host_port: int | None = None,
) -> tuple[str, int, float]:
    """Label, name and start `container`, waiting with `wait`. Returns (host, port, seconds
    to ready); a half-started container is removed before the error propagates. With
    `host_port`, it runs on the engine's host network, its server listening there."""
    labels = {**identity.labels(role), **(extra_labels or {})}
    if host_port is not None:
        container.ports.clear()  # nothing to publish: the server is on the host's loopback
        # In the host's network namespace, NET_RAW would let the server read the host's
        # traffic; neither Postgres nor Redis needs it.
        container.with_kwargs(
            labels={**labels, LABEL_PORT: str(host_port)}, network_mode="host", cap_drop=["NET_RAW"]
        )
    else:
        container.with_kwargs(labels=labels)
        publish_on_loopback(container)
    container.with_name(identity.name(role))
    container.waiting_for(wait)
    if network is not None:
        container.with_network(network)
        if alias:
            container.with_network_aliases(alias)
    try:
        container.start()
    except BaseException:
        stop(container)  # a half-started server must not outlive its failure
        raise
    host, port = wait.address
    return host, port, wait.seconds


def _on_a_port(
    build: Callable[[int | None], tuple[DockerContainer, HostProbe]],
    identity: RunIdentity,
    role: str,
    *,
    on_host: bool,
    network: Network | None,
    alias: str | None,
    extra_labels: Mapping[str, str] | None,
) -> tuple[DockerContainer, str, int, float]:
    """`build(port)` started and ready: on the host network at a free loopback port (started
    again on another when a process took that port first), or with `port=None` published."""
    if on_host and network is not None:
        raise ValueError("a container on the host network cannot join another network")
    for attempt in range(1, _PORT_ATTEMPTS + 1):
        port = free_loopback_port() if on_host else None
        container, wait = build(port)
        try:
            host, mapped, ready = _launch(
                container,
                identity,
                role,
                wait,
                network=network,
                alias=alias,
                extra_labels=extra_labels,
                host_port=port,
            )
        except ReadinessError as exc:
            # Picked, then taken by someone else before the server bound it: a new port.
            if port is None or attempt == _PORT_ATTEMPTS or _PORT_TAKEN not in str(exc):
                raise
            continue
        return container, host, mapped, ready
    raise AssertionError("unreachable: the last attempt returns or raises")


def start_postgres(
    image: str,
    identity: RunIdentity,
    *,
    command: str = FAST_POSTGRES,
    scram_iterations: int | None = CHEAP_SCRAM_ITERATIONS,
    network: Network | None = None,
    alias: str | None = None,
    extra_labels: Mapping[str, str] | None = None,
    on_host: bool = False,
) -> tuple[DockerContainer, PostgresInfo]:
    """A labelled Postgres with a random role, password and database, ready for a psycopg
    connection from the host. `on_host`: on the engine's host network, on loopback only.
    `scram_iterations`: the rounds of the role's stored verifier (None: the image's own)."""
    import psycopg  # noqa: PLC0415  lazy: psycopg loads in workers that start Postgres

    user, password, dbname = f"u{_token()[:8]}", _token(), f"db_{identity.worker}".replace("-", "_")
    prepare_clients()  # testcontainers makes its client in the constructor: the engine is settled first

    def build(port: int | None) -> tuple[DockerContainer, HostProbe]:
        container = _postgres_container(image, user, password, dbname)
        listen = f" -c port={port} -c listen_addresses=127.0.0.1" if port is not None else ""
        container.with_command(command + listen)
        wait = HostProbe(
            port or 5432,
            probe,
            waited_for=f"a psycopg connection as {user} to {dbname}",
            published=port is None,
        )
        return container, wait

    def probe(host: str, port: int) -> None:
        conninfo = (
            f"host={host} port={port} user={user} password={password} dbname={dbname} connect_timeout=2"
        )
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute("SELECT 1")
            if scram_iterations is not None:  # in the first connection, before any test's
                _cheapen_password(conn, user, password, scram_iterations)

    container, host, port, ready = _on_a_port(
        build,
        identity,
        "postgres",
        on_host=on_host,
        network=network,
        alias=alias,
        extra_labels=extra_labels,
    )
    info = PostgresInfo(container.get_wrapped_container().id, host, port, user, password, dbname, ready)
    return container, info


def postgres_of(container: Any, host: str, port: int) -> PostgresInfo:
    """A running harness Postgres's connection record, from its own configuration (a kept
    container's, which no run in this process started)."""
    env = dict(item.split("=", 1) for item in container.attrs["Config"]["Env"] if "=" in item)
    return PostgresInfo(
        container.id, host, port, env["POSTGRES_USER"], env["POSTGRES_PASSWORD"], env["POSTGRES_DB"], 0.0
    )


def redis_of(container: Any, host: str, port: int) -> RedisInfo:
    """A running harness Redis's connection record, from its own command line."""
    args = list(container.attrs["Config"]["Cmd"] or [])
    password = args[args.index("--requirepass") + 1] if "--requirepass" in args else ""
    return RedisInfo(container.id, host, port, password, 0.0)


def start_redis(
    image: str,
    identity: RunIdentity,
    *,
    network: Network | None = None,
    alias: str | None = None,
    extra_labels: Mapping[str, str] | None = None,
    on_host: bool = False,
) -> tuple[DockerContainer, RedisInfo]:
    """A labelled Redis with a random password, answering PING from the host. `on_host`: on
    the engine's host network, on loopback only."""
    import redis  # noqa: PLC0415  lazy: redis loads in workers that start Redis

    password = _token()
    prepare_clients()

    def build(port: int | None) -> tuple[DockerContainer, HostProbe]:
        # As testcontainers' RedisContainer would run it (its readiness check is HostProbe's).
        listen = f" --port {port} --bind 127.0.0.1" if port is not None else ""
        container = DockerContainer(image).with_exposed_ports(6379)
        container.with_command(f"redis-server --requirepass {password}{listen}")
        wait = HostProbe(port or 6379, probe, waited_for="a Redis PING", published=port is None)
        return container, wait

    def probe(host: str, port: int) -> None:
        client = redis.Redis(host=host, port=port, password=password, socket_connect_timeout=1)
        try:
            client.ping()
        finally:
            client.close()

    container, host, port, ready = _on_a_port(
        build, identity, "redis", on_host=on_host, network=network, alias=alias, extra_labels=extra_labels
    )
    return container, RedisInfo(container.get_wrapped_container().id, host, port, password, ready)


def start_services(
    postgres_image: str,
    redis_image: str | None,
    identity: RunIdentity,
    *,
    extra_labels: Mapping[str, str] | None = None,
    on_host: bool = False,
) -> tuple[tuple[DockerContainer, PostgresInfo], tuple[DockerContainer, RedisInfo] | None]:
    """Postgres and (unless `redis_image` is None) Redis at once; if either fails, the other
    is removed before the error propagates. `on_host`: both on the engine's host network."""
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="harness-start") as pool:
        futures: list[Future[Any]] = [
            pool.submit(start_postgres, postgres_image, identity, extra_labels=extra_labels, on_host=on_host)
        ]
        if redis_image is not None:
            futures.append(
                pool.submit(start_redis, redis_image, identity, extra_labels=extra_labels, on_host=on_host)
            )
        errors: list[BaseException] = []
        results: list[Any] = []
        for future in futures:
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
    return results[0], (results[1] if redis_image is not None else None)
