"""Probes of a service's health, as the rehearsal judges it: a GET on loopback, Docker's
HEALTHCHECK, Prometheus's samples and alerts, and the bad signal a failed probe raises."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from tierharness.deploy.monitor import Prometheus, PrometheusUnavailableError

__all__ = [
    "BadSignal",
    "container_health",
    "get",
    "prometheus_clean",
    "prometheus_has",
    "wait_healthy",
    "wait_until",
]


class BadSignal(Exception):
    """A bad signal from the candidate: `reason`, seen at monotonic time `at`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.at = time.monotonic()


def get(url: str, headers: Mapping[str, str] | None = None, timeout: float = 5.0) -> tuple[int, float]:
    """(status, seconds) of a GET on loopback, never through a proxy from the environment."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, headers=dict(headers or {}))  # noqa: S310 - loopback only
    started = time.monotonic()
    try:
        with opener.open(request, timeout=timeout) as response:
            response.read()
            return int(response.status), time.monotonic() - started
    except urllib.error.HTTPError as exc:
        return int(exc.code), time.monotonic() - started
    except OSError:
        return 0, time.monotonic() - started


def wait_until(condition: Callable[[], bool], timeout: float, poll: float = 0.1) -> bool:
    """Whether `condition` held within `timeout` seconds, asked every `poll` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(poll)
    return False


def container_health(container: Any) -> tuple[str, str]:
    """(Docker's health status, the last probe's output)."""
    container.reload()
    state = container.attrs.get("State", {})
    if state.get("Status") in ("exited", "dead"):
        return "exited", f"exit code {state.get('ExitCode')}"
    health = state.get("Health") or {}
    log = health.get("Log") or []
    return str(health.get("Status", "none")), (log[-1].get("Output", "").strip()[:200] if log else "")


def wait_healthy(container: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, output = container_health(container)
        if status == "healthy":
            return
        if status in ("unhealthy", "exited"):
            logs = container.logs(tail=5).decode(errors="replace").strip()
            raise BadSignal(
                f"green is {status} (its HEALTHCHECK: {output or 'no output'}; log: {logs[-300:]})"
            )
        time.sleep(0.1)
    raise BadSignal(f"green did not become healthy within {timeout:g}s")


def prometheus_clean(prom: Prometheus, instance: str) -> bool:
    """Scraped, and no alert firing for `instance`."""
    try:
        return prom.samples(instance, "1m") > 0 and not prom.firing(instance)
    except PrometheusUnavailableError:
        return False


def prometheus_has(prom: Prometheus, instance: str) -> bool:
    try:
        return prom.samples(instance, "1m") > 0
    except PrometheusUnavailableError:
        return False
