"""When a container is ready, judged from the host: a testcontainers `WaitStrategy` that
polls a probe every 20 ms and, when the container never gets there, fails with what was
waited for, the last error, and the container's status and log.

The stock strategies check once a second, or from inside the container (psql in the
Postgres container); a real connection from the host, often, is both faster and the
thing the tests actually need.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from testcontainers.core.container import DockerContainer
from testcontainers.core.waiting_utils import WaitStrategy, WaitStrategyTarget

from tierharness.config import environment
from tierharness.engine.client import endpoint
from tierharness.errors import ReadinessError

__all__ = ["LOG_TAIL", "POLL_SECONDS", "HostProbe", "container_logs", "host_address"]

POLL_SECONDS = 0.02
LOG_TAIL = 60
# Between two looks at the container's status: by time, not by probes, since a probe may
# hang up to its own timeout on whatever else listens at the port.
_STATUS_SECONDS = 0.5

Probe = Callable[[str, int], None]  # (host, mapped port) -> None, or raises while not ready


def host_address(container: WaitStrategyTarget | DockerContainer) -> str:
    """Where the host reaches `container`'s published ports: on the engine's host, the one
    DOCKER_HOST (or the docker context) names; loopback for a local engine.

    Not testcontainers' answer: inside a container (a CI job's, or a machine with a
    /.dockerenv) it gives a bridge gateway's address, where nothing is published, and for
    containers on a user-defined network a local engine's gateway; traffic (load tests
    above all) must stay on loopback.
    """
    return endpoint().hostname


def container_logs(container: WaitStrategyTarget | DockerContainer, tail: int = LOG_TAIL) -> str:
    """The container's status and last `tail` log lines, for error messages."""
    try:
        wrapped = container.get_wrapped_container()
        wrapped.reload()
        raw = wrapped.logs(tail=tail).decode(errors="replace")
        return f"(container status: {wrapped.status})\n{raw}"
    except Exception as exc:  # the logs are a courtesy: never mask the real failure
        return f"(logs unavailable: {exc})"


class HostProbe(WaitStrategy):
    """Ready when `probe(host, port)` stops raising, polled from the host every 20 ms.

    `port` is the container's port (its mapping is looked up), or with `published=False`
    the port its server listens on in the engine's host network; `waited_for` says in words
    what the probe checks; `failure`, `fix` and `details` shape the error. A container
    that exits is given up on at once. `seconds` holds how long the wait took.
    """

    def __init__(
        self,
        port: int,
        probe: Probe,
        *,
        waited_for: str,
        failure: str = "never became ready",
        fix: str = "read the log above; raise HARNESS_READY_TIMEOUT if the machine is just slow",
        details: Callable[[Any], str] | None = None,
        timeout: float | None = None,
        published: bool = True,
    ) -> None:
        super().__init__()
        self.with_poll_interval(POLL_SECONDS)
        seconds = timeout if timeout is not None else environment().ready_timeout
        self.with_startup_timeout(timedelta(seconds=seconds))
        self.port = port
        self.published = published
        self.probe = probe
        self.waited_for = waited_for
        self.failure = failure
        self.fix = fix
        self.details = details
        self.seconds = 0.0
        self.address: tuple[str, int] = ("", 0)  # where the probe reached it

    def wait_until_ready(self, container: WaitStrategyTarget) -> None:
        started = time.monotonic()
        host = host_address(container)
        last: list[Exception] = []
        try:
            mapped = int(container.get_exposed_port(self.port)) if self.port and self.published else self.port
        except (ConnectionError, TimeoutError) as exc:
            # A container that exits at once (a bad setting, say) is not running when its port
            # is looked up (TimeoutError), or has lost the mapping by the time it is read
            # (ConnectionError): either is "never ready", and its log says why.
            raise self._never_ready(container, started, f"{host}:<no port {self.port}>", exc) from None
        next_status = started + _STATUS_SECONDS

        def check() -> bool:
            nonlocal next_status
            try:
                self.probe(host, mapped)
                return True
            except StopIteration:
                raise  # the probe's own "never": give up now
            except Exception as exc:  # any failure to connect just means "not yet"
                last[:] = [exc]
            if time.monotonic() >= next_status:
                next_status = time.monotonic() + _STATUS_SECONDS
                wrapped = container.get_wrapped_container()
                wrapped.reload()
                if wrapped.status in ("exited", "dead"):
                    raise StopIteration  # it will never become ready: say so at once
            return False

        if self._poll(check):
            self.seconds = time.monotonic() - started
            self.address = (host, mapped)
            return
        raise self._never_ready(container, started, f"{host}:{mapped}", last[0] if last else None)

    def _never_ready(
        self, container: WaitStrategyTarget, started: float, where: str, last: Exception | None
    ) -> ReadinessError:
        waited = time.monotonic() - started
        extra = self.details(container) if self.details else ""
        image = getattr(container, "image", "the container")
        return ReadinessError(
            f"{image} {self.failure} (waited {waited:.1f}s)\n{extra}"
            f"--- last {LOG_TAIL} lines of its log ---\n{container_logs(container)}",
            checked=f"{self.waited_for} at {where}; last error: {last if last else 'none'}",
            fix=self.fix,
        )
