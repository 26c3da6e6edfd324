"""The built image running beside its own Postgres and Redis on a private network:
what the e2e and performance tiers test over HTTP.

The service's environment comes from `[tool.harness.stack.env]`, a table of
templates filled with what the harness started (`{postgres.user}`, `{redis.password}`,
`{api_keys}`, ...): the harness never needs to know what the variables mean.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network

from tierharness.config import StackConfig
from tierharness.engine.client import prepare_clients
from tierharness.engine.labels import RunIdentity
from tierharness.errors import HarnessError
from tierharness.runtime.containers import (
    PostgresInfo,
    RedisInfo,
    publish_on_loopback,
    start_postgres,
    start_redis,
    stop,
)
from tierharness.runtime.readiness import HostProbe, container_logs, host_address
from tierharness.runtime.templates import render

__all__ = ["Stack", "running_stack", "start_stack"]


@dataclass
class Stack:
    """The running stack: what the e2e and perf tiers reach over HTTP. API keys are random
    per run and never shown in a repr."""

    identity: RunIdentity
    image: str
    network: Network
    postgres_container: DockerContainer
    postgres: PostgresInfo
    redis_container: DockerContainer
    redis: RedisInfo
    app: DockerContainer
    api_keys: dict[str, str] = field(repr=False)
    config: StackConfig = field(default_factory=StackConfig)
    health_seconds: float = 0.0

    @property
    def base_url(self) -> str:
        return f"http://{host_address(self.app)}:{self.app.get_exposed_port(self.config.port)}"

    def app_logs(self) -> str:
        return container_logs(self.app)

    def wait_healthy(self) -> float:
        """Wait for the container's own HEALTHCHECK to report healthy."""
        return _wait_healthy(self.app, self.config.health_timeout)

    def restart_app(self) -> float:
        self.app.get_wrapped_container().restart(timeout=10)
        return self.wait_healthy()

    def stop_postgres(self) -> None:
        self.postgres_container.get_wrapped_container().stop(timeout=10)

    def start_postgres(self) -> None:
        self.postgres_container.get_wrapped_container().start()

    def close(self) -> None:
        for container in (self.app, self.redis_container, self.postgres_container):
            stop(container)
        with contextlib.suppress(Exception):
            self.network.remove()


def _wait_healthy(container: DockerContainer, timeout: float) -> float:
    """Wait for the container's own HEALTHCHECK to say healthy; seconds it took."""
    wrapped = container.get_wrapped_container()
    if not (wrapped.attrs.get("Config") or {}).get("Healthcheck"):
        raise HarnessError(
            f"{container.image} has no HEALTHCHECK",
            checked="Config.Healthcheck of the running container",
            fix="add a HEALTHCHECK to the production stage",
        )

    def healthy(_host: str, _port: int) -> None:
        wrapped.reload()
        state = wrapped.attrs.get("State", {})
        status = (state.get("Health") or {}).get("Status", "unknown")
        if status == "unhealthy":
            raise StopIteration  # the container's own verdict: no point waiting longer
        if status != "healthy":
            raise _NotYet(f"health status {status!r}")

    wait = HostProbe(
        0,
        healthy,
        waited_for="the container's own HEALTHCHECK status (docker inspect State.Health)",
        failure="did not become healthy",
        fix="read the log above; the service may be misconfigured or its dependencies unreachable",
        details=_last_probe,
        timeout=timeout,
    )
    wait.wait_until_ready(container)
    return wait.seconds


class _NotYet(Exception):
    """Not healthy yet."""


def _last_probe(container: Any) -> str:
    wrapped = container.get_wrapped_container()
    health = wrapped.attrs.get("State", {}).get("Health") or {}
    probes = health.get("Log") or []
    last = probes[-1].get("Output", "").strip() if probes else "(no probe ran)"
    return f"health status {health.get('Status', 'unknown')!r}\n--- last healthcheck output ---\n{last}\n"


@dataclass(frozen=True)
class _InNetwork:
    """What the service sees: names on the private network, not host ports."""

    user: str = ""
    password: str = field(default="", repr=False)  # reprs end up in test reports
    dbname: str = ""
    host: str = ""
    port: int = 0


def start_stack(
    image: str, postgres_image: str, redis_image: str, identity: RunIdentity, config: StackConfig
) -> Stack:
    """Network, Postgres and Redis, then the service; half-started stacks are torn down."""
    prepare_clients()  # before testcontainers makes its first client: the engine is settled
    network = Network(docker_network_kw={"labels": identity.labels("network"), "driver": "bridge"})
    network.name = identity.name("net")
    network.create()
    started: list[DockerContainer] = []
    try:
        pg_container, pg = start_postgres(postgres_image, identity, network=network, alias="postgres")
        started.append(pg_container)
        rd_container, rd = start_redis(redis_image, identity, network=network, alias="redis")
        started.append(rd_container)
        api_keys = {name: secrets.token_hex(16) for name in config.api_key_names}
        values = {
            "postgres": _InNetwork(pg.user, pg.password, pg.dbname, "postgres", 5432),
            "redis": _InNetwork(password=rd.password, host="redis", port=6379),
            "api_keys": ",".join(f"{name}:{key}" for name, key in api_keys.items()),
        }
        app = DockerContainer(image)
        app.with_exposed_ports(config.port)
        publish_on_loopback(app)
        for key, value in render(config.env, values, where="[tool.harness.stack.env]").items():
            app.with_env(key, value)
        app.with_network(network).with_network_aliases("app")
        app.with_name(identity.name("app"))
        app.with_kwargs(labels=identity.labels("app"))
        app.start()
        started.append(app)
        stack = Stack(identity, image, network, pg_container, pg, rd_container, rd, app, api_keys, config)
        stack.health_seconds = stack.wait_healthy()
        return stack
    except BaseException:
        for container in reversed(started):
            stop(container)
        with contextlib.suppress(Exception):
            network.remove()
        raise


@contextlib.contextmanager
def running_stack(
    image: str, postgres_image: str, redis_image: str, identity: RunIdentity, config: StackConfig
) -> Iterator[Stack]:
    stack = start_stack(image, postgres_image, redis_image, identity, config)
    try:
        yield stack
    finally:
        stack.close()
