"""The stack a rehearsal starts from: blue serving behind HAProxy, Prometheus scraping it,
Locust loading it, on a private network; all removed on the way out (Ctrl-C included).

Only the proxy, Prometheus and the app containers' ports are published, on 127.0.0.1; the
proxy's runtime API is a unix socket only the invoking user can open (see proxy.py). Every
container and the network carry the run's labels, and the run's reaper removes them if the
harness is killed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from testcontainers.core.network import Network

from tierharness.config import Settings
from tierharness.deploy.monitor import Prometheus, prometheus_config, rehearsal_rules
from tierharness.deploy.preflight import DeployError, check_port_free, require_image
from tierharness.deploy.probes import BadSignal, prometheus_has, wait_healthy, wait_until
from tierharness.deploy.proxy import (
    API_DIR,
    API_SOCKET,
    CONFIG_DIR,
    PORT_PUBLIC,
    PORT_SMOKE,
    RuntimeAPI,
    check_config,
    haproxy_config,
)
from tierharness.deploy.rehearsal import Rehearsal
from tierharness.deploy.secrets import (
    SECRETS_MOUNT,
    hand_over,
    private_folder,
    secret_templates,
    write_secret,
)
from tierharness.deploy.timeline import Timeline
from tierharness.engine.client import engine_client
from tierharness.engine.labels import RunIdentity
from tierharness.errors import HarnessError
from tierharness.runtime.containers import start_postgres, start_redis, stop
from tierharness.runtime.templates import render

__all__ = ["app_environment", "rehearsal"]


def app_environment(
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
    check_port_free(settings.deploy.proxy_port)
    proxy_image, prom_image = settings.image("haproxy").local, settings.image("prometheus").local
    api_dir = _write_proxy_files(settings, identity, folder, (proxy_image, prom_image, blue_image))
    timeline.mark("proxy configuration checked (haproxy -c)")

    client = engine_client()
    network = Network(docker_network_kw={"labels": identity.labels("network"), "driver": "bridge"})
    network.name = identity.name("deploy-net")
    network.create()
    started: list[Any] = []
    reh: Rehearsal | None = None
    try:
        pg, rd = _start_services(settings, identity, network, started)
        api_keys = {name: secrets.token_hex(16) for name in _key_names(settings, users)}
        env = app_environment(settings, pg, rd, api_keys, folder / "secrets")
        hand_over(folder / "secrets", _image_user(client, blue_image))
        timeline.mark("postgres and redis ready", f"{pg.ready_seconds:.1f}s, {rd.ready_seconds:.1f}s")
        _write_prometheus_files(settings, identity, folder, instances)

        # An object to hang containers on before the proxy exists; filled in below.
        reh = Rehearsal(
            settings, identity, folder, timeline, client, network,
            RuntimeAPI(api_dir / API_SOCKET), "", "", Prometheus(""), env, api_keys,
        )  # fmt: skip
        reh.postgres = pg
        blue, blue_instance = reh.start_app(blue_image, "blue", fast_health=False)
        # The proxy and Prometheus start while blue does: neither needs it to be up yet.
        proxy, prom = _start_proxy_and_prometheus(reh, proxy_image, prom_image, api_dir)
        _wait_blue_healthy(reh, blue, blue_image)
        reh.proxy_url = f"http://127.0.0.1:{reh.published(proxy, PORT_PUBLIC)}"
        reh.smoke_url = f"http://127.0.0.1:{reh.published(proxy, PORT_SMOKE)}"
        reh.prometheus = Prometheus(f"http://127.0.0.1:{reh.published(prom, 9090)}")
        _route_to_blue(reh, blue)
        if load is not None:
            load(reh)  # Locust takes seconds to start: it does so while Prometheus comes up
        _wait_scraped(reh, blue_instance)
        yield reh
    finally:
        if reh is not None:
            reh.close()
        for container in reversed(started):
            stop(container)
        with contextlib.suppress(Exception):
            network.remove()


def _write_proxy_files(
    settings: Settings, identity: RunIdentity, folder: Path, images: tuple[str, str, str]
) -> Path:
    """`folder` emptied; the proxy's configuration, checked before anything starts: a bad one
    (or a missing image of `images`, the proxy's first) changes nothing. Returns the (private)
    folder of its runtime API's socket."""
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "proxy").mkdir(parents=True)
    (folder / "prometheus").mkdir(parents=True)
    for image in images:
        require_image(image)
    (folder / "proxy" / "haproxy.cfg").write_text(haproxy_config(settings.stack.port), encoding="utf-8")
    (folder / "proxy" / "active.map").write_text("active blue\n", encoding="utf-8")
    for path in (folder / "proxy", folder / "prometheus"):
        path.chmod(0o755)
    for path in (folder / "proxy").iterdir():
        path.chmod(0o644)
    check_config(images[0], identity, folder / "proxy")
    return private_folder(folder / "api")


def _key_names(settings: Settings, users: int) -> tuple[str, ...]:
    """The configured API keys' names, and one key per Locust user."""
    return (*settings.stack.api_key_names, *(f"load-{n}" for n in range(1, users + 1)))


def _image_user(client: Any, image: str) -> str:
    """The user `image` runs as (its Config.User), which the secrets are handed to."""
    return (client.images.get(image).attrs.get("Config") or {}).get("User") or ""


def _start_services(
    settings: Settings, identity: RunIdentity, network: Any, started: list[Any]
) -> tuple[Any, Any]:
    """Postgres and Redis on the private network; each container joins `started` at once,
    so that the caller removes what did start when the next one fails."""
    pg_container, pg = start_postgres(
        settings.image("postgres").local, identity, network=network, alias="postgres"
    )
    started.append(pg_container)
    rd_container, rd = start_redis(settings.image("redis").local, identity, network=network, alias="redis")
    started.append(rd_container)
    return pg, rd


def _write_prometheus_files(settings: Settings, identity: RunIdentity, folder: Path, instances: int) -> None:
    cfg = settings.deploy
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


def _start_proxy_and_prometheus(
    reh: Rehearsal, proxy_image: str, prom_image: str, api_dir: Path
) -> tuple[Any, Any]:
    # As the invoking user, so that the runtime API's socket (0600) is that user's alone.
    proxy = reh.run_container(
        proxy_image,
        "proxy",
        user=f"{os.getuid()}:{os.getgid()}",
        volumes={
            str(reh.folder / "proxy"): {"bind": CONFIG_DIR, "mode": "ro"},
            str(api_dir): {"bind": API_DIR, "mode": "rw"},
        },
        ports={
            f"{PORT_PUBLIC}/tcp": ("127.0.0.1", reh.settings.deploy.proxy_port or None),
            f"{PORT_SMOKE}/tcp": ("127.0.0.1", None),
        },
    )
    prom = reh.run_container(
        prom_image,
        "prometheus",
        volumes={str(reh.folder / "prometheus"): {"bind": "/etc/prometheus", "mode": "ro"}},
        ports={"9090/tcp": ("127.0.0.1", None)},
    )
    return proxy, prom


def _wait_blue_healthy(reh: Rehearsal, blue: Any, blue_image: str) -> None:
    try:
        wait_healthy(blue, reh.settings.stack.health_timeout)
    except BadSignal as bad:
        raise DeployError(
            f"blue ({blue_image}) did not start: {bad.reason}",
            checked="the current image, before any candidate",
            fix="the current image must be healthy before a rehearsal: run `nox -s e2e`",
        ) from None
    reh.timeline.mark("blue healthy", blue_image)


def _route_to_blue(reh: Rehearsal, blue: Any) -> None:
    if not wait_until(lambda: _api_ready(reh), 15):
        raise DeployError(
            "the proxy's runtime API never answered",
            checked=str(reh.api.path),
            fix=f"read the proxy's log: docker logs {reh.identity.name('proxy')}",
        )
    reh.api.set_address("blue", reh.address(blue), reh.settings.stack.port)
    reh.api.set_state("blue", "ready")
    if not reh.api.wait_status("blue", "UP", 10):
        raise DeployError(
            "the proxy never saw blue as UP",
            checked="show stat (be_blue/blue)",
            fix="read the proxy's log",
        )
    reh.timeline.mark("proxy serving blue", reh.proxy_url)


def _wait_scraped(reh: Rehearsal, blue_instance: str) -> None:
    if not wait_until(lambda: prometheus_has(reh.prometheus, blue_instance), 20, poll=0.25):
        raise DeployError(
            "Prometheus never scraped blue",
            checked=f"{reh.prometheus.url}: up{{instance={blue_instance!r}}}",
            fix=f"read Prometheus's log: docker logs {reh.identity.name('prometheus')}",
        )
    reh.timeline.mark("prometheus scraping blue", f"rules: {', '.join(reh.prometheus.rules_loaded())}")


def _api_ready(reh: Rehearsal) -> bool:
    try:
        reh.api.stats()
    except HarnessError:
        return False
    return True
