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
process tree): it only removes resources whose owner pid on this host is gone.

    python -m harness.runtime.reaper --run-id ID --pid PID [--grace 12]
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

from harness.runtime.labels import LABEL_HOST, LABEL_PID, LABEL_PID_START, LABEL_RUN, process_start_time

__all__ = ["containers_of", "pid_alive", "remove_labelled", "spawn_reaper", "sweep_dead_runs"]


def pid_alive(pid: int, start_time: str | None = None) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        # Not Linux, or gone: fall back to the portable probe.
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    state = stat[stat.rindex(")") + 2 :].split()[0]
    if state in ("Z", "X"):  # a zombie is dead, its parent just has not reaped it
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
    for container in client.containers.list(all=True, ignore_removed=True, filters=filters):
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
    seen.extend(c.labels for c in client.containers.list(all=True, ignore_removed=True, filters=flt))
    seen.extend(n.attrs.get("Labels") or {} for n in client.networks.list(filters=flt))
    seen.extend(v.attrs.get("Labels") or {} for v in client.volumes.list(filters=flt))
    return seen


def sweep_dead_runs(client: Any, alive: Callable[[int, str | None], bool] = pid_alive) -> list[str]:
    """Clean up runs on this host whose owner process is gone; returns their run ids."""
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
    return sorted(dead)


def spawn_reaper(run_id: str, pid: int, log_path: Path) -> subprocess.Popen[bytes]:
    """Start the reaper detached: it must outlive a SIGKILL of the process group that started it."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "harness.runtime.reaper", "--run-id", run_id, "--pid", str(pid)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
        )


def _watch(run_id: str, pid: int, grace: float, poll: float) -> int:
    start_time = process_start_time(pid)
    while pid_alive(pid, start_time):
        time.sleep(poll)
    import docker

    client = docker.from_env(timeout=30)
    flt = {"label": [f"{LABEL_RUN}={run_id}"]}
    deadline = time.monotonic() + grace
    total = 0
    while True:
        total += remove_labelled(client, flt)
        if time.monotonic() >= deadline:
            break
        time.sleep(1.0)
    print(f"reaper: run {run_id}: owner {pid} gone, removed {total} resource(s)", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.runtime.reaper", description=__doc__)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--grace", type=float, default=float(os.environ.get("HARNESS_REAPER_GRACE", "12")))
    parser.add_argument("--poll", type=float, default=0.5)
    args = parser.parse_args(argv)
    return _watch(args.run_id, args.pid, args.grace, args.poll)


if __name__ == "__main__":
    sys.exit(main())
