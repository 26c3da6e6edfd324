"""A second Docker engine on this machine, sharing nothing with the first (images, build
cache, containerd): what an independent rebuilder needs, and what a test of a remote engine
can point DOCKER_HOST at. Two kinds, with one interface (`SecondEngine`, `second_engine()`):

- `process`: a separate dockerd on the host with its own data root, exec root, socket,
  bridge and containerd namespace. Needs root (ip link, iptables, mounts). Described here.
- `container`: dockerd in a privileged container on the first engine, reached over TCP with
  mutual TLS on a published 127.0.0.1 port (tierharness.engine.second_engine_container). What a
  member of the docker group gets, who may start privileged containers (root-equivalent).

`second_engine()` takes the host process as root and the container otherwise; `kind=`, or
HARNESS_SECOND_ENGINE=process|container|auto, forces one (docs/second-engine.md).

The host process is not a container, so the reaper's labels cannot reach it. Its own
cleanup path: a record in the state dir (`engines/<id>/engine.json`) and a watcher started
in its own session that stops the engine, unmounts and deletes its data and removes its
bridge once the owner process dies; the next start sweeps records whose owner and watcher
are both gone. The container kind keeps a record there too, for that sweep. Sweep and
watcher act as root on what a record names, so a record is acted on only if nobody else
could have written it and it names only its own engine's things
(tierharness.engine.second_engine_record), and a process is signalled only if its start time and
command line show it is the engine's own dockerd, containerd or shim
(tierharness.engine.second_engine_processes). Its bridge, networks and iptables rules:
tierharness.engine.second_engine_network.

Never started with `--bridge none`: that deletes the first engine's docker0.

    python -m tierharness.engine.second_engine watch RECORD   (what `SecondEngine.start` spawns)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from tierharness.config import child_env
from tierharness.engine.client import prepare_clients
from tierharness.engine.second_engine_network import (
    FIX_ROOT,
    accept_forwarding,
    free_subnet,
    make_bridge,
    remove_networks,
)
from tierharness.engine.second_engine_processes import own_dockerd, own_helpers, stop_process
from tierharness.engine.second_engine_record import (
    EngineKind,
    EngineRecord,
    RecordRefusedError,
    load_record,
    new_engine_folder,
)
from tierharness.engine.tls import EngineTls
from tierharness.errors import EngineUnavailableError, HarnessError
from tierharness.owners import pid_alive, process_start_time
from tierharness.process import run, start_detached

if TYPE_CHECKING:
    # By name: inside SecondEngine, `docker` is its method.
    from docker import DockerClient

    from tierharness.config import Settings

__all__ = [
    "KIND_VAR",
    "EngineKind",
    "EngineRecord",
    "EngineTls",
    "SecondEngine",
    "engine_kind",
    "second_engine",
    "sweep_dead_engines",
]

KIND_VAR = "HARNESS_SECOND_ENGINE"


def _mounts_under(path: Path) -> list[str]:
    """Mount points at or below `path`, deepest first."""
    prefix = str(path.resolve())
    found = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return sorted(found, key=len, reverse=True)


def remove_engine(record: EngineRecord) -> None:
    """Stop the engine and remove everything it had: processes, mounts, data, bridge; for
    the container kind, its container, volume and folder."""
    if record.kind == "container":
        from tierharness.engine.second_engine_container import (  # noqa: PLC0415  lazy: a cycle, engine_container builds on SecondEngine
            remove_container_engine,
        )

        remove_container_engine(record)
        return
    dockerd = own_dockerd(record)
    if dockerd:
        stop_process(dockerd, record.dockerd_start, 20)
    for pid, start in own_helpers(record):
        stop_process(pid, start, 5)
    for folder in (Path(record.root), Path(record.run_dir)):
        for point in _mounts_under(folder):
            proc = run(["umount", point], what=f"unmounting {point}", fix=FIX_ROOT, check=False)
            if proc.returncode != 0:
                run(["umount", "-l", point], what=f"unmounting {point}", fix=FIX_ROOT, check=False)
        shutil.rmtree(folder, ignore_errors=True)
    remove_networks(record)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def sweep_dead_engines(state_dir: Path, log: Callable[[str], None] = _stderr) -> list[str]:
    """Remove engines whose owner and watcher are both gone (a reboot, a kill of both). A
    record that may not be trusted (engine_record.load_record) is left alone, and said so."""
    removed = []
    engines = state_dir.resolve() / "engines"
    for path in sorted(engines.glob("*/engine.json")):
        try:
            record = load_record(path, state_dir)
        except FileNotFoundError:  # removed by its owner meanwhile
            continue
        except RecordRefusedError as exc:
            log(str(exc))
            continue
        if pid_alive(record.owner_pid, record.owner_start) or (
            record.watcher_pid and pid_alive(record.watcher_pid, record.watcher_start)
        ):
            continue
        remove_engine(record)
        removed.append(record.id)
    return removed


@dataclass
class SecondEngine:
    record: EngineRecord

    @property
    def host(self) -> str:
        return self.record.host

    @property
    def kind(self) -> EngineKind:
        return self.record.kind

    def log_hint(self) -> str:
        """Where its dockerd's log is."""
        if self.kind == "container":
            return f"docker logs {self.record.container[:12]} (on the first engine)"
        return f"{self.record.root}/dockerd.log"

    def env(self) -> dict[str, str]:
        """The environment a docker client needs to talk to this engine (and only to it):
        its unix socket, or with TLS its TCP listener and the client certificates."""
        if self.record.tcp_port:
            return {
                "DOCKER_HOST": f"tcp://127.0.0.1:{self.record.tcp_port}",
                "DOCKER_TLS_VERIFY": "1",
                "DOCKER_CERT_PATH": self.record.cert_path,
            }
        return {"DOCKER_HOST": self.host}

    def docker(self, *args: str, what: str) -> str:
        proc = run(
            [shutil.which("docker") or "docker", *args],
            what=what,
            fix=f"read the second engine's log: {self.log_hint()}",
            env=child_env(self.env(), drop=("DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH")),
        )
        return proc.stdout.strip()

    def client(self, timeout: int = 600) -> DockerClient:
        """A Docker SDK client of this engine (with its TLS, for the container kind)."""
        import docker as docker_sdk  # noqa: PLC0415  lazy: start-up time, the docker SDK loads requests

        prepare_clients()  # the engine's own ca.pem is what its TLS is checked against
        return docker_sdk.DockerClient.from_env(environment=self.env(), timeout=timeout)

    def close(self) -> None:
        remove_engine(self.record)
        # Its watcher sees the record gone within half a second and exits (the container
        # kind's reaper has been stopped by remove_engine): not left running.
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and pid_alive(self.record.watcher_pid):
            time.sleep(0.1)
        stop_process(self.record.watcher_pid, self.record.watcher_start, 5)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start(
    state_dir: Path, timeout: float, log: Callable[[str], None], tls: EngineTls | None = None
) -> SecondEngine:
    dockerd = _require_dockerd()
    sweep_dead_engines(state_dir, log)
    record = _new_record(state_dir, tls)
    try:
        make_bridge(record)
        record = accept_forwarding(record)
        config = _write_daemon_config(record)
        root = Path(record.root)
        process = start_detached(_dockerd_argv(dockerd, record, config, tls), log_path=root / "dockerd.log")
        # Removes the engine once this process is gone, however it ends.
        watch = [sys.executable, "-m", "tierharness.engine.second_engine", "watch", str(root / "engine.json")]
        watcher = start_detached(watch, log_path=root / "watch.log")
        record = replace(
            record, dockerd_pid=process.pid, dockerd_start=process_start_time(process.pid),
            watcher_pid=watcher.pid, watcher_start=process_start_time(watcher.pid),
        )  # fmt: skip
        record.save()
        engine = SecondEngine(record)
        _wait_ready(engine, process, timeout)
        log(f"second engine ready at {record.host} (data root {root / 'data'}, bridge {record.bridge})")
        return engine
    except BaseException:
        remove_engine(record)
        raise


def _require_dockerd() -> str:
    """dockerd's path, once this process is root and dockerd is installed."""
    # Root first: another user's PATH often lacks /usr/sbin, and "dockerd is not installed"
    # would send them after the wrong fix.
    if os.geteuid() != 0:
        raise EngineUnavailableError(
            "a second engine as a host process needs root", checked=f"euid {os.geteuid()}", fix=FIX_ROOT
        )
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise EngineUnavailableError("dockerd is not installed", checked="`dockerd` on PATH", fix=FIX_ROOT)
    return dockerd


def _new_record(state_dir: Path, tls: EngineTls | None) -> EngineRecord:
    """A new engine's folder, run dir and networks, in a record saved before anything exists:
    whatever is made next can be found and removed."""
    engine_id, root = new_engine_folder(state_dir)
    run_dir = Path(f"/run/harness-engine-{engine_id}")
    run_dir.mkdir(mode=0o700)
    subnet = free_subnet()
    pool = free_subnet(16, avoid=(subnet,))
    owner = os.getpid()
    record = EngineRecord(
        engine_id, str(root), str(run_dir), f"hx{engine_id}", str(subnet), owner, process_start_time(owner),
        tcp_port=_free_port() if tls else 0, cert_path=str(tls.client_dir) if tls else "", pool=str(pool),
    )  # fmt: skip
    record.save()
    return record


def _write_daemon_config(record: EngineRecord) -> Path:
    """Its own configuration: the containerd image store (for the OCI exporter), nothing from
    the first engine's daemon.json (whose `hosts` would clash with -H). Its networks come from
    a pool of its own: both engines would otherwise cut theirs from 172.18.0.0/16 and route
    each other's containers away. Published ports bind to 127.0.0.1 (a test's Postgres is not
    for the network), also for clients that treat it as remote."""
    config = Path(record.root, "daemon.json")
    config.write_text(
        json.dumps(
            {
                "features": {"containerd-snapshotter": True},
                "default-address-pools": [{"base": record.pool, "size": 24}],
                "ip": "127.0.0.1",
            }
        )
    )
    return config


def _dockerd_argv(dockerd: str, record: EngineRecord, config: Path, tls: EngineTls | None) -> list[str]:
    """dockerd's command line: its own roots, socket, containerd namespace and bridge; with
    `tls`, also a TCP listener on 127.0.0.1 that verifies clients."""
    # No iptables of its own: it would rewrite the first engine's DOCKER chains. Its
    # containers reach each other through the FORWARD rules (engine_network), and published
    # ports through docker-proxy.
    argv = [
        dockerd, "--data-root", f"{record.root}/data", "--exec-root", f"{record.run_dir}/exec",
        "--pidfile", f"{record.run_dir}/docker.pid", "-H", record.host,
        "--containerd-namespace", f"harness-{record.id}",
        "--containerd-plugins-namespace", f"harness-{record.id}-plugins",
        "--bridge", record.bridge, "--iptables=false", "--ip6tables=false",
        "--config-file", str(config),
    ]  # fmt: skip
    if tls is not None:
        argv += [
            "-H", f"tcp://127.0.0.1:{record.tcp_port}", "--tlsverify", "--tlscacert", str(tls.ca),
            "--tlscert", str(tls.server_cert), "--tlskey", str(tls.server_key),
        ]  # fmt: skip
    return argv


def _wait_ready(engine: SecondEngine, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    socket_path = Path(engine.host.removeprefix("unix://"))
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        if socket_path.exists():
            proc = run(
                ["docker", "version", "--format", "{{.Server.Version}}"], what="docker version",
                fix=FIX_ROOT, env=child_env(engine.env(), drop=("DOCKER_CONTEXT",)), check=False,
            )  # fmt: skip
            if proc.returncode == 0:
                return
        time.sleep(0.2)
    log_tail = Path(engine.record.root, "dockerd.log").read_text(errors="replace")[-3000:]
    raise EngineUnavailableError(
        f"the second engine did not answer at {engine.host} within {timeout:g}s",
        checked=f"docker version against it; the end of its log:\n{log_tail}",
        fix=FIX_ROOT,
    )


def engine_kind(kind: str | None = None) -> EngineKind:
    """Which second engine to start: `kind`, else HARNESS_SECOND_ENGINE, else `auto`, which is
    the host process as root (nothing runs privileged in a container) and the container
    otherwise (the host process cannot start without root)."""
    wanted = kind or os.environ.get(KIND_VAR, "").strip() or "auto"
    if wanted == "auto":
        return "process" if os.geteuid() == 0 else "container"
    kinds: dict[str, EngineKind] = {"process": "process", "container": "container"}
    if wanted in kinds:
        return kinds[wanted]
    raise HarnessError(
        f"{wanted!r} is not a kind of second engine",
        checked=f"kind={kind!r}, else the environment variable {KIND_VAR}",
        fix=f"set {KIND_VAR} to auto (the default: a host process as root, a container otherwise), "
        "process or container",
    )


@contextlib.contextmanager
def second_engine(
    state_dir: Path,
    *,
    timeout: float = 60,
    tls: EngineTls | None = None,
    log: Callable[[str], None] = lambda _m: None,
    kind: EngineKind | None = None,
    settings: Settings | None = None,
) -> Iterator[SecondEngine]:
    """A fresh second engine for the block; stopped and removed afterwards, also when this
    process is killed (its watcher, or the container's reaper, does it then). Which kind:
    see `engine_kind`. The host process with `tls` also listens on 127.0.0.1:RANDOM with
    client verification, and `env()` points there; the container always does (with `tls`,
    or certificates made for it). `settings` find the container's image (default: the
    project's, from the current folder); `timeout` is how long it has to answer once started."""
    if engine_kind(kind) == "container":
        from tierharness.engine.second_engine_container import (  # noqa: PLC0415  lazy: a cycle, engine_container builds on SecondEngine
            start_container_engine,
        )

        engine = start_container_engine(state_dir, timeout=timeout, log=log, tls=tls, settings=settings)
    else:
        engine = _start(state_dir, timeout, log, tls)
    try:
        yield engine
    finally:
        engine.close()


def _watch(record_path: Path) -> int:
    state_dir = record_path.parent.parent.parent  # <state>/engines/<id>/engine.json
    try:
        record = load_record(record_path, state_dir)
    except FileNotFoundError:
        return 0
    except RecordRefusedError as exc:
        print(exc, flush=True)
        return 1
    while pid_alive(record.owner_pid, record.owner_start):
        if not record_path.exists():  # removed by its owner: nothing left to do
            return 0
        time.sleep(0.5)
    try:
        fresh = load_record(record_path, state_dir)
    except FileNotFoundError:
        return 0
    except RecordRefusedError as exc:
        # Rewritten by someone else meanwhile: what the owner had written is still its engine.
        print(f"{exc}\nremoving the engine the record named when this watcher started", flush=True)
        fresh = record
    remove_engine(fresh)
    print(f"engine {record.id}: owner {record.owner_pid} gone, engine removed", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tierharness.engine.second_engine", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    watch = sub.add_parser("watch", help="remove the engine once its owner process is gone")
    watch.add_argument("record", type=Path)
    args = parser.parse_args(argv)
    return _watch(args.record)


if __name__ == "__main__":
    sys.exit(main())
