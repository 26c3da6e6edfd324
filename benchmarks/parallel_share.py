"""The harness's share of a `-n 2` run: where the wall time and the CPU of a database suite go.

Writes a suite into a temporary project (each test connects to Postgres and Redis through
DATABASE_URL and REDIS_URL, writes 5 rows and increments a counter 3 times) and runs it at
`-n 0` and `-n 2` in four variants:

- `clean`: each test requests `harness_clean` (a reset before it);
- `services`: the same tests requesting `harness_services` only (no reset), so what
  `harness_clean` adds per test is the difference in the tests' setup and teardown time;
- `raw`: the same tests with `-p no:harness`, on one Postgres and one Redis this script
  starts (no fixture, no reset): the cost of the suite and of xdist without the harness;
- `trivial`: as many trivial tests with `-p no:harness`: what xdist costs on its own.

For each run: the wall time; the CPU of the pytest tree, split into the controller, each xdist
worker and the rest of the tree (the migration commands, and what the processes spent after
the last poll: the tree's total is the rusage of the reaped children, the split is /proc polled
every 50 ms); the harness's reaper (started detached, found while its parent lives); the
containers (their cgroup's CPU: the last value read while they run, or, for `raw`, the
difference across the run). The project's conftest collects each phase's duration from the
reports (in the controller). Medians of `--runs` runs. Goal: `harness_clean` adds at most
1.5 ms per test at `-n 2` (its setup and teardown over `harness_services`', the reset included).

The project migrates in each worker (`harness_migrate_once = false`: a committed migrated image
would outlive the benchmark), and the reaper's grace after its run is 1 s (HARNESS_REAPER_GRACE),
so that it is gone before the next run starts. `--profile DIR` also runs each variant once
under cProfile (every pytest process: DIR/<variant>-n<N>-<process>.pstats) and prints the
harness's functions by own time.

    python benchmarks/parallel_share.py [--runs 3] [--tests 200] [--profile DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from record import figure, write_record
from share_suite import make_project

from tierharness.config import load_settings
from tierharness.engine.client import engine_client
from tierharness.engine.labels import LABEL_ROLE, LABEL_RUN, RunIdentity
from tierharness.runtime.containers import start_services, stop
from tierharness.runtime.networking import use_host_network

PLUGIN = "harness"  # the pytest11 entry point's name in pyproject.toml
GOAL_MS = 1.5
POLL = 0.05
VARIANTS = ("clean", "services", "raw", "trivial")
PHASES = ("setup", "call", "teardown")


@dataclass
class Sample:
    """One run's figures: seconds of wall time, CPU-seconds per part, phases' median ms."""

    wall: float = 0.0
    tree: float = 0.0  # the whole pytest tree, from the rusage of the reaped children
    controller: float = 0.0
    workers: dict[str, float] = field(default_factory=dict)  # by start order: gw0, gw1
    reaper: float = 0.0
    containers: dict[str, float] = field(default_factory=dict)  # by role: postgres, redis
    phases: dict[str, float] = field(default_factory=dict)  # median ms of each phase
    reset_ms: list[float] = field(default_factory=list)  # each worker's recorded median


def _cpu(proc: psutil.Process) -> float | None:
    try:
        t = proc.cpu_times()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    return float(t.user + t.system)


def cgroup_cpu(cid: str) -> float | None:
    """CPU-seconds of a container's cgroup: v1 (cgroupfs or systemd driver), else v2."""
    candidates = [
        (Path(f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage"), 1e-9),
        (Path(f"/sys/fs/cgroup/cpuacct/system.slice/docker-{cid}.scope/cpuacct.usage"), 1e-9),
        (Path(f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/cpu.stat"), 1e-6),
        (Path(f"/sys/fs/cgroup/docker/{cid}/cpu.stat"), 1e-6),
    ]
    for path, scale in candidates:
        try:
            text = path.read_text()
        except OSError:
            continue
        if path.name == "cpu.stat":
            fields = dict(line.split() for line in text.splitlines() if line)
            return int(fields["usage_usec"]) * scale
        return int(text) * scale
    return None


class Watcher:
    """Polls the pytest tree, the run's reaper and the run's containers, last value kept."""

    def __init__(self, root: psutil.Process, run_id: str) -> None:
        self.root = root
        self.run_id = run_id
        self.cpu: dict[int, float] = {}
        self.kind: dict[int, str] = {}
        self.reaper: psutil.Process | None = None
        self.containers: dict[str, str] = {}  # id -> role
        self.container_cpu: dict[str, float] = {}
        self.client = engine_client()
        self.last_list = 0.0

    def poll(self) -> None:
        try:
            tree = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            tree = []
        for proc in tree:
            if proc.pid not in self.kind:
                self.kind[proc.pid] = self._classify(proc)
                if self.kind[proc.pid] == "reaper":
                    self.reaper = proc
            value = _cpu(proc)
            if value is not None:
                self.cpu[proc.pid] = value
        if self.reaper is not None and self.reaper not in tree:  # detached: no longer a child
            value = _cpu(self.reaper)
            if value is not None:
                self.cpu[self.reaper.pid] = value
        self._poll_containers()

    def _classify(self, proc: psutil.Process) -> str:
        if proc.pid == self.root.pid:
            return "controller"
        try:
            cmd = " ".join(proc.cmdline())
            parent = proc.ppid()
        except psutil.Error:
            return "other"
        if "tierharness.engine.reaper" in cmd:
            return "reaper"
        if parent == self.root.pid and "exec(eval(sys.stdin.readline()))" in cmd:
            return "worker"  # an execnet gateway: an xdist worker
        return "other"

    def _poll_containers(self) -> None:
        now = time.monotonic()
        if now - self.last_list > 0.5:  # the engine's API costs CPU too: list twice a second
            self.last_list = now
            for c in self.client.containers.list(filters={"label": f"{LABEL_RUN}={self.run_id}"}):
                self.containers.setdefault(c.id, c.labels.get(LABEL_ROLE, "other"))
        for cid in self.containers:
            value = cgroup_cpu(cid)
            if value is not None:
                self.container_cpu[cid] = value

    def finish(self, timeout: float) -> None:
        """Polls the reaper until it exits (it outlives the run by its grace period)."""
        deadline = time.monotonic() + timeout
        while self.reaper is not None and self.reaper.is_running() and time.monotonic() < deadline:
            if self.reaper.status() == psutil.STATUS_ZOMBIE:
                break
            self.poll()
            time.sleep(POLL)
        self.client.close()


@dataclass
class Raw:
    """The Postgres and Redis of the `raw` variant: one of each for the whole benchmark."""

    env: dict[str, str]
    containers: dict[str, str]  # id -> role


@contextmanager
def raw_services(run_id: str) -> Iterator[Raw]:
    images = load_settings().images
    identity = RunIdentity.for_this_process(run_id)
    # On the host network where the harness's workers would be (harness_network = auto).
    on_host = use_host_network("auto", engine_client())
    (pg, pg_info), redis_pair = start_services(
        images["postgres"].local, images["redis"].local, identity, on_host=on_host
    )
    try:
        assert redis_pair is not None
        rd, rd_info = redis_pair
        try:
            yield Raw(
                {"DATABASE_URL": pg_info.url, "REDIS_URL": rd_info.url},
                {pg_info.container_id: "postgres", rd_info.container_id: "redis"},
            )
        finally:
            stop(rd)
    finally:
        stop(pg)


def child_env(run_id: str, extra: dict[str, str]) -> dict[str, str]:
    drop = ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "DATABASE_URL", "REDIS_URL")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HARNESS_", "PYTEST_")) and k not in drop}
    return env | {"HARNESS_RUN_ID": run_id, "HARNESS_REAPER_GRACE": "1"} | extra


def run_once(where: Path, variant: str, workers: int, raw: Raw, profile: str | None = None) -> Sample:
    argv = [sys.executable, "-m", "pytest", "-n", str(workers), "-p", "no:cacheprovider"]
    run_id = f"share-{uuid.uuid4().hex[:8]}"
    extra = {"SHARE_PROFILE": profile} if profile else {}
    if variant in ("raw", "trivial"):
        argv += ["-p", f"no:{PLUGIN}"]
    if variant == "raw":
        extra |= raw.env
        subprocess.run([sys.executable, "migrate.py"], cwd=where, env=child_env(run_id, extra), check=True)
    fixed = {cid: cgroup_cpu(cid) or 0.0 for cid in raw.containers} if variant == "raw" else {}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    proc = subprocess.Popen(
        argv, cwd=where, env=child_env(run_id, extra), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    watcher = Watcher(psutil.Process(proc.pid), run_id)
    while proc.poll() is None:
        watcher.poll()
        time.sleep(POLL)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = proc.stdout.read() if proc.stdout else b""
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{out.decode(errors='replace')}")
    watcher.finish(timeout=30)
    sample = _sample(
        watcher, where, wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    )
    for cid, start in fixed.items():
        role = raw.containers[cid]
        sample.containers[role] = (cgroup_cpu(cid) or start) - start
    return sample


def _sample(watcher: Watcher, where: Path, wall: float, tree: float) -> Sample:
    sample = Sample(wall=wall, tree=tree)
    sample.controller = watcher.cpu.get(watcher.root.pid, 0.0)
    workers = sorted(pid for pid, kind in watcher.kind.items() if kind == "worker")
    sample.workers = {f"gw{i}": watcher.cpu.get(pid, 0.0) for i, pid in enumerate(workers)}
    sample.reaper = sum(watcher.cpu.get(pid, 0.0) for pid, kind in watcher.kind.items() if kind == "reaper")
    for cid, role in watcher.containers.items():
        sample.containers[role] = sample.containers.get(role, 0.0) + watcher.container_cpu.get(cid, 0.0)
    durations = json.loads((where / "durations.json").read_text(encoding="utf-8"))
    sample.phases = {phase: statistics.median(durations[phase]) * 1000 for phase in PHASES}
    manifest = where / ".harness" / "last-run.json"
    if manifest.exists():
        for worker in json.loads(manifest.read_text(encoding="utf-8")).get("workers", {}).values():
            iso = worker.get("isolation", {})
            if iso.get("resets"):
                sample.reset_ms.append(float(iso["median_ms"]))
        manifest.unlink()  # the next run's must be its own
    return sample


def _med(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def summarise(samples: list[Sample]) -> dict[str, float]:
    """Medians over runs of each part; the per-worker and per-container parts summed."""
    parts = {
        "wall s": _med([s.wall for s in samples]),
        "tree CPU-s": _med([s.tree for s in samples]),
        "controller CPU-s": _med([s.controller for s in samples]),
        "workers CPU-s": _med([sum(s.workers.values()) for s in samples]),
        "rest of tree CPU-s": _med([s.tree - s.controller - sum(s.workers.values()) for s in samples]),
        "reaper CPU-s": _med([s.reaper for s in samples]),
        "postgres CPU-s": _med([s.containers.get("postgres", 0.0) for s in samples]),
        "redis CPU-s": _med([s.containers.get("redis", 0.0) for s in samples]),
        "reset median ms": _med([m for s in samples for m in s.reset_ms]),
    }
    for phase in PHASES:
        parts[f"{phase} median ms"] = _med([s.phases[phase] for s in samples])
    for name in sorted({w for s in samples for w in s.workers}):
        parts[f"{name} CPU-s"] = _med([s.workers.get(name, 0.0) for s in samples])
    return parts


def measure(root: Path, runs: int, tests: int, raw: Raw) -> dict[tuple[str, int], dict[str, float]]:
    results: dict[tuple[str, int], list[Sample]] = {}
    projects = {v: root / v for v in VARIANTS}
    for variant, where in projects.items():
        make_project(where, variant, tests)
    for workers in (0, 2):
        for variant in VARIANTS:
            run_once(projects[variant], variant, workers, raw)  # warm the file cache and the bytecode
        for _ in range(runs):
            for variant in VARIANTS:  # interleaved: a slow moment hits every variant
                sample = run_once(projects[variant], variant, workers, raw)
                results.setdefault((variant, workers), []).append(sample)
                print(
                    f"  -n {workers} {variant}: {sample.wall:.2f} s wall, {sample.tree:.2f} CPU-s", flush=True
                )
    return {key: summarise(samples) for key, samples in results.items()}


ORDER = ["wall s", "tree CPU-s", "controller CPU-s", "workers CPU-s", "gw0 CPU-s", "gw1 CPU-s"]
ORDER += ["rest of tree CPU-s", "reaper CPU-s", "postgres CPU-s", "redis CPU-s", "reset median ms"]
ORDER += [f"{phase} median ms" for phase in PHASES]
# Parts that a variant does not have: no harness, no reaper nor reset; no database, no containers.
ABSENT = {
    "services": {"reset median ms"},
    "raw": {"reset median ms", "reaper CPU-s"},
    "trivial": {"reset median ms", "reaper CPU-s", "postgres CPU-s", "redis CPU-s"},
}


def table(summary: dict[tuple[str, int], dict[str, float]]) -> list[str]:
    keys = [(v, w) for w in (0, 2) for v in VARIANTS]
    lines = [f"{'':20}" + "".join(f"{f'-n {w} {v}':>14}" for v, w in keys)]
    for part in ORDER:
        cells = [
            f"{summary[k][part]:>14.3f}"
            if part in summary[k] and part not in ABSENT.get(k[0], ())
            else f"{'-':>14}"
            for k in keys
        ]
        lines.append(f"{part:20}" + "".join(cells))
    return lines


def added_ms(summary: dict[tuple[str, int], dict[str, float]], workers: int) -> float:
    """What harness_clean adds to a test over harness_services: its setup and teardown."""
    clean, services = summary[("clean", workers)], summary[("services", workers)]
    return sum(clean[f"{p} median ms"] - services[f"{p} median ms"] for p in ("setup", "teardown"))


def profile_all(root: Path, tests: int, raw: Raw, folder: Path) -> None:
    """Each variant once under cProfile; the harness's own functions by their own time."""
    folder.mkdir(parents=True, exist_ok=True)
    for workers in (0, 2):
        for variant in ("clean", "services"):
            where = root / f"profile-{variant}-{workers}"
            make_project(where, variant, tests)
            run_once(where, variant, workers, raw, profile=str(folder.resolve() / f"{variant}-n{workers}"))
    for path in sorted(folder.glob("*-gw0.pstats")) + sorted(folder.glob("*-n0-controller.pstats")):
        print(f"\n{path.name}: the harness's functions, by own time")
        stats = pstats.Stats(str(path))
        stats.sort_stats("tottime").print_stats("tierharness", 15)


def record(summary: dict[tuple[str, int], dict[str, float]], runs: int, tests: int) -> None:
    figures = []
    for (variant, workers), parts in summary.items():
        for part in ORDER:
            if part in parts and part not in ABSENT.get(variant, ()):
                name, unit = part.rsplit(" ", 1)
                figures.append(figure(f"-n {workers}, {variant}: {name}, median", parts[part], unit))
    for workers in (0, 2):
        goal = f"<= {GOAL_MS} ms" if workers == 2 else ""
        figures.append(
            figure(
                f"-n {workers}, harness_clean over harness_services, per test",
                added_ms(summary, workers),
                "ms",
                goal,
            )
        )
    figures += [figure("runs", runs), figure("tests", tests)]
    write_record("parallel_share", figures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tests", type=int, default=200)
    parser.add_argument("--profile", type=Path, help="run each variant once under cProfile, into this folder")
    args = parser.parse_args()
    run_id = f"share-raw-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="parallel-share-") as tmp, raw_services(run_id) as raw:
        if args.profile:
            profile_all(Path(tmp), args.tests, raw, args.profile)
            return
        summary = measure(Path(tmp), args.runs, args.tests, raw)
    print(f"\nmedians of {args.runs} runs, {args.tests} tests; CPU in CPU-seconds, phases per test")
    for line in table(summary):
        print(line)
    for workers in (0, 2):
        goal = f" (goal <= {GOAL_MS} ms)" if workers == 2 else ""
        print(
            f"-n {workers}: harness_clean adds {added_ms(summary, workers):.3f} ms per test "
            f"over harness_services{goal}"
        )
    record(summary, args.runs, args.tests)


if __name__ == "__main__":
    main()
