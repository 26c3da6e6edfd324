"""Removes a run's containers, networks and volumes once the run's process is gone, and the
temporary folders of processes that are gone (tierharness.scratch).

Testcontainers' Ryuk cannot be pulled here, so the harness brings its own reaper:
a small host process, started in its own session by the run's controlling
process (the pytest controller). It watches that pid; when the pid dies -- at a
normal end or by SIGKILL -- it removes everything labelled with the run's id.
It keeps sweeping for a short grace period, because workers killed mid-start may
still create a container after their controller died. A run that ended normally says so
first (`end_marker`): its workers are gone and nothing of it is still being created, so its
reaper sweeps once and exits.

Only resources labelled with *this* run id are touched, so concurrent runs on
the same daemon never disturb each other. `sweep_dead_runs` additionally cleans
up after runs whose reaper itself was lost (machine reboot, kill of the whole
process tree) or that never had one (a test's made-up run): it only removes
resources whose owner is provably dead (`judge_owner`, docs/dead-runs.md). A pid
names a process only within one boot and one pid namespace, so a run labelled in
another pid namespace (a CI job in another container on the host network, same
host name) is left alone until it is far older than any run. Each worker sweeps at its start,
and a reaper sweeps alongside its own run during its grace period, so runs whose
owners died with the reaper's run are cleaned up then, not only by the next run.

    python -m tierharness.engine.reaper --run-id ID --pid PID [--grace 12] [--ended PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from tierharness.config import environment
from tierharness.engine.labels import (
    LABEL_BOOT,
    LABEL_HOST,
    LABEL_PID,
    LABEL_PID_NS,
    LABEL_PID_START,
    LABEL_RUN,
    OwnerPlace,
)
from tierharness.engine.reuse import expire_idle
from tierharness.owners import pid_alive, process_start_time
from tierharness.process import start_detached
from tierharness.scratch import sweep_scratch

__all__ = [
    "Verdict",
    "containers_of",
    "end_marker",
    "judge_owner",
    "mark_ended",
    "reaped",
    "remove_labelled",
    "spawn_reaper",
    "sweep_dead_runs",
]


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


@dataclass(frozen=True)
class Verdict:
    """What can be known here of a resource's owner: "alive", "dead" (provably), or
    "unknown" (its pid is a number somewhere this process cannot look)."""

    state: str
    why: str


def judge_owner(
    labels: Mapping[str, str], here: OwnerPlace, alive: Callable[[int, str | None], bool] = pid_alive
) -> Verdict | None:
    """The verdict on the owner of a resource with `labels`, seen from `here`; None when it
    has no owner pid (kept --harness-reuse containers: they expire when idle instead)."""
    pid = labels.get(LABEL_PID, "")
    if not pid.isdigit():
        return None
    host = labels.get(LABEL_HOST)
    if host != here.host:
        return Verdict("unknown", f"owner pid {pid} is on host {host}")
    boot, pid_ns = labels.get(LABEL_BOOT), labels.get(LABEL_PID_NS)
    if not (boot and pid_ns and here.boot_id and here.pid_ns):
        # Labelled by an older harness (or off Linux): the pid may be another namespace's.
        return Verdict("unknown", f"owner pid {pid} labelled without boot id and pid namespace")
    if boot != here.boot_id:
        return Verdict("dead", f"owner pid {pid} ran before the machine's last reboot")
    if pid_ns != here.pid_ns:
        return Verdict("unknown", f"owner pid {pid} is in another pid namespace ({pid_ns})")
    if alive(int(pid), labels.get(LABEL_PID_START)):
        return Verdict("alive", f"in use by live pid {pid}")
    return Verdict("dead", f"owner pid {pid} is gone")


def _created(attrs: Mapping[str, Any]) -> float | None:
    """When the engine created a resource (seconds since the epoch), None when it does not say.
    Containers give an integer; networks ("Created") and volumes ("CreatedAt") an ISO time."""
    value = attrs.get("Created", attrs.get("CreatedAt"))
    if isinstance(value, int | float):
        return float(value)
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return None


def _resources(client: Any) -> Iterator[tuple[dict[str, str], float | None]]:
    """The labels and creation time of every resource labelled with a run id."""
    flt = {"label": [LABEL_RUN]}
    # sparse: the listing carries the labels; every worker sweeps as it starts, so no inspect of each.
    listed = [
        *client.containers.list(all=True, sparse=True, filters=flt),
        *client.networks.list(filters=flt),
        *client.volumes.list(filters=flt),
    ]
    for resource in listed:
        yield resource.attrs.get("Labels") or {}, _created(resource.attrs)


def _dead_runs(
    client: Any, here: OwnerPlace, alive: Callable[[int, str | None], bool], max_age: float
) -> set[str]:
    verdicts: dict[str, set[str]] = {}
    newest: dict[str, float] = {}  # a run's youngest resource: its age is the run's age
    for labels, created in _resources(client):
        run_id = labels.get(LABEL_RUN)
        if not run_id:
            continue
        # Unknown creation time counts as new: age alone must never remove a resource.
        newest[run_id] = max(newest.get(run_id, 0.0), time.time() if created is None else created)
        verdict = judge_owner(labels, here, alive)
        if verdict is not None:
            verdicts.setdefault(run_id, set()).add(verdict.state)
    cutoff = time.time() - max_age
    return {
        run_id
        for run_id, states in verdicts.items()
        if "alive" not in states and ("dead" in states or newest[run_id] < cutoff)
    }


def sweep_dead_runs(
    client: Any,
    alive: Callable[[int, str | None], bool] = pid_alive,
    *,
    expire: bool = True,
    here: OwnerPlace | None = None,
) -> list[str]:
    """Clean up runs whose owner process is provably dead, runs whose owner cannot be judged
    from here once older than HARNESS_ORPHAN_AGE, and (with `expire`) kept containers idle for
    too long; returns the removed runs' ids."""
    dead = _dead_runs(client, here or OwnerPlace.here(), alive, environment().orphan_age)
    for run_id in sorted(dead):
        remove_labelled(client, {"label": [f"{LABEL_RUN}={run_id}"]})
    if expire:
        expire_idle(client)  # kept (--harness-reuse) containers unused for longer than their idle time
    return sorted(dead)


def end_marker(state_dir: Path, run_id: str) -> Path:
    """The file a run's owner writes once it has ended normally: everything it started is
    stopped, and no process of the run is left to start more. Its reaper reads and removes it."""
    return state_dir / "runs" / f"{run_id}.ended"


def spawn_reaper(
    run_id: str, pid: int, log_path: Path, *, ended: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start the reaper detached: it must outlive a SIGKILL of the process group that started it.
    `ended`: the run's end marker (`end_marker`), if its owner writes one at a normal end."""
    argv = [sys.executable, "-m", "tierharness.engine.reaper", "--run-id", run_id, "--pid", str(pid)]
    if ended is not None:
        argv += ["--ended", str(ended)]
    return start_detached(argv, log_path=log_path)


def mark_ended(state_dir: Path, run_id: str) -> None:
    """Write the run's end marker: its owner has ended normally. A failed write only leaves the
    reaper its grace, so it never hides the caller's own error or ends its run badly."""
    with contextlib.suppress(OSError):
        end_marker(state_dir, run_id).touch()


@contextlib.contextmanager
def reaped(run_id: str, state_dir: Path, log_path: Path | None = None) -> Iterator[None]:
    """A reaper for run `run_id` of this process (a command's), released when the block ends.
    Everything of the run must be started inside the block, by context managers that stop what
    they start: however the block ends then, by a return or an exception, nothing is left to
    start. A kill never reaches its end, and leaves the reaper its grace."""
    ended = end_marker(state_dir, run_id)
    ended.parent.mkdir(parents=True, exist_ok=True)
    spawn_reaper(run_id, os.getpid(), log_path or state_dir / "reaper.log", ended=ended)
    try:
        yield
    finally:
        mark_ended(state_dir, run_id)


def _ended_normally(ended: Path | None) -> bool:
    """Whether the owner wrote its end marker before it went; the marker is consumed."""
    if ended is None or not ended.exists():
        return False
    with contextlib.suppress(OSError):
        ended.unlink()
    return True


def _watch(run_id: str, pid: int, grace: float, poll: float, ended: Path | None = None) -> int:
    start_time = process_start_time(pid)
    while pid_alive(pid, start_time):
        time.sleep(poll)
    # Killed, the owner may have left a worker mid-start, or a creation the engine is still
    # carrying out: sweep for the grace period. Ended normally, it left neither: sweep once.
    normal = _ended_normally(ended)
    if normal:
        grace = 0.0
    # The temporary folders that SIGKILL left (a registry's credentials among them) first: they
    # need no engine, and one that is down or slow to answer must not keep them.
    folders = sweep_scratch()
    from tierharness.engine.client import engine_connection  # noqa: PLC0415  lazy: a watching reaper loads the docker SDK once its run is gone

    # The engine of the run it watches (inherited DOCKER_HOST and TLS), also a remote one.
    client = engine_connection(timeout=30)
    flt = {"label": [f"{LABEL_RUN}={run_id}"]}
    deadline = time.monotonic() + grace
    total = 0
    swept: set[str] = set()
    while True:
        total += remove_labelled(client, flt)
        # Again at every round: a worker may outlive the controller by a moment.
        folders += sweep_scratch()
        # Runs whose owners died with this one (a test's made-up runs, a nested run) have
        # no reaper of their own, or lost it: clean them up too, not only at the next run.
        try:
            swept.update(r for r in sweep_dead_runs(client) if r != run_id)
        except Exception as exc:  # the sweep is a courtesy: it must not stop this run's removal
            print(f"reaper: run {run_id}: sweep of dead runs failed: {exc}", flush=True)
        if time.monotonic() >= deadline:
            break
        time.sleep(1.0)
    print(
        f"reaper: run {run_id}: owner {pid} {'ended normally' if normal else 'gone'}, removed {total} "
        f"resource(s) and {len(folders)} temporary folder(s) of processes that are gone",
        flush=True,
    )
    if swept:
        print(f"reaper: run {run_id}: swept runs whose owner is gone: {', '.join(sorted(swept))}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tierharness.engine.reaper", description=__doc__)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--grace", type=float, default=environment().reaper_grace)
    parser.add_argument("--poll", type=float, default=0.5)
    parser.add_argument("--ended", type=Path, help="the run's end marker (end_marker): if present, no grace")
    args = parser.parse_args(argv)
    return _watch(args.run_id, args.pid, args.grace, args.poll, args.ended)


if __name__ == "__main__":
    sys.exit(main())
