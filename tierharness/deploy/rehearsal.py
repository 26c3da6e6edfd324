"""The running rehearsal: what it started (services, proxy, Prometheus, the app containers
by slot) and the Locust load through the proxy; `close` removes all of it."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tierharness.config import PERF_OPTIONS, Settings, child_env
from tierharness.deploy.monitor import Prometheus
from tierharness.deploy.proxy import RuntimeAPI
from tierharness.deploy.secrets import SECRETS_MOUNT, container_user
from tierharness.deploy.timeline import Timeline, locust_history
from tierharness.engine.labels import RunIdentity
from tierharness.process import start_child

__all__ = ["Rehearsal"]


@dataclass
class Rehearsal:
    """The running rehearsal: services, proxy, Prometheus, the active app and Locust."""

    settings: Settings
    identity: RunIdentity
    folder: Path
    timeline: Timeline
    client: Any
    network: Any
    api: RuntimeAPI
    proxy_url: str
    smoke_url: str
    prometheus: Prometheus
    app_env: dict[str, str]
    api_keys: dict[str, str] = field(repr=False)
    containers: list[Any] = field(default_factory=list)
    apps: dict[str, Any] = field(default_factory=dict)  # slot -> container
    instances: dict[str, str] = field(default_factory=dict)  # slot -> Prometheus instance label
    active: str = "blue"
    serial: int = 0
    locust: subprocess.Popen[bytes] | None = None
    postgres: Any = None  # PostgresInfo: where the host reaches the database (rotation)

    # ----------------------------------------------------------------- containers

    def run_container(self, image: str, role: str, **kwargs: Any) -> Any:
        container = self.client.containers.run(
            image,
            detach=True,
            name=self.identity.name(role),
            labels=self.identity.labels(role),
            network=self.network.name,
            **kwargs,
        )
        self.containers.append(container)
        return container

    def remove(self, container: Any, timeout: int = 10) -> None:
        with contextlib.suppress(Exception):
            container.stop(timeout=timeout)
        with contextlib.suppress(Exception):
            container.remove(force=True, v=True)
        if container in self.containers:
            self.containers.remove(container)

    def start_app(self, image: str, slot: str, *, fast_health: bool = True) -> tuple[Any, str]:
        """An app container; a candidate's HEALTHCHECK runs every `health-interval` (a rehearsal
        cannot wait 5 s between probes), blue's at the image's own pace (each probe starts a
        Python process: on two cores, that is load the measured traffic would feel)."""
        self.serial += 1
        instance = f"app-{self.serial}"
        port = self.settings.stack.port
        interval = int(self.settings.deploy.health_interval * 1e9)
        fast = {"interval": interval, "timeout": 2 * 10**9, "retries": 2, "start_period": 8 * 10**9}
        container = self.run_container(
            image,
            instance,
            environment=self.app_env,
            volumes={str(self.folder / "secrets"): {"bind": SECRETS_MOUNT, "mode": "ro"}},
            # The secrets are 0600, the invoking user's: the service reads them as that user.
            user=container_user(),
            ports={f"{port}/tcp": ("127.0.0.1", None)},
            **({"healthcheck": fast} if fast_health else {}),
        )
        self.apps[slot] = container
        self.instances[slot] = instance
        return container, instance

    def address(self, container: Any) -> str:
        container.reload()
        return str(container.attrs["NetworkSettings"]["Networks"][self.network.name]["IPAddress"])

    def published(self, container: Any, port: int) -> int:
        container.reload()
        return int(container.attrs["NetworkSettings"]["Ports"][f"{port}/tcp"][0]["HostPort"])

    # ----------------------------------------------------------------- load

    def start_locust(self, users: int, keys_file: Path | None = None) -> None:
        """Locust through the proxy, one key per user (from `keys_file` when given, re-read
        by the locustfile when it changes: that is how clients move to rotated keys)."""
        perf = self.settings.perf
        out = self.folder / "locust"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        gate = [a for o in PERF_OPTIONS if o.gate for a in (f"--{o.name}", str(getattr(perf, o.attr)))]
        argv = [
            sys.executable, "-m", "locust", "-f", str(self.settings.root / perf.locustfile), "--headless",
            "--host", self.proxy_url, "--users", str(users), "--spawn-rate", str(perf.spawn_rate),
            "--run-time", "30m", "--stop-timeout", "5", "--only-summary", "--loglevel", "WARNING",
            "--csv", str(out / "stats"), "--exit-code-on-error", "0",
            *gate, "--harness-results", str(out / "results.json"),
        ]  # fmt: skip
        keys = [self.api_keys[n] for n in self.api_keys if n.startswith("load-")]
        given = (
            {"HARNESS_PERF_API_KEYS_FILE": str(keys_file)}
            if keys_file
            else {"HARNESS_PERF_API_KEYS": ",".join(keys)}
        )
        env = child_env({**given, "HARNESS_PERF_SEED": "40"})
        self.locust = start_child(argv, log_path=out / "locust.log", env=env)

    def locust_requests(self) -> int:
        rows = locust_history(self.folder / "locust" / "stats_stats_history.csv")
        return rows[-1][1] if rows else 0

    def stop_locust(self) -> dict[str, Any] | None:
        if self.locust is None:
            return None
        if self.locust.poll() is None:
            self.locust.send_signal(signal.SIGTERM)  # Locust quits cleanly: the gate writes its results
            try:
                self.locust.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.locust.kill()
        self.locust = None
        results = self.folder / "locust" / "results.json"
        return json.loads(results.read_text()) if results.exists() else None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop_locust()
        # The rehearsal is over: nothing left to drain, so no graceful stops (HAProxy's soft stop
        # alone would wait for Locust's idle connections).
        for container in reversed(list(self.containers)):
            with contextlib.suppress(Exception):
                container.remove(force=True, v=True)
        self.containers.clear()
        with contextlib.suppress(Exception):
            self.network.remove()
