"""The blue-green rehearsal: blue serving behind HAProxy with traffic flowing, then each
candidate deployed as green and either switched to or rolled back automatically.

For each candidate: start green; wait for its HEALTHCHECK and /ready; smoke it through the
proxy's second frontend; switch the proxy (one runtime-API map update); watch green for the
settle window against the paging alerts in Prometheus; drain and stop blue. A failure at any
step routes traffic back to blue (if it had moved), takes green out and removes it, and says
why, with the time from the bad signal to blue serving alone.

Everything runs on a private network; only the proxy, Prometheus and the app containers' ports
are published, on 127.0.0.1; the proxy's runtime API is a unix socket only the invoking user
can open (see proxy.py). Every container and the network carry the run's
labels, and the run's reaper removes them if the harness is killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tierharness.config import PERF_OPTIONS, Settings, child_env
from tierharness.deploy.monitor import (
    Prometheus,
    PrometheusUnavailableError,
    prometheus_config,
    rehearsal_rules,
)
from tierharness.deploy.proxy import (
    API_DIR,
    API_SOCKET,
    CONFIG_DIR,
    PORT_PUBLIC,
    PORT_SMOKE,
    RuntimeAPI,
    check_config,
)
from tierharness.deploy.report import rule_timing
from tierharness.deploy.report import write_verdict as _verdict
from tierharness.deploy.secrets import (
    SECRETS_MOUNT,
    container_user,
    hand_over,
    private_folder,
    secret_templates,
    write_secret,
)
from tierharness.deploy.timeline import Timeline
from tierharness.engine import engine_client, local_image_id
from tierharness.errors import HarnessError
from tierharness.process import start_child
from tierharness.runtime.containers import start_postgres, start_redis, stop
from tierharness.runtime.labels import RunIdentity
from tierharness.runtime.templates import render

__all__ = [
    "Outcome",
    "Rehearsal",
    "check_port_free",
    "deploy_candidate",
    "rehearsal",
    "require_image",
    "state_lock",
]


class DeployError(HarnessError):
    """The rehearsal could not run, or was refused before anything changed."""


class _Bad(Exception):
    """A bad signal from the candidate: `reason`, seen at monotonic time `at`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.at = time.monotonic()


def require_image(ref: str) -> str:
    """The image's id, or a refusal before anything changes."""
    digest = local_image_id(ref)
    if digest is None:
        raise DeployError(
            f"the candidate image {ref!r} does not exist in the engine",
            checked=f"docker image inspect {ref}",
            fix="build it first (`nox -s build`), or name an image that `docker images` lists; "
            "nothing was started or changed",
        )
    return digest


def check_port_free(port: int) -> None:
    """A fixed proxy port must be free on 127.0.0.1 before anything starts."""
    if not port:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise DeployError(
                f"port {port} on 127.0.0.1 is already in use: {exc.strerror}",
                checked=f"bind 127.0.0.1:{port} ([tool.harness.deploy] proxy-port)",
                fix="stop what listens there, or set proxy-port = 0 for a free port; nothing was started",
            ) from None


@dataclass
class Outcome:
    candidate: str
    image: str
    deployed: bool
    reason: str = ""
    signal_after_switch: float | None = None
    rollback_seconds: float | None = None
    switch_at: float | None = None  # wall clock
    drained_at: float | None = None  # wall clock
    rolled_back_at: float | None = None  # wall clock
    retries: int = 0  # requests the proxy sent again while this candidate was deployed


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
        from tierharness.deploy.timeline import _history

        rows = _history(self.folder / "locust" / "stats_stats_history.csv")
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


def _get(url: str, headers: Mapping[str, str] | None = None, timeout: float = 5.0) -> tuple[int, float]:
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


def _wait(condition: Callable[[], bool], timeout: float, poll: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(poll)
    return False


def _health(container: Any) -> tuple[str, str]:
    """(Docker's health status, the last probe's output)."""
    container.reload()
    state = container.attrs.get("State", {})
    if state.get("Status") in ("exited", "dead"):
        return "exited", f"exit code {state.get('ExitCode')}"
    health = state.get("Health") or {}
    log = health.get("Log") or []
    return str(health.get("Status", "none")), (log[-1].get("Output", "").strip()[:200] if log else "")


def _wait_healthy(container: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, output = _health(container)
        if status == "healthy":
            return
        if status in ("unhealthy", "exited"):
            logs = container.logs(tail=5).decode(errors="replace").strip()
            raise _Bad(f"green is {status} (its HEALTHCHECK: {output or 'no output'}; log: {logs[-300:]})")
        time.sleep(0.1)
    raise _Bad(f"green did not become healthy within {timeout:g}s")


# --------------------------------------------------------------------------- set-up


def _app_environment(
    settings: Settings, pg: Any, rd: Any, api_keys: Mapping[str, str], secrets_dir: Path
) -> dict[str, str]:
    """The service's environment from [tool.harness.stack.env]; secrets as files in
    `secrets_dir` (mounted read-only), passed as `NAME_FILE`, never as values."""
    values = {
        "postgres": SimpleNamespace(
            user=pg.user, password=pg.password, dbname=pg.dbname, host="postgres", port=5432,
            url=f"postgresql://{pg.user}:{pg.password}@postgres:5432/{pg.dbname}",
        ),
        "redis": SimpleNamespace(
            password=rd.password, host="redis", port=6379, url=f"redis://:{rd.password}@redis:6379/0"
        ),
        "api_keys": ",".join(f"{name}:{key}" for name, key in api_keys.items()),
    }  # fmt: skip
    plain, secret = secret_templates(settings.stack.env)
    env = render(plain, values, where="[tool.harness.stack.env]")
    private_folder(secrets_dir)
    for name, value in render(secret, values, where="[tool.harness.stack.env]").items():
        write_secret(secrets_dir / name.lower(), value.replace(",", "\n"))
        env[f"{name}_FILE"] = f"{SECRETS_MOUNT}/{name.lower()}"
    env["SECRETS_RELOAD_MS"] = str(int(settings.deploy.reload_seconds * 1000))
    return env


@contextlib.contextmanager
def rehearsal(
    settings: Settings,
    identity: RunIdentity,
    blue_image: str,
    *,
    folder: Path,
    timeline: Timeline,
    users: int,
    instances: int,
    load: Callable[[Rehearsal], None] | None = None,
) -> Iterator[Rehearsal]:
    """Blue serving behind the proxy, Prometheus scraping it, Locust loading it; all removed
    on the way out (Ctrl-C included)."""
    from testcontainers.core.network import Network

    cfg = settings.deploy
    check_port_free(cfg.proxy_port)
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "proxy").mkdir(parents=True)
    (folder / "prometheus").mkdir(parents=True)
    proxy_image, prom_image = settings.image("haproxy").local, settings.image("prometheus").local
    for image in (proxy_image, prom_image, blue_image):
        require_image(image)

    # The proxy's configuration is checked before anything starts: a bad one changes nothing.
    port = settings.stack.port
    from tierharness.deploy.proxy import haproxy_config

    (folder / "proxy" / "haproxy.cfg").write_text(haproxy_config(port), encoding="utf-8")
    (folder / "proxy" / "active.map").write_text("active blue\n", encoding="utf-8")
    for path in (folder / "proxy", folder / "prometheus"):
        path.chmod(0o755)
    for path in (folder / "proxy").iterdir():
        path.chmod(0o644)
    check_config(proxy_image, identity, folder / "proxy")
    api_dir = private_folder(folder / "api")
    timeline.mark("proxy configuration checked (haproxy -c)")

    client = engine_client()
    network = Network(docker_network_kw={"labels": identity.labels("network"), "driver": "bridge"})
    network.name = identity.name("deploy-net")
    network.create()
    started: list[Any] = []
    reh: Rehearsal | None = None
    try:
        pg_container, pg = start_postgres(
            settings.image("postgres").local, identity, network=network, alias="postgres"
        )
        started.append(pg_container)
        rd_container, rd = start_redis(
            settings.image("redis").local, identity, network=network, alias="redis"
        )
        started.append(rd_container)
        names = (*settings.stack.api_key_names, *(f"load-{n}" for n in range(1, users + 1)))
        api_keys = {name: secrets.token_hex(16) for name in names}
        env = _app_environment(settings, pg, rd, api_keys, folder / "secrets")
        hand_over(
            folder / "secrets", (client.images.get(blue_image).attrs.get("Config") or {}).get("User") or ""
        )
        timeline.mark("postgres and redis ready", f"{pg.ready_seconds:.1f}s, {rd.ready_seconds:.1f}s")

        # Prometheus: the paging rules, with the rehearsal's hold (see monitor.rehearsal_rules).
        rules = rehearsal_rules((settings.root / cfg.alerts).read_text(encoding="utf-8"), cfg.alert_hold)
        (folder / "prometheus" / "rules.yml").write_text(rules, encoding="utf-8")
        # Every app container the run will start is a target from the start: Prometheus applies
        # changed targets only every 5 s, and the rehearsal must see green at its first scrape.
        # Instances are numbered, never reused, so a candidate never inherits another's rates.
        port = settings.stack.port
        targets = {f"app-{n}": f"{identity.name(f'app-{n}')}:{port}" for n in range(1, instances + 1)}
        config = prometheus_config(targets, interval=cfg.scrape_interval)
        (folder / "prometheus" / "prometheus.yml").write_text(config, encoding="utf-8")
        for path in (folder / "prometheus").glob("*.yml"):
            path.chmod(0o644)

        # An object to hang containers on before the proxy exists; filled in below.
        reh = Rehearsal(
            settings, identity, folder, timeline, client, network,
            RuntimeAPI(api_dir / API_SOCKET), "", "", Prometheus(""), env, api_keys,
        )  # fmt: skip
        reh.postgres = pg
        blue, blue_instance = reh.start_app(blue_image, "blue", fast_health=False)
        # The proxy and Prometheus start while blue does: neither needs it to be up yet.
        # As the invoking user, so that the runtime API's socket (0600) is that user's alone.
        proxy = reh.run_container(
            proxy_image,
            "proxy",
            user=f"{os.getuid()}:{os.getgid()}",
            volumes={
                str(folder / "proxy"): {"bind": CONFIG_DIR, "mode": "ro"},
                str(api_dir): {"bind": API_DIR, "mode": "rw"},
            },
            ports={
                f"{PORT_PUBLIC}/tcp": ("127.0.0.1", cfg.proxy_port or None),
                f"{PORT_SMOKE}/tcp": ("127.0.0.1", None),
            },
        )
        prom = reh.run_container(
            prom_image,
            "prometheus",
            volumes={str(folder / "prometheus"): {"bind": "/etc/prometheus", "mode": "ro"}},
            ports={"9090/tcp": ("127.0.0.1", None)},
        )
        try:
            _wait_healthy(blue, settings.stack.health_timeout)
        except _Bad as bad:
            raise DeployError(
                f"blue ({blue_image}) did not start: {bad.reason}",
                checked="the current image, before any candidate",
                fix="the current image must be healthy before a rehearsal: run `nox -s e2e`",
            ) from None
        timeline.mark("blue healthy", blue_image)

        reh.proxy_url = f"http://127.0.0.1:{reh.published(proxy, PORT_PUBLIC)}"
        reh.smoke_url = f"http://127.0.0.1:{reh.published(proxy, PORT_SMOKE)}"
        reh.prometheus = Prometheus(f"http://127.0.0.1:{reh.published(prom, 9090)}")
        if not _wait(lambda: _api_ready(reh), 15):
            raise DeployError(
                "the proxy's runtime API never answered",
                checked=str(reh.api.path),
                fix=f"read the proxy's log: docker logs {identity.name('proxy')}",
            )
        reh.api.set_address("blue", reh.address(blue), port)
        reh.api.set_state("blue", "ready")
        if not reh.api.wait_status("blue", "UP", 10):
            raise DeployError(
                "the proxy never saw blue as UP",
                checked="show stat (be_blue/blue)",
                fix="read the proxy's log",
            )
        timeline.mark("proxy serving blue", reh.proxy_url)
        if load is not None:
            load(reh)  # Locust takes seconds to start: it does so while Prometheus comes up
        if not _wait(lambda: _prometheus_has(reh.prometheus, blue_instance), 20, poll=0.25):
            raise DeployError(
                "Prometheus never scraped blue",
                checked=f"{reh.prometheus.url}: up{{instance={blue_instance!r}}}",
                fix=f"read Prometheus's log: docker logs {identity.name('prometheus')}",
            )
        timeline.mark("prometheus scraping blue", f"rules: {', '.join(reh.prometheus.rules_loaded())}")
        yield reh
    finally:
        if reh is not None:
            reh.close()
        for container in reversed(started):
            stop(container)
        with contextlib.suppress(Exception):
            network.remove()


def _api_ready(reh: Rehearsal) -> bool:
    try:
        reh.api.stats()
    except HarnessError:
        return False
    return True


def _prometheus_clean(prom: Prometheus, instance: str) -> bool:
    """Scraped, and no alert firing for `instance`."""
    try:
        return prom.samples(instance, "1m") > 0 and not prom.firing(instance)
    except PrometheusUnavailableError:
        return False


def _prometheus_has(prom: Prometheus, instance: str) -> bool:
    try:
        return prom.samples(instance, "1m") > 0
    except PrometheusUnavailableError:
        return False


# --------------------------------------------------------------------------- one candidate


def _smoke(reh: Rehearsal, count: int) -> None:
    key = next(iter(reh.api_keys.values()))
    paths = ["/health", "/ready", "/v1/articles?limit=1"]
    for n in range(count):
        path = paths[n % len(paths)]
        status, _ = _get(f"{reh.smoke_url}{path}", {"X-API-Key": key})
        if status != 200:
            raise _Bad(f"smoke check through the second backend: GET {path} answered {status or 'nothing'}")


def _settle(reh: Rehearsal, instance: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            firing = reh.prometheus.firing(instance)
        except PrometheusUnavailableError as exc:
            raise _Bad(f"Prometheus is unreachable, so green cannot be judged healthy: {exc.what}") from None
        if firing:
            raise _Bad(f"alert {', '.join(firing)} firing for green in Prometheus")
        status, output = _health(reh.apps[_slot_of(reh, instance)])
        if status in ("unhealthy", "exited"):
            raise _Bad(f"green became {status} ({output})")
        time.sleep(0.25)
    try:
        scraped = reh.prometheus.samples(instance, f"{max(1, int(seconds))}s")
    except PrometheusUnavailableError as exc:
        raise _Bad(f"Prometheus is unreachable, so green cannot be judged healthy: {exc.what}") from None
    if scraped == 0:
        raise _Bad("Prometheus holds no data for green over the settle window: refusing to call it healthy")


def _slot_of(reh: Rehearsal, instance: str) -> str:
    return next(slot for slot, name in reh.instances.items() if name == instance)


def deploy_candidate(reh: Rehearsal, image: str, label: str) -> Outcome:
    """Deploy `image` as green; switch to it or roll back. Never leaves the proxy half-switched:
    the switch is one map update, undone on any failure, Ctrl-C included."""
    cfg = reh.settings.deploy
    tl = reh.timeline
    old = reh.active
    slot = "green" if old == "blue" else "blue"
    outcome = Outcome(label, image, deployed=False)
    switched: float | None = None  # monotonic instant of the switch
    retried = reh.api.retries()
    tl.mark(f"[{label}] start green", image)
    try:
        green, instance = reh.start_app(image, slot)
        _wait_healthy(green, reh.settings.stack.health_timeout)
        status, _ = _get(f"http://127.0.0.1:{reh.published(green, reh.settings.stack.port)}/ready")
        if status != 200:
            raise _Bad(f"green is healthy but GET /ready answered {status or 'nothing'}")
        tl.mark(f"[{label}] green healthy and ready", f"HEALTHCHECK and /ready, instance {instance}")
        reh.api.set_address(slot, reh.address(green), reh.settings.stack.port)
        reh.api.set_state(slot, "ready")
        if not reh.api.wait_status(slot, "UP", 10):
            raise _Bad("the proxy's health checks never saw green UP")
        _smoke(reh, cfg.smoke_requests)
        tl.mark(f"[{label}] smoke check passed", f"{cfg.smoke_requests} requests through the second frontend")
        # Its target was declared before it existed, so InstanceDown may still fire from then:
        # green is switched to only once Prometheus scrapes it and no alert fires for it.
        if not _wait(lambda: _prometheus_clean(reh.prometheus, instance), 10, poll=0.2):
            if not _prometheus_has(reh.prometheus, instance):
                raise _Bad("Prometheus has no data for green: refusing to switch to what cannot be watched")
            raise _Bad(
                f"alert {', '.join(reh.prometheus.firing(instance))} firing for green before the switch"
            )
        reh.api.switch(slot)
        switched = time.monotonic()
        tl.mark(
            f"[{label}] SWITCH: proxy routes to green", "one runtime-API map update", name=f"{label}:switch"
        )
        outcome.switch_at = tl.marks[f"{label}:switch"]
        _settle(reh, instance, cfg.settle_seconds)
        tl.mark(f"[{label}] settled", f"no alert firing for green over {cfg.settle_seconds:g}s")
        reh.api.set_state(old, "drain")
        drained = reh.api.wait_idle(old, cfg.drain_timeout)
        reh.api.set_state(old, "maint")
        reh.remove(reh.apps.pop(old))
        reh.instances.pop(old)
        reh.active = slot
        tl.mark(
            f"[{label}] blue drained and stopped",
            "no session left" if drained else f"sessions still open after {cfg.drain_timeout:g}s",
            name=f"{label}:drained",
        )
        outcome.drained_at = tl.marks[f"{label}:drained"]
        outcome.deployed = True
        outcome.retries = reh.api.retries() - retried
        return outcome
    except _Bad as bad:
        outcome.reason = bad.reason
        if switched is not None:
            reh.api.switch(old)
            outcome.signal_after_switch = round(bad.at - switched, 2)
        with contextlib.suppress(HarnessError):
            reh.api.set_state(slot, "maint")
            reh.api.wait_idle(slot, cfg.drain_timeout)
        outcome.rollback_seconds = round(time.monotonic() - bad.at, 2)
        tl.mark(
            f"[{label}] ROLLED BACK: blue serving alone",
            f"{bad.reason}; {outcome.rollback_seconds:.2f}s after the bad signal",
            name=f"{label}:rolled-back",
        )
        outcome.rolled_back_at = tl.marks[f"{label}:rolled-back"]
        with contextlib.suppress(HarnessError):
            outcome.retries = reh.api.retries() - retried
        if slot in reh.apps:
            reh.remove(reh.apps.pop(slot), timeout=2)
            reh.instances.pop(slot, None)
        return outcome
    except BaseException:
        # Ctrl-C or an error of the harness itself: traffic goes back to blue before anything else.
        if switched is not None:
            with contextlib.suppress(Exception):
                reh.api.switch(old)
        raise


# --------------------------------------------------------------------------- the command


def run_rehearsal(
    settings: Settings,
    wanted: list[str],
    *,
    expect_rollback: bool = False,
    log: Callable[[str], None] = print,
) -> int:
    """`harness deploy`: the whole rehearsal; returns the exit code.

    Passes when every candidate expected to be good was switched to with 0 failed requests
    and the perf thresholds met; with `expect_rollback`, when every broken one rolled back.
    """
    from tierharness.build.image import build_image
    from tierharness.deploy.candidates import BROKEN, CURRENT, broken_recipes, resolve_candidates
    from tierharness.runtime.labels import new_run_id
    from tierharness.runtime.reaper import spawn_reaper

    cfg = settings.deploy
    recipes = broken_recipes(settings)
    # Refused before anything is built or started: a candidate that does not exist, a busy port.
    for item in wanted:
        if item not in (CURRENT, BROKEN, *recipes):
            require_image(item)
    check_port_free(cfg.proxy_port)
    built = build_image(settings, log=log)
    candidates = resolve_candidates(settings, wanted, built.image, log)

    run_id = settings_run_id() or new_run_id("deploy-")
    identity = RunIdentity(run_id, "deploy", os.getpid())
    spawn_reaper(run_id, os.getpid(), settings.state_dir / "reaper.log")
    from tierharness.supply.run import image_to_run

    # Verified, the published image by digest from the registry: a failed verification starts nothing.
    blue = image_to_run(settings, built.image, identity, log)
    if blue != built.image:
        candidates = [
            (label, blue if image == built.image else image, bad) for label, image, bad in candidates
        ]
    folder = settings.build_dir / "deploy"
    with _one_rehearsal_at_a_time(settings, log):
        timeline = Timeline()
        outcomes: list[tuple[Outcome, bool]] = []
        results: dict[str, Any] | None = None
        retries = 0
        history = folder / "locust" / "stats_stats_history.csv"
        timeline.mark("rehearsal starts", f"run {run_id}; blue = {blue}")
        with rehearsal(
            settings, identity, blue, folder=folder, timeline=timeline, users=cfg.users,
            instances=1 + len(candidates), load=lambda r: r.start_locust(cfg.users),
        ) as reh:  # fmt: skip
            if not _wait(lambda: reh.locust_requests() >= 20, 60, poll=0.25):
                raise DeployError(
                    "Locust made no requests through the proxy",
                    checked=f"{folder / 'locust' / 'locust.log'}",
                    fix="read Locust's log",
                )
            timeline.mark("load flowing through the proxy", f"{cfg.users} Locust users")
            for label, image, broken in candidates:
                outcomes.append((deploy_candidate(reh, image, label), broken))
            time.sleep(2.0)  # requests after the last switch, on whatever serves now
            results = reh.stop_locust()
            retries = reh.api.retries()
            timeline.mark("load stopped", "Locust's gate has judged the run")
            serving = reh.active
            status, _ = _get(f"{reh.proxy_url}/health")
            timeline.mark(
                "after the rehearsal", f"proxy routes to {serving}; GET /health through it: {status}"
            )
        timeline.mark("everything removed")
        return _verdict(
            timeline,
            outcomes,
            results,
            history,
            folder,
            expect_rollback=expect_rollback,
            limit=cfg.rollback_limit,
            timing=rule_timing(settings),
            slow_ms=settings.perf.p95_ms,
            retries=retries,
        )


@contextlib.contextmanager
def state_lock(
    path: Path,
    busy: HarnessError,
    *,
    wait: float = 0.0,
    waiting: str = "",
    log: Callable[[str], None] = print,
) -> Iterator[None]:
    """`path` (a file lock in the state folder) held for the block. Held by another process:
    with `wait`, say `waiting` and wait up to that many seconds; then (or at once) raise `busy`.
    A killed holder releases it with its process."""
    from filelock import FileLock, Timeout

    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if not wait:
            raise busy from None
        log(waiting)
        try:
            lock.acquire(timeout=wait)
        except Timeout:
            raise busy from None
    try:
        yield
    finally:
        lock.release()


def _one_rehearsal_at_a_time(
    settings: Settings, log: Callable[[str], None]
) -> contextlib.AbstractContextManager[None]:
    """Rehearsals of one checkout share build/deploy (the proxy's and Prometheus's files, the
    timeline): a second one waits for the first instead of deleting its files under it."""
    path = settings.state_dir / "deploy.lock"
    busy = DeployError(
        f"another deploy rehearsal held {path} for {_REHEARSAL_WAIT:g}s",
        checked=f"the lock {path}",
        fix="wait for it to finish (or stop it); a killed one releases the lock with its process",
    )
    waiting = f"another deploy rehearsal of this checkout is running; waiting for it ({path})"
    return state_lock(path, busy, wait=_REHEARSAL_WAIT, waiting=waiting, log=log)


_REHEARSAL_WAIT = 900.0  # seconds: longer than any rehearsal


def settings_run_id() -> str | None:
    from tierharness.config import environment

    return environment().run_id
