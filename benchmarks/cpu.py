"""The CPU seconds the benchmarks read: the whole machine's, and one daemon's.

Importable as `cpu` because a script's own folder is on sys.path.
"""

from __future__ import annotations

import psutil


def machine_cpu() -> tuple[float, float]:
    """The machine's busy and idle CPU seconds so far, all cores. Steal (a hypervisor's other
    guests) is neither, and guest time is already in user time."""
    t = psutil.cpu_times()
    busy = t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)
    return busy, t.idle + getattr(t, "iowait", 0.0)


def daemon_cpu(name: str) -> float | None:
    """The user and system CPU seconds so far of the process named `name` (the engine's
    `dockerd`, its `containerd`); None where there is none or this user cannot read it."""
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] == name:
            try:
                times = proc.cpu_times()
            except psutil.Error:
                return None
            return float(times.user + times.system)
    return None
