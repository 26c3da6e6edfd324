"""A second Docker engine on this machine, sharing nothing with the first (images, build
cache, containerd): what an independent rebuilder needs, and what a test of a remote engine
can point DOCKER_HOST at. Two kinds, with one interface (`SecondEngine`, `second_engine()`):

- `process`: a separate dockerd on the host with its own data root, exec root, socket,
  bridge and containerd namespace. Needs root (ip link, iptables, mounts). Described here.
- `container`: dockerd in a privileged container on the first engine, reached over TCP with
  mutual TLS on a published 127.0.0.1 port (tierharness.supply.engine_container). What a
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
(tierharness.supply.engine_record), and a process is signalled only if its start time and
command line show it is the engine's own dockerd, containerd or shim.

Never started with `--bridge none`: that deletes the first engine's docker0.

    python -m tierharness.supply.engines watch RECORD   (what `SecondEngine.start` spawns)
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tierharness.config import child_env
from tierharness.errors import EngineUnavailableError, HarnessError
from tierharness.process import run, start_detached
from tierharness.runtime.labels import process_start_time
from tierharness.runtime.reaper import pid_alive
from tierharness.supply.engine_record import (
    EngineKind,
    EngineRecord,
    RecordRefusedError,
    load_record,
    new_engine_folder,
)
from tierharness.supply.tls import EngineTls

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
_NETWORK_BRIDGE = re.compile(r"br-[0-9a-f]{12}")  # a Docker network's bridge: br- and its id's start

_FIX_ROOT = (
    "a second engine as a host process needs root (ip link, dockerd), dockerd >= 26 and the iproute2 "
    f"tools; without root, use the container engine ({KIND_VAR}=container, the default for other users)"
)


def _addresses() -> list[tuple[str, ipaddress.IPv4Interface]]:
    """(link, address) of every IPv4 address on this machine."""
    proc = run(["ip", "-4", "-o", "addr", "show"], what="listing addresses", fix=_FIX_ROOT)
    found = []
    for line in proc.stdout.splitlines():
        fields = line.split()
        for i, field in enumerate(fields[:-1]):
            if field == "inet":
                found.append((fields[1], ipaddress.IPv4Interface(fields[i + 1])))
    return found


def _free_subnet(prefixlen: int = 24, avoid: tuple[ipaddress.IPv4Network, ...] = ()) -> ipaddress.IPv4Network:
    """A 10.x network of `prefixlen` that no interface of this machine uses yet."""
    used = [address.network for _, address in _addresses()] + list(avoid)
    for _ in range(100):
        third = secrets.randbelow(254) if prefixlen == 24 else 0
        candidate = ipaddress.IPv4Network(f"10.{secrets.randbelow(200) + 40}.{third}.0/{prefixlen}")
        if not any(candidate.overlaps(net) for net in used):
            return candidate
    raise HarnessError(
        f"no free /{prefixlen} for the second engine's networks", checked="ip -4 addr", fix=_FIX_ROOT
    )


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


def _kill(pid: int, start: str | None, seconds: float) -> None:
    """SIGTERM, then SIGKILL after `seconds`: only while `pid` is still the process that
    started at `start` (a dead one's pid may be another's by now). Without a start time,
    nothing: a process that cannot be told apart from a later one is not signalled."""
    if pid <= 0 or start is None or not pid_alive(pid, start):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and pid_alive(pid, start):
        time.sleep(0.1)
    if pid_alive(pid, start):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _argv(pid: int) -> list[str]:
    """The command line of `pid` if it runs as this user (another user's process is never
    this engine's), else []."""
    try:
        if Path(f"/proc/{pid}").stat().st_uid != os.geteuid():
            return []
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return raw.rstrip(b"\0").decode(errors="replace").split("\0") if raw else []


def _has_options(argv: list[str], *options: tuple[str, str]) -> bool:
    """Whether each (option, value) pair appears in `argv` as two consecutive arguments."""
    pairs = set(itertools.pairwise(argv))
    return all(option in pairs for option in options)


def _own_dockerd(record: EngineRecord) -> int:
    """The pid of the engine's dockerd if that process is still the one started (its start
    time) and runs with this engine's data root and exec root; else 0."""
    pid, start = record.dockerd_pid, record.dockerd_start
    if pid <= 0 or start is None or not pid_alive(pid, start):
        return 0
    argv = _argv(pid)
    own = (("--data-root", f"{record.root}/data"), ("--exec-root", f"{record.run_dir}/exec"))
    return pid if argv and Path(argv[0]).name == "dockerd" and _has_options(argv, *own) else 0


def _is_own_helper(record: EngineRecord, argv: list[str]) -> bool:
    """Whether `argv` is the containerd the engine's dockerd started, or one of its shims:
    named by this engine's containerd paths (in its root-only exec root) and namespace."""
    containerd = f"{record.run_dir}/exec/containerd"
    name = Path(argv[0]).name if argv else ""
    if name == "containerd":
        return _has_options(argv, ("--config", f"{containerd}/containerd.toml"))
    own = (("-namespace", f"harness-{record.id}"), ("-address", f"{containerd}/containerd.sock"))
    return name.startswith("containerd-shim") and _has_options(argv, *own)


def _own_helpers(record: EngineRecord) -> list[tuple[int, str | None]]:
    """(pid, start time) of the engine's containerd and shims, which outlive a killed
    dockerd: only processes of this user (`_argv`) that `_is_own_helper`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            pid = int(entry.name)
            if _is_own_helper(record, _argv(pid)):
                found.append((pid, process_start_time(pid)))
    return found


def _forward_rules(record: EngineRecord) -> list[list[str]]:
    """Its containers may reach each other (a stack's service its Postgres): with the first
    engine's iptables, bridged traffic passes FORWARD, whose policy is DROP for any bridge the
    first engine did not make. Only traffic within its own networks is accepted."""
    return [["-s", net, "-d", net, "-j", "ACCEPT"] for net in (record.subnet, record.pool) if net]


def _forward_chain() -> str:
    """DOCKER-USER, the chain Docker keeps for rules of others, when the first engine made it;
    else FORWARD; "" without iptables."""
    if shutil.which("iptables") is None:
        return ""
    proc = run(["iptables", "-S", "DOCKER-USER"], what="iptables", fix=_FIX_ROOT, check=False)
    return "DOCKER-USER" if proc.returncode == 0 else "FORWARD"


def remove_engine(record: EngineRecord) -> None:
    """Stop the engine and remove everything it had: processes, mounts, data, bridge; for
    the container kind, its container, volume and folder."""
    if record.kind == "container":
        from tierharness.supply.engine_container import remove_container_engine

        remove_container_engine(record)
        return
    dockerd = _own_dockerd(record)
    if dockerd:
        _kill(dockerd, record.dockerd_start, 20)
    for pid, start in _own_helpers(record):
        _kill(pid, start, 5)
    for folder in (Path(record.root), Path(record.run_dir)):
        for point in _mounts_under(folder):
            proc = run(["umount", point], what=f"unmounting {point}", fix=_FIX_ROOT, check=False)
            if proc.returncode != 0:
                run(["umount", "-l", point], what=f"unmounting {point}", fix=_FIX_ROOT, check=False)
        shutil.rmtree(folder, ignore_errors=True)
    if shutil.which("ip") is None:
        return  # no iproute2 here: no bridge, address or rule of this engine's could have been made
    run(["ip", "link", "delete", record.bridge], what="deleting the bridge", fix=_FIX_ROOT, check=False)
    if record.forward_chain:
        for rule in _forward_rules(record):
            for _ in range(10):  # inserted once; a crash and a retry may have inserted it twice
                argv = ["iptables", "-D", record.forward_chain, *rule]
                if run(argv, what="removing a FORWARD rule", fix=_FIX_ROOT, check=False).returncode:
                    break
    # The bridges of its own networks (a stack's), when a killed dockerd could not remove them:
    # only a network's bridge (br-ID) with an address in its own pool, which nothing else on
    # this machine used.
    if record.pool:
        pool = ipaddress.IPv4Network(record.pool)
        links = {link for link, address in _addresses() if address.ip in pool}
        for link in sorted(link for link in links if _NETWORK_BRIDGE.fullmatch(link)):
            run(["ip", "link", "delete", link], what=f"deleting {link}", fix=_FIX_ROOT, check=False)


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
        import docker as docker_sdk

        from tierharness.engine import prepare_clients

        prepare_clients()  # the engine's own ca.pem is what its TLS is checked against
        return docker_sdk.DockerClient.from_env(environment=self.env(), timeout=timeout)

    def close(self) -> None:
        remove_engine(self.record)
        # Its watcher sees the record gone within half a second and exits (the container
        # kind's reaper has been stopped by remove_engine): not left running.
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and pid_alive(self.record.watcher_pid):
            time.sleep(0.1)
        _kill(self.record.watcher_pid, self.record.watcher_start, 5)


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start(
    state_dir: Path, timeout: float, log: Callable[[str], None], tls: EngineTls | None = None
) -> SecondEngine:
    # Root first: another user's PATH often lacks /usr/sbin, and "dockerd is not installed"
    # would send them after the wrong fix.
    if os.geteuid() != 0:
        raise EngineUnavailableError(
            "a second engine as a host process needs root", checked=f"euid {os.geteuid()}", fix=_FIX_ROOT
        )
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise EngineUnavailableError("dockerd is not installed", checked="`dockerd` on PATH", fix=_FIX_ROOT)
    sweep_dead_engines(state_dir, log)
    engine_id, root = new_engine_folder(state_dir)
    run_dir = Path(f"/run/harness-engine-{engine_id}")
    run_dir.mkdir(mode=0o700)
    subnet = _free_subnet()
    pool = _free_subnet(16, avoid=(subnet,))
    owner = os.getpid()
    record = EngineRecord(
        engine_id, str(root), str(run_dir), f"hx{engine_id}", str(subnet), owner, process_start_time(owner),
        tcp_port=_free_port() if tls else 0, cert_path=str(tls.client_dir) if tls else "", pool=str(pool),
    )  # fmt: skip
    record.save()  # before anything exists: whatever is made next can be found and removed
    try:
        gateway = f"{next(subnet.hosts())}/{subnet.prefixlen}"
        for argv in (
            ["ip", "link", "add", "name", record.bridge, "type", "bridge"],
            ["ip", "addr", "add", gateway, "dev", record.bridge],
            ["ip", "link", "set", record.bridge, "up"],
        ):
            run(argv, what="making the second engine's bridge", fix=_FIX_ROOT)
        chain = _forward_chain()
        if chain:
            record = EngineRecord(**{**asdict(record), "forward_chain": chain})
            record.save()  # before the rules exist: removed with the engine whatever happens next
            for rule in _forward_rules(record):
                run(["iptables", "-I", chain, *rule], what="accepting its containers' traffic", fix=_FIX_ROOT)
        # Its own configuration: the containerd image store (for the OCI exporter), nothing
        # from the first engine's daemon.json (whose `hosts` would clash with -H). Its networks
        # come from a pool of its own: both engines would otherwise cut theirs from 172.18.0.0/16
        # and route each other's containers away. Published ports bind to 127.0.0.1 (a test's
        # Postgres is not for the network), also for clients that treat it as remote.
        config = root / "daemon.json"
        config.write_text(
            json.dumps(
                {
                    "features": {"containerd-snapshotter": True},
                    "default-address-pools": [{"base": str(pool), "size": 24}],
                    "ip": "127.0.0.1",
                }
            )
        )
        # No iptables of its own: it would rewrite the first engine's DOCKER chains. Its
        # containers reach each other through the FORWARD rules above, and published ports
        # through docker-proxy.
        argv = [
            dockerd, "--data-root", str(root / "data"), "--exec-root", str(run_dir / "exec"),
            "--pidfile", str(run_dir / "docker.pid"), "-H", record.host,
            "--containerd-namespace", f"harness-{engine_id}",
            "--containerd-plugins-namespace", f"harness-{engine_id}-plugins",
            "--bridge", record.bridge, "--iptables=false", "--ip6tables=false",
            "--config-file", str(config),
        ]  # fmt: skip
        if tls is not None:
            argv += [
                "-H", f"tcp://127.0.0.1:{record.tcp_port}", "--tlsverify", "--tlscacert", str(tls.ca),
                "--tlscert", str(tls.server_cert), "--tlskey", str(tls.server_key),
            ]  # fmt: skip
        process = start_detached(argv, log_path=root / "dockerd.log")
        watcher = start_detached(
            [sys.executable, "-m", "tierharness.supply.engines", "watch", str(root / "engine.json")],
            log_path=root / "watch.log",
        )
        record = EngineRecord(**{
            **asdict(record), "dockerd_pid": process.pid, "dockerd_start": process_start_time(process.pid),
            "watcher_pid": watcher.pid, "watcher_start": process_start_time(watcher.pid),
        })  # fmt: skip
        record.save()
        engine = SecondEngine(record)
        _wait_ready(engine, process, timeout)
        log(f"second engine ready at {record.host} (data root {root / 'data'}, bridge {record.bridge})")
        return engine
    except BaseException:
        remove_engine(record)
        raise


def _wait_ready(engine: SecondEngine, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    socket_path = Path(engine.host.removeprefix("unix://"))
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        if socket_path.exists():
            proc = run(
                ["docker", "version", "--format", "{{.Server.Version}}"], what="docker version",
                fix=_FIX_ROOT, env=child_env(engine.env(), drop=("DOCKER_CONTEXT",)), check=False,
            )  # fmt: skip
            if proc.returncode == 0:
                return
        time.sleep(0.2)
    log_tail = Path(engine.record.root, "dockerd.log").read_text(errors="replace")[-3000:]
    raise EngineUnavailableError(
        f"the second engine did not answer at {engine.host} within {timeout:g}s",
        checked=f"docker version against it; the end of its log:\n{log_tail}",
        fix=_FIX_ROOT,
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
        from tierharness.supply.engine_container import start_container_engine

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
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tierharness.supply.engines", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    watch = sub.add_parser("watch", help="remove the engine once its owner process is gone")
    watch.add_argument("record", type=Path)
    args = parser.parse_args(argv)
    return _watch(args.record)


if __name__ == "__main__":
    sys.exit(main())
