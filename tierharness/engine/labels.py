"""Who owns a container, network or volume: the labels every harness resource carries."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

from tierharness.owners import pid_namespace, process_start_time

__all__ = [
    "LABEL_BOOT",
    "LABEL_HOST",
    "LABEL_PID",
    "LABEL_PID_NS",
    "LABEL_PID_START",
    "LABEL_ROLE",
    "LABEL_RUN",
    "LABEL_WORKER",
    "OwnerPlace",
    "RunIdentity",
]

LABEL_RUN = "harness.run-id"
LABEL_WORKER = "harness.worker"
LABEL_PID = "harness.pid"  # the run's controlling process: the reaper watches it
LABEL_PID_START = "harness.pid-start"  # its start time, so a reused pid is not mistaken for it
LABEL_HOST = "harness.host"
# A pid means a process only within one boot of one kernel and one pid namespace: CI jobs in
# containers on the host network share the host name, not the pid namespace.
LABEL_BOOT = "harness.boot-id"
LABEL_PID_NS = "harness.pid-ns"
LABEL_ROLE = "harness.role"


@dataclass(frozen=True)
class OwnerPlace:
    """Where a pid is a number: the host name, the kernel's boot and the pid namespace.
    boot_id and pid_ns are None off Linux (or without /proc)."""

    host: str
    boot_id: str | None
    pid_ns: str | None

    @classmethod
    def here(cls) -> OwnerPlace:
        try:
            boot: str | None = Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
        except OSError:
            boot = None
        return cls(socket.gethostname(), boot, pid_namespace())


@dataclass(frozen=True)
class RunIdentity:
    """One run (a pytest session or a nox tier) and one worker in it."""

    run_id: str
    worker: str
    owner_pid: int
    owned: bool = True  # False for kept (--harness-reuse) containers: no owner pid, no reaping

    @classmethod
    def for_this_process(cls, run_id: str, worker: str = "main") -> RunIdentity:
        return cls(run_id, worker, os.getpid())

    def labels(self, role: str) -> dict[str, str]:
        place = OwnerPlace.here()
        labels = {
            LABEL_RUN: self.run_id,
            LABEL_WORKER: self.worker,
            LABEL_HOST: place.host,
            LABEL_ROLE: role,
        }
        if not self.owned:
            return labels
        labels[LABEL_PID] = str(self.owner_pid)
        # The owner pid is a number in this process's pid namespace: the worker that labels
        # and the controller that owns share it (xdist workers are the controller's children).
        if place.boot_id and place.pid_ns:
            labels[LABEL_BOOT] = place.boot_id
            labels[LABEL_PID_NS] = place.pid_ns
        start = process_start_time(self.owner_pid)
        if start:
            labels[LABEL_PID_START] = start
        return labels

    def name(self, role: str) -> str:
        return f"harness-{self.run_id}-{self.worker}-{role}"
