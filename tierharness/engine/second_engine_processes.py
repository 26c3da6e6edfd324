"""Which processes are a second engine's own, and signalling only those. Sweep and watcher act
as root on what a record names, and a pid in a record may belong to another process by now:
a process is signalled only while its start time is the one recorded, and found only if its
user and command line show it is the engine's own dockerd, containerd or shim."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import time
from pathlib import Path

from tierharness.engine.second_engine_record import EngineRecord
from tierharness.owners import pid_alive, process_start_time

__all__ = ["has_options", "own_dockerd", "own_helpers", "process_argv", "stop_process"]


def stop_process(pid: int, start: str | None, seconds: float) -> None:
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


def process_argv(pid: int) -> list[str]:
    """The command line of `pid` if it runs as this user (another user's process is never
    this engine's), else []."""
    try:
        if Path(f"/proc/{pid}").stat().st_uid != os.geteuid():
            return []
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return raw.rstrip(b"\0").decode(errors="replace").split("\0") if raw else []


def has_options(argv: list[str], *options: tuple[str, str]) -> bool:
    """Whether each (option, value) pair appears in `argv` as two consecutive arguments."""
    pairs = set(itertools.pairwise(argv))
    return all(option in pairs for option in options)


def own_dockerd(record: EngineRecord) -> int:
    """The pid of the engine's dockerd if that process is still the one started (its start
    time) and runs with this engine's data root and exec root; else 0."""
    pid, start = record.dockerd_pid, record.dockerd_start
    if pid <= 0 or start is None or not pid_alive(pid, start):
        return 0
    argv = process_argv(pid)
    own = (("--data-root", f"{record.root}/data"), ("--exec-root", f"{record.run_dir}/exec"))
    return pid if argv and Path(argv[0]).name == "dockerd" and has_options(argv, *own) else 0


def _is_own_helper(record: EngineRecord, argv: list[str]) -> bool:
    """Whether `argv` is the containerd the engine's dockerd started, or one of its shims:
    named by this engine's containerd paths (in its root-only exec root) and namespace."""
    containerd = f"{record.run_dir}/exec/containerd"
    name = Path(argv[0]).name if argv else ""
    if name == "containerd":
        return has_options(argv, ("--config", f"{containerd}/containerd.toml"))
    own = (("-namespace", f"harness-{record.id}"), ("-address", f"{containerd}/containerd.sock"))
    return name.startswith("containerd-shim") and has_options(argv, *own)


def own_helpers(record: EngineRecord) -> list[tuple[int, str | None]]:
    """(pid, start time) of the engine's containerd and shims, which outlive a killed
    dockerd: only processes of this user (`process_argv`) that `_is_own_helper`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            pid = int(entry.name)
            if _is_own_helper(record, process_argv(pid)):
                found.append((pid, process_start_time(pid)))
    return found
