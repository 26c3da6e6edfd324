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


def kernel_cpu() -> float:
    """The machine's CPU seconds so far in the kernel (system, irq, softirq), all cores: part
    of `machine_cpu`'s busy. Processes' starts and ends, page faults, files, namespaces and
    packet filtering are spent here, on behalf of whichever process asked."""
    t = psutil.cpu_times()
    return t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)


def tasks_started() -> int | None:
    """How many processes and threads the machine has started since boot (Linux's /proc/stat
    `processes`, which counts every fork and clone), or None where that is not readable."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            for line in stat:
                if line.startswith("processes "):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


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
