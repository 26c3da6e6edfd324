"""Removes a run's containers, networks and volumes once the run's process is gone.

Testcontainers' Ryuk cannot be pulled here, so the harness brings its own reaper:
a small host process, started in its own session by the run's controlling
process (the pytest controller). It watches that pid; when the pid dies -- at a
normal end or by SIGKILL -- it removes everything labelled with the run's id.
It keeps sweeping for a short grace period, because workers killed mid-start may
still create a container after their controller died.

Only resources labelled with *this* run id are touched, so concurrent runs on
the same daemon never disturb each other. `sweep_dead_runs` additionally cleans
up after runs whose reaper itself was lost (machine reboot, kill of the whole
process tree) or that never had one (a test's made-up run): it only removes
resources whose owner pid on this host is gone. Each worker sweeps at its start,
and a reaper sweeps alongside its own run during its grace period, so runs whose
owners died with the reaper's run are cleaned up then, not only by the next run.

    python -m tierharness.runtime.reaper --run-id ID --pid PID [--grace 12]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tierharness.config import environment
from tierharness.process import start_detached
from tierharness.runtime.labels import (
    LABEL_HOST,
    LABEL_PID,
    LABEL_PID_START,
    LABEL_RUN,
    proc_stat,
    process_start_time,
)
from tierharness.runtime.reuse import expire_idle

__all__ = ["containers_of", "pid_alive", "remove_labelled", "spawn_reaper", "sweep_dead_runs"]


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


def containers_of(client: Any, run_id: str) -> list[Any]:
    """Every container of run `run_id`, running or not."""
    return list(
        client.containers.list(all=True, ignore_removed=True, filters={"label": [f"{LABEL_RUN}={run_id}"]})
    )


def remove_labelled(client: Any, filters: dict[str, Any]) -> int:
    """Remove containers, then networks, then volumes matching label filters; returns the count."""
    removed = 0
    # sparse: the listing alone (one call); removal needs only the id, not an inspect of each.
    for container in client.containers.list(all=True, sparse=True, filters=filters):
        with contextlib.suppress(Exception):  # already gone, or being removed by its owner
            container.remove(force=True, v=True)
            removed += 1
    for network in client.networks.list(filters=filters):
        with contextlib.suppress(Exception):
            network.remove()
            removed += 1
    for volume in client.volumes.list(filters=filters):
        with contextlib.suppress(Exception):
            volume.remove(force=True)
            removed += 1
    return removed


def _labels_of(client: Any) -> list[dict[str, str]]:
    seen: list[dict[str, str]] = []
    flt = {"label": [LABEL_RUN]}
    # sparse: the listing carries the labels; every worker sweeps as it starts, so no inspect of each.
    containers = client.containers.list(all=True, sparse=True, filters=flt)
    seen.extend(c.attrs.get("Labels") or {} for c in containers)
    seen.extend(n.attrs.get("Labels") or {} for n in client.networks.list(filters=flt))
    seen.extend(v.attrs.get("Labels") or {} for v in client.volumes.list(filters=flt))
    return seen


def sweep_dead_runs(
    client: Any, alive: Callable[[int, str | None], bool] = pid_alive, *, expire: bool = True
) -> list[str]:
    """Clean up runs on this host whose owner process is gone, and (with `expire`) kept
    containers idle for too long; returns the dead runs' ids."""
    host = socket.gethostname()
    dead: set[str] = set()
    for labels in _labels_of(client):
        run_id, pid = labels.get(LABEL_RUN), labels.get(LABEL_PID, "")
        if not run_id or labels.get(LABEL_HOST) != host or not pid.isdigit():
            continue
        if not alive(int(pid), labels.get(LABEL_PID_START)):
            dead.add(run_id)
    for run_id in sorted(dead):
        remove_labelled(client, {"label": [f"{LABEL_RUN}={run_id}"]})
    if expire:
        expire_idle(client)  # kept (--harness-reuse) containers unused for longer than their idle time
    return sorted(dead)


def spawn_reaper(run_id: str, pid: int, log_path: Path) -> subprocess.Popen[bytes]:
    """Start the reaper detached: it must outlive a SIGKILL of the process group that started it."""
    argv = [sys.executable, "-m", "tierharness.runtime.reaper", "--run-id", run_id, "--pid", str(pid)]
    return start_detached(argv, log_path=log_path)


def _watch(run_id: str, pid: int, grace: float, poll: float) -> int:
    start_time = process_start_time(pid)
    while pid_alive(pid, start_time):
        time.sleep(poll)
    from tierharness.engine import engine_connection

    # The engine of the run it watches (inherited DOCKER_HOST and TLS), also a remote one.
    client = engine_connection(timeout=30)
    flt = {"label": [f"{LABEL_RUN}={run_id}"]}
    deadline = time.monotonic() + grace
    total = 0
    swept: set[str] = set()
    while True:
        total += remove_labelled(client, flt)
        # Runs whose owners died with this one (a test's made-up runs, a nested run) have
        # no reaper of their own, or lost it: clean them up too, not only at the next run.
        try:
            swept.update(r for r in sweep_dead_runs(client) if r != run_id)
        except Exception as exc:  # the sweep is a courtesy: it must not stop this run's removal
            print(f"reaper: run {run_id}: sweep of dead runs failed: {exc}", flush=True)
        if time.monotonic() >= deadline:
            break
        time.sleep(1.0)
    print(f"reaper: run {run_id}: owner {pid} gone, removed {total} resource(s)", flush=True)
    if swept:
        print(f"reaper: run {run_id}: swept runs whose owner is gone: {', '.join(sorted(swept))}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tierharness.runtime.reaper", description=__doc__)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--grace", type=float, default=environment().reaper_grace)
    parser.add_argument("--poll", type=float, default=0.5)
    args = parser.parse_args(argv)
    return _watch(args.run_id, args.pid, args.grace, args.poll)


if __name__ == "__main__":
    sys.exit(main())
