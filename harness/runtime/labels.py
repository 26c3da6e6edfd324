"""Who owns a container, network or volume: the labels every harness resource carries."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "LABEL_HOST",
    "LABEL_PID",
    "LABEL_PID_START",
    "LABEL_ROLE",
    "LABEL_RUN",
    "LABEL_WORKER",
    "RunIdentity",
    "process_start_time",
]

LABEL_RUN = "harness.run-id"
LABEL_WORKER = "harness.worker"
LABEL_PID = "harness.pid"  # the run's controlling process: the reaper watches it
LABEL_PID_START = "harness.pid-start"  # its start time, so a reused pid is not mistaken for it
LABEL_HOST = "harness.host"
LABEL_ROLE = "harness.role"


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of `pid` (clock ticks since boot), or None off Linux."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses; what follows is plain.
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


@dataclass(frozen=True)
class RunIdentity:
    """One run (a pytest session or a nox tier) and one worker in it."""

    run_id: str
    worker: str
    owner_pid: int

    @classmethod
    def for_this_process(cls, run_id: str, worker: str = "main") -> RunIdentity:
        return cls(run_id, worker, os.getpid())

    def labels(self, role: str) -> dict[str, str]:
        labels = {
            LABEL_RUN: self.run_id,
            LABEL_WORKER: self.worker,
            LABEL_PID: str(self.owner_pid),
            LABEL_HOST: socket.gethostname(),
            LABEL_ROLE: role,
        }
        start = process_start_time(self.owner_pid)
        if start:
            labels[LABEL_PID_START] = start
        return labels

    def name(self, role: str) -> str:
        return f"harness-{self.run_id}-{self.worker}-{role}"
