"""What tests of a second Docker engine share: throwaway TLS certificates, and a check that a
stopped engine left nothing behind."""

from __future__ import annotations

import ipaddress
import subprocess
from pathlib import Path

from tierharness.engine.client import engine_client
from tierharness.engine.labels import LABEL_RUN
from tierharness.engine.second_engine import EngineRecord
from tierharness.engine.tls import EngineTls, make_certificates
from tierharness.owners import pid_alive

__all__ = ["certificates", "leftovers"]


def certificates(folder: Path, *, name: str = "harness-test-ca") -> EngineTls:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client one (openssl), laid
    out as DOCKER_CERT_PATH wants them in `client_dir`. Another `name` makes another CA."""
    return make_certificates(folder, name=name, days=1)


def _processes_naming(*folders: str) -> list[str]:
    """Processes whose command line names one of `folders` (dockerd, its containerd, shims)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(folder in cmdline for folder in folders):
            found.append(f"process {entry.name}: {cmdline[:120]}")
    return found


def _container_leftovers(record: EngineRecord) -> list[str]:
    """The container kind's: its container, volume or network on the first engine (by the
    run's label), its folder, its reaper."""
    client = engine_client()
    labelled = {"label": [f"{LABEL_RUN}={record.run_id}"]}

    def containers(filters: dict[str, list[str]]) -> list[str]:
        # The listing alone: a container the reaper removes meanwhile is not inspected (404).
        found = client.containers.list(all=True, sparse=True, ignore_removed=True, filters=filters)
        return [f"container {c.id[:12]} ({c.status})" for c in found]

    left = containers(labelled)
    left += [f"volume {v.name}" for v in client.volumes.list(filters=labelled)]
    left += [f"network {n.name}" for n in client.networks.list(filters=labelled)]
    if record.container:
        left += [f"{c} (by id)" for c in containers({"id": [record.container]})]
    if Path(record.root).exists():
        left.append(record.root)
    if record.watcher_pid and pid_alive(record.watcher_pid, record.watcher_start):
        left.append(f"pid {record.watcher_pid} (its reaper)")
    return left


def leftovers(record: EngineRecord) -> list[str]:
    """What is left of an engine: paths, bridges, processes, mounts (empty when nothing)."""
    if record.kind == "container":
        return _container_leftovers(record)
    left = [p for p in (record.root, record.run_dir) if Path(p).exists()]
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True, check=True).stdout
    left += [f"bridge {record.bridge}" for line in links.splitlines() if line.split()[0] == record.bridge]
    if record.pool:  # the bridges of the engine's own networks
        pool = ipaddress.IPv4Network(record.pool)
        addresses = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, check=True)
        for line in addresses.stdout.splitlines():
            fields = line.split()
            if ipaddress.IPv4Interface(fields[3]).ip in pool:
                left.append(f"link {fields[1]} with {fields[3]} from the engine's pool")
    if record.forward_chain:  # the FORWARD rules that let its containers reach each other
        argv = ["iptables", "-S", record.forward_chain]
        rules = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        left += [f"iptables: {line}" for line in rules.splitlines() if record.pool in line]
    for pid in (record.dockerd_pid, record.watcher_pid):
        if pid and Path(f"/proc/{pid}").exists():
            stat = Path(f"/proc/{pid}/stat").read_text()
            if stat[stat.rindex(")") + 2] not in "ZX":
                left.append(f"pid {pid} (dockerd or watcher)")
    left += _processes_naming(record.run_dir, record.root)
    mounts = Path("/proc/self/mountinfo").read_text()
    left += [f"mount under {record.root}" for line in mounts.splitlines() if record.root in line]
    return left
