"""The second engine in a container: Debian's dockerd in a privileged container of the
`engine` image (tierharness/recipes/engine), started on the first engine. What a member of
the docker group gets where the host-process engine (tierharness.engine.second_engine) needs root.

The docker group is root-equivalent already: it can start a privileged container, and this
module does. What the container keeps apart is the engine, not the machine:

- its data root (images, containerd content, build cache) is an anonymous volume, removed
  with the container; on the container's own overlay root, the inner overlay snapshots
  would fail;
- it is reached only over TCP with mutual TLS on a port published on 127.0.0.1: the CA is
  made for this one engine and its key deleted, the client key sits in a 0700 folder of
  the user's (another local user can connect, and is refused). Nothing is bind-mounted, so
  nothing in the user's folders is ever written as root;
- its own containers live in its network namespace, on networks cut from a /16 no
  interface of this machine uses, so they do not shadow a route of the host;
- container and volume carry a run's labels, and a reaper watching this process removes
  them when it is killed; a record in the state dir lets the next start sweep the folder.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tarfile
import time
from collections.abc import Callable
from dataclasses import replace
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

from tierharness.config import Settings, load_settings
from tierharness.engine.client import container_log, endpoint, engine_client, wait_until_ready
from tierharness.engine.labels import LABEL_RUN, RunIdentity
from tierharness.engine.reaper import remove_labelled, spawn_reaper
from tierharness.engine.run_ids import new_run_id
from tierharness.engine.second_engine import SecondEngine, sweep_dead_engines
from tierharness.engine.second_engine_network import free_subnet
from tierharness.engine.second_engine_processes import has_options, process_argv, stop_process
from tierharness.engine.second_engine_record import EngineRecord, new_engine_folder
from tierharness.engine.tls import EngineTls, make_certificates
from tierharness.errors import EngineUnavailableError, HarnessError
from tierharness.imaging.resolution import resolve_images
from tierharness.owners import process_start_time

__all__ = ["IMAGE", "ROLE", "remove_container_engine", "start_container_engine"]

IMAGE = "engine"  # the logical image (tierharness.config.DEFAULT_IMAGES)
ROLE = "second-engine"  # its containers' harness.role label
_PORT = 2376  # Docker's port for TLS
_TLS_DIR = "etc/harness-engine"
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _tls_archive(tls: EngineTls) -> bytes:
    """The server's CA, certificate and key as a tar for put_archive: copied into the
    container before it starts, never bind-mounted from the user's folders."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        files = (("ca.pem", tls.ca), ("server-cert.pem", tls.server_cert), ("server-key.pem", tls.server_key))
        for name, path in files:
            data = path.read_bytes()
            info = tarfile.TarInfo(f"{_TLS_DIR}/{name}")
            info.size, info.mode = len(data), 0o600
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _published_port(container: Any) -> int:
    bindings = (container.attrs.get("NetworkSettings", {}).get("Ports") or {}).get(f"{_PORT}/tcp") or []
    for binding in bindings:
        if binding.get("HostIp") in ("127.0.0.1", "") and binding.get("HostPort"):
            return int(binding["HostPort"])
    raise EngineUnavailableError(
        f"the container engine's port {_PORT} was not published on 127.0.0.1",
        checked=f"NetworkSettings.Ports of container {container.id[:12]}: {bindings}",
        fix="the first engine must publish ports (not rootless with a port driver that cannot)",
    )


def _check_first_engine_is_local() -> None:
    """The engine's port is published on the first engine's host: it must be this machine."""
    where = endpoint()
    if not where.is_local and where.hostname not in _LOOPBACK:
        raise EngineUnavailableError(
            "the container engine runs on the first engine, which is not on this machine",
            checked=f"the first engine: {where.describe()}",
            fix="point DOCKER_HOST at this machine's engine, or run the second engine where the first runs",
        )


def start_container_engine(
    state_dir: Path,
    *,
    timeout: float = 60,
    log: Callable[[str], None] = lambda _m: None,
    tls: EngineTls | None = None,
    settings: Settings | None = None,
) -> SecondEngine:
    """Start the container engine and wait until it answers over TLS; on any failure,
    whatever was made is removed again and the error carries its log."""
    _check_first_engine_is_local()
    settings = settings or load_settings()
    # Never pulled: its entrypoint (cgroup nesting) and daemon.json are the recipe's.
    (image,) = resolve_images(settings, [IMAGE], pull=False, log=log)
    sweep_dead_engines(state_dir, log)
    engine_id, root = new_engine_folder(state_dir)
    # A run of its own: the reaper removes all of a run once its owner is gone, and this
    # process may be a worker of a longer run that must not go with it.
    identity = RunIdentity(new_run_id("engine-"), "main", os.getpid())
    owner = identity.owner_pid
    record = EngineRecord(
        engine_id, str(root), run_dir="", bridge="", subnet="", owner_pid=owner,
        owner_start=process_start_time(owner), kind="container", run_id=identity.run_id,
    )  # fmt: skip
    record.save()  # before anything exists: whatever is made next can be found and removed
    try:
        reaper = spawn_reaper(identity.run_id, owner, root / "reaper.log")
        record = replace(record, watcher_pid=reaper.pid, watcher_start=process_start_time(reaper.pid))
        record.save()
        tls = tls or make_certificates(root / "tls")
        # Its networks (docker0 included) from a /16 no interface here uses: Docker's own
        # default, 172.18.0.0/16 next to the container's 172.17, is often a network of the
        # first engine's, whose containers the inner ones would then never reach.
        pool = free_subnet(16)
        container = _create_container(image.ref, identity, pool)
        record = replace(record, container=container.id, cert_path=str(tls.client_dir), pool=str(pool))
        record.save()
        container.put_archive("/", _tls_archive(tls))
        started = time.monotonic()
        _start_container(container, image.ref)
        record = replace(record, tcp_port=_published_port(container))
        record.save()
        engine = SecondEngine(record)
        _wait_ready(engine, container, timeout)
        log(
            f"second engine (container {container.name}) ready at {record.host} with TLS in "
            f"{time.monotonic() - started:.1f}s"
        )
        return engine
    except BaseException:
        remove_container_engine(record)
        raise


def _create_container(image: str, identity: RunIdentity, pool: IPv4Network) -> Any:
    """The engine's privileged container, labelled for its run, its data root a volume, its
    TLS port published on a free 127.0.0.1 port; created, not started."""
    from docker.types import Mount  # noqa: PLC0415  lazy: start-up time, the docker SDK loads requests

    labels = identity.labels(ROLE)
    # Listening on all of the container's addresses: the published port reaches it on its
    # bridge address. TLS with client verification is what keeps others out.
    command = [
        "dockerd", "--host", f"tcp://0.0.0.0:{_PORT}", "--host", "unix:///var/run/docker.sock",
        "--tlsverify", f"--tlscacert=/{_TLS_DIR}/ca.pem",
        f"--tlscert=/{_TLS_DIR}/server-cert.pem", f"--tlskey=/{_TLS_DIR}/server-key.pem",
        "--default-address-pool", f"base={pool},size=24",
    ]  # fmt: skip
    return engine_client().containers.create(
        image,
        command=command,
        name=identity.name(ROLE),
        labels=labels,
        # Nested containers need it: mounts, cgroups, iptables, devices of its own.
        privileged=True,
        ports={f"{_PORT}/tcp": ("127.0.0.1", None)},  # a free port, chosen by the first engine
        mounts=[Mount("/var/lib/docker", None, type="volume", labels=labels)],
        # Its sockets, the shims' state and BuildKit's scratch: in memory, gone with it.
        tmpfs={"/run": "", "/tmp": ""},  # noqa: S108  # nosec B108 - the container's own /tmp, a tmpfs
        detach=True,
    )


def _start_container(container: Any, image: str) -> None:
    """Start it and reload its attributes (the port the first engine chose); a refusal carries its log."""
    from docker.errors import DockerException  # noqa: PLC0415  lazy: start-up time, the docker SDK loads requests

    try:
        container.start()
    except DockerException as exc:
        raise EngineUnavailableError(
            f"the container engine could not start: {exc}",
            checked=f"{image} as a privileged container; its log:\n{container_log(container)}",
            fix="a privileged container needs a member of the docker group (or root) on a Linux engine",
        ) from None
    container.reload()


def _wait_ready(engine: SecondEngine, container: Any, timeout: float) -> None:
    """Ready: the engine answers a ping over TLS with the client certificate."""
    from docker.errors import DockerException  # noqa: PLC0415  lazy: start-up time, the docker SDK loads requests

    def probe() -> str | None:
        try:
            # A new client each time: making one already asks the engine for its API version.
            with contextlib.closing(engine.client(timeout=5)) as client:
                if client.ping():
                    return None
        except (DockerException, OSError) as exc:  # requests' errors are OSErrors
            return str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        return "the ping was not answered"

    last = wait_until_ready(container, probe, timeout)
    if last is None:
        return
    raise EngineUnavailableError(
        f"the container engine did not answer at {engine.host} within {timeout:g}s: {last}",
        checked=f"a ping over TLS with the client certificate in {engine.record.cert_path}; "
        f"its log:\n{container_log(container)}",
        fix="read its log above; raise the timeout if the machine is only slow",
    )


def remove_container_engine(record: EngineRecord) -> None:
    """Remove the container (and its volume) by the run's labels, also one whose id never
    reached the record; then its reaper and its folder. Quiet when already gone."""
    from docker.errors import DockerException  # noqa: PLC0415  lazy: start-up time, the docker SDK loads requests

    if record.run_id:
        with contextlib.suppress(DockerException, HarnessError):
            remove_labelled(engine_client(), {"label": [f"{LABEL_RUN}={record.run_id}"]})
    # Its reaper has nothing left to do. Only if it is still that process (its start time; a
    # dead one's pid may be another's by now) and the reaper of this engine's run.
    if record.watcher_pid and has_options(process_argv(record.watcher_pid), ("--run-id", record.run_id)):
        stop_process(record.watcher_pid, record.watcher_start, 5)
    shutil.rmtree(record.root, ignore_errors=True)
