"""A process as the owner of what it leaves: named by its pid and the kernel's start time of
it (a reused pid is another process), within one pid namespace. Alive or gone."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["pid_alive", "pid_namespace", "proc_stat", "process_start_time"]


def proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state first), or None when
    there is no such process or no /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses; what follows is plain.
    return stat[stat.rindex(")") + 2 :].split()


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of `pid` (clock ticks since boot), or None off Linux."""
    fields = proc_stat(pid)
    return fields[19] if fields and len(fields) > 19 else None


def pid_namespace() -> str | None:
    """This process's pid namespace, as the kernel names it ("pid:[4026531836]"), or None
    off Linux: a pid names a process only within it."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def pid_alive(pid: int, start_time: str | None = None) -> bool:
    fields = proc_stat(pid)
    if fields is None:
        # Not Linux, or gone: fall back to the portable probe.
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    if fields[0] in ("Z", "X"):  # a zombie is dead, its parent just has not reaped it
        return False
    return not (start_time is not None and process_start_time(pid) != start_time)
