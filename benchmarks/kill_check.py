"""Kill check: SIGKILL a whole `nox -s tests` at a random moment; count what it leaves behind.

Each round starts `nox -s tests -- -n 2` from the project root in its own process group,
SIGKILLs the whole group at a moment drawn uniformly from [--earliest, --latest] seconds
after the start, waits --wait seconds, then counts the containers, networks and volumes
labelled `harness.run-id` that were not there before the check started, and the harness's
temporary folders (`harness-*`) in the round's own temporary folder (its TMPDIR). Those
leftovers are reported (run id, role, worker, owner pid; the folder's name) and only then
removed, so the next round starts clean. Exits 1 if any round saw a leftover. Beside them, it
counts the temporary folders the killed run's reaper removed (its log, .harness/reaper.log):
no folder left is only shown where some were there to leave.

Resources of other runs on this engine (a concurrent CI run, say) are told apart by their
owner: a live owner process that is not a descendant of a kill check round is not ours, and
is neither counted nor removed. Every process a round started carries KILL_CHECK_ROUND in
its environment; survivors of the kill (a process in a session of its own) are reported and
killed by pid after counting.

    python benchmarks/kill_check.py [--kills 5] [--seed N] [--earliest 5] [--latest 60] [--wait 30]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
from record import figure, write_record

from tierharness.engine.labels import LABEL_PID, LABEL_PID_START, LABEL_ROLE, LABEL_RUN, LABEL_WORKER
from tierharness.owners import pid_alive

ROOT = Path(__file__).resolve().parent.parent
MARK = "KILL_CHECK_ROUND"
REAPER_LOG = ROOT / ".harness" / "reaper.log"  # the plugin's reapers append a line per run
FILTERS = {"label": [LABEL_RUN]}


@dataclass(frozen=True)
class Resource:
    kind: str  # container, network or volume
    ident: str
    name: str
    labels: dict[str, str]

    def describe(self) -> str:
        lab = self.labels
        owner = lab.get(LABEL_PID, "?")
        state = "alive" if _owner_alive(lab) else "dead"
        return (
            f"{self.kind} {self.name}: run {lab.get(LABEL_RUN)}, role {lab.get(LABEL_ROLE, '-')}, "
            f"worker {lab.get(LABEL_WORKER, '-')}, owner {owner} ({state})"
        )


def _owner_alive(labels: dict[str, str]) -> bool:
    pid = labels.get(LABEL_PID, "")
    return pid.isdigit() and pid_alive(int(pid), labels.get(LABEL_PID_START))


def _labelled(client: Any) -> dict[tuple[str, str], Resource]:
    found: dict[tuple[str, str], Resource] = {}
    for c in client.containers.list(all=True, ignore_removed=True, filters=FILTERS):
        found["container", c.id] = Resource("container", c.id, c.name, dict(c.labels))
    for n in client.networks.list(filters=FILTERS):
        found["network", n.id] = Resource("network", n.id, n.name, dict(n.attrs.get("Labels") or {}))
    for v in client.volumes.list(filters=FILTERS):
        found["volume", v.id] = Resource("volume", v.id, v.name, dict(v.attrs.get("Labels") or {}))
    return found


def _environ(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return b""


def _round_processes(token: str) -> list[int]:
    """Processes still alive that a round started (they carry its token in their environment)."""
    needle = f"{MARK}={token}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        pid = int(entry.name) if entry.name.isdigit() else os.getpid()
        if pid != os.getpid() and needle in _environ(pid).split(b"\0"):
            pids.append(pid)
    return sorted(pids)


def _ours(resource: Resource, tokens: set[str]) -> bool:
    """A leftover of a round: its owner is dead, or is a process some round started."""
    if not _owner_alive(resource.labels):
        return True
    env = _environ(int(resource.labels[LABEL_PID])).split(b"\0")
    return any(f"{MARK}={t}".encode() in env for t in tokens)


def _remove(client: Any, resource: Resource) -> None:
    try:
        if resource.kind == "container":
            client.containers.get(resource.ident).remove(force=True, v=True)
        elif resource.kind == "network":
            client.networks.get(resource.ident).remove()
        else:
            client.volumes.get(resource.ident).remove(force=True)
    except docker.errors.NotFound:
        pass


def _prepare() -> None:
    """Create or update the session's virtualenv once, outside the timed rounds."""
    print("kill check: preparing the nox session (nox -s tests --install-only)", flush=True)
    subprocess.run(["nox", "-s", "tests", "--install-only"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


def _round(n: int, at: float, temporary: Path) -> tuple[str, str]:
    """One start-and-kill, with `temporary` as its TMPDIR; returns (its token, how it ended)."""
    token = f"{n}-{uuid.uuid4().hex[:8]}"
    log = ROOT / "build" / "kill_check" / f"round-{n}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["nox", "-s", "tests", "--", "-n", "2"],
            cwd=ROOT,
            env={**os.environ, MARK: token, "TMPDIR": str(temporary)},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    started = time.monotonic()
    while time.monotonic() - started < at and proc.poll() is None:
        time.sleep(0.05)
    if proc.poll() is not None:
        took = time.monotonic() - started
        ended = f"ended by itself (exit {proc.returncode}) after {took:.1f}s, not killed"
    else:
        os.killpg(proc.pid, signal.SIGKILL)
        ended = f"killed at {time.monotonic() - started:.1f}s"
    proc.wait()
    return token, ended


def _swept_since(offset: int) -> int:
    """The temporary folders the reapers' lines after `offset` of REAPER_LOG say they removed."""
    if not REAPER_LOG.exists():
        return 0
    with REAPER_LOG.open("rb") as log:
        log.seek(offset)
        text = log.read().decode(errors="replace")
    return sum(int(n) for n in re.findall(r"and (\d+) temporary folder\(s\)", text))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=5, help="rounds of start-and-kill")
    parser.add_argument("--seed", type=int, default=None, help="seed for the kill moments")
    parser.add_argument("--earliest", type=float, default=5.0, help="earliest kill, seconds after start")
    parser.add_argument("--latest", type=float, default=60.0, help="latest kill, seconds after start")
    parser.add_argument("--wait", type=float, default=30.0, help="seconds between the kill and the count")
    parser.add_argument("--no-prepare", action="store_true", help="skip `nox -s tests --install-only`")
    args = parser.parse_args()
    # Kill moments, not secrets: a seedable generator is the point.
    seed = args.seed if args.seed is not None else random.randrange(2**32)  # noqa: S311
    rng = random.Random(seed)  # noqa: S311
    client = docker.from_env(timeout=60)
    if not args.no_prepare:
        _prepare()
    before = set(_labelled(client))
    print(
        f"kill check: {args.kills} kill(s) of `nox -s tests -- -n 2`, seed {seed}, "
        f"kill within {args.earliest:g}-{args.latest:g}s, count after {args.wait:g}s; "
        f"{len(before)} labelled resource(s) there before",
        flush=True,
    )
    tokens: set[str] = set()
    total = folders_left = folders_swept = 0
    for n in range(1, args.kills + 1):
        at = rng.uniform(args.earliest, args.latest)
        temporary = Path(tempfile.mkdtemp(prefix=f"kill-check-{n}-"))
        logged = REAPER_LOG.stat().st_size if REAPER_LOG.exists() else 0
        token, ended = _round(n, at, temporary)
        tokens.add(token)
        time.sleep(args.wait)
        now = _labelled(client)
        new = [now[key] for key in sorted(now.keys() - before)]
        leftovers = [r for r in new if _ours(r, tokens)]
        others = len(new) - len(leftovers)
        survivors = _round_processes(token)
        folders = sorted(p.name for p in temporary.glob("harness-*"))
        swept = _swept_since(logged)
        folders_swept += swept
        total += len(leftovers)
        folders_left += len(folders)
        print(
            f"kill {n}: {ended}; leftovers after {args.wait:g}s: {len(leftovers)}, "
            f"and {len(folders)} temporary folder(s) ({swept} removed by the reaper)"
            + (f" (ignored {others} of live runs not started here)" if others else "")
            + (f"; {len(survivors)} surviving process(es) of the round" if survivors else ""),
            flush=True,
        )
        for resource in leftovers:
            print(f"  leftover {resource.describe()}", flush=True)
        for name in folders:
            print(f"  leftover temporary folder {name}", flush=True)
        for pid in survivors:
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue  # gone meanwhile
            print(f"  survivor pid {pid}: {cmd.strip()[:160]}", flush=True)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        # Only after counting: clear the leftovers so the next round starts clean.
        for resource in leftovers:
            _remove(client, resource)
        shutil.rmtree(temporary, ignore_errors=True)
    print(
        f"kill check: {args.kills} kill(s), {total} leftover(s) and {folders_left} temporary folder(s) "
        f"in all ({folders_swept} removed by the killed runs' reapers), seed {seed}",
        flush=True,
    )
    write_record(
        "kill_check",
        [
            figure("SIGKILLs of `nox -s tests -- -n 2` at random moments", args.kills),
            figure(f"leftovers {args.wait:g} s after each kill, in all", total, "", "0"),
            figure(f"temporary folders left {args.wait:g} s after each kill, in all", folders_left, "", "0"),
            figure("temporary folders the killed runs' reapers removed, in all", folders_swept),
            figure("seed of the kill moments", seed),
        ],
    )
    return 1 if total or folders_left else 0


if __name__ == "__main__":
    sys.exit(main())
