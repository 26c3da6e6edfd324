"""Where a `.ci/run` spends its time: the machine's CPU, the engine's share of it, and when the cores idle.

Runs `bash .ci/run` (CI=true, as CI runs it) in a fresh clone of this checkout's HEAD, sampling the
machine's busy and idle CPU every half second, and reads the CPU seconds of the engine's two
daemons (dockerd, containerd) before and after: their work (BuildKit's included, and every
container's start and removal) is no lane's, and shows in no step's own process. The step table
gives each step's own processes' CPU; what neither they nor the daemons used is the containers',
the build steps' and the kernel's. Across all of them, it reads how much of the busy CPU the
kernel spent (processes' starts and ends, page faults, files, namespaces, packet filtering) and
how many processes and threads the machine started: a cost spread over thousands of short
processes shows there and in no single program. From the table it also splits the cores' idle
time by phase:

- before the tests lane starts (set-up, the cleans);
- while the tests lane runs beside another lane (checks, image, root);
- while the tests lane runs alone: its tests wait on containers and subprocesses, so its two
  workers leave part of a core idle;
- after it: perf and deploy, which judge the stack's latency, so nothing runs beside them but
  the build cache's prune (at nice 19, no build).

The run's busy CPU over the cores is the wall time it would take if no core ever idled; the
idle by phase says where the rest goes. Goal: `.ci/run` at most 300 s warm. With `--runs N`, N
runs one after another, each in a fresh clone, and each run's step table is printed: the record
adds each run's wall time and its tests lane's, and how many of the N met the goal; the breakdown
is the last run's.

Run it as root (as CI runs `.ci/run`), on a machine that has nothing else to do, after a first
`.ci/run` of the same commit: the environments, images and build cache are then warm.

    python benchmarks/ci_breakdown.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
from cpu import daemon_cpu, kernel_cpu, machine_cpu, tasks_started
from record import ROOT, figure, write_record

GOAL_SECONDS = 300
SAMPLE_SECONDS = 0.5
_STEP = re.compile(r"^t\+(\d+)\s+(\S+)\s+(\d+)\s+(\d+)\s+(.*)$")
_TOTAL = re.compile(r"^total\s+(\d+)\s+\(exit (\d+)\)")
_BESIDE = ("checks", "image", "root")  # the lanes that run beside the tests lane


@dataclass(frozen=True)
class Step:
    start: int  # seconds after the run began
    seconds: int
    lane: str
    cpu: int  # CPU seconds of the step's own processes
    name: str

    @property
    def end(self) -> int:
        return self.start + self.seconds


class Sampler(threading.Thread):
    """The machine's idle CPU seconds in each half second, from when it starts."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.began = time.monotonic()
        self.samples: list[tuple[float, float]] = []  # (seconds since began, idle core-seconds)
        self._done = threading.Event()  # not `_stop`: a method of Thread

    def run(self) -> None:
        _, idle = machine_cpu()
        while not self._done.wait(SAMPLE_SECONDS):
            _, now = machine_cpu()
            self.samples.append((time.monotonic() - self.began, now - idle))
            idle = now

    def stop(self) -> None:
        self._done.set()
        self.join()

    def idle_between(self, start: float, end: float) -> float:
        return sum(idle for at, idle in self.samples if start < at <= end)


def steps_of(output: str) -> tuple[list[Step], int]:
    """The steps of `.ci/run`'s closing table, and its total seconds."""
    steps, total = [], 0
    for line in output.splitlines():
        if match := _STEP.match(line):
            steps.append(Step(int(match[1]), int(match[3]), match[2], int(match[4]), match[5]))
        elif match := _TOTAL.match(line):
            total = int(match[1])
    return steps, total


def phases(steps: list[Step], total: int) -> list[tuple[str, int, int]]:
    """(phase, start, end) in seconds after the run began, as the module's docstring lists them."""
    tests = next(s for s in steps if s.lane == "tests")
    beside = max((s.end for s in steps if s.lane in _BESIDE), default=tests.start)
    alone = min(max(beside, tests.start), tests.end)
    return [
        ("before the tests lane", 0, tests.start),
        ("the tests lane beside other lanes", tests.start, alone),
        ("the tests lane alone", alone, tests.end),
        ("after the tests lane (perf, deploy, the prune, gates)", tests.end, total),
    ]


@dataclass(frozen=True)
class Measured:
    output: str  # what `.ci/run` printed: its closing table among it
    busy: float  # the machine's CPU seconds over the run
    idle: float
    engine: dict[str, float | None]  # each daemon's CPU seconds over the run, where readable
    kernel: float  # of `busy`, the kernel's (system, irq, softirq)
    tasks: int | None  # processes and threads the machine started over the run, where readable
    sampler: Sampler


def measure() -> Measured:
    """One `.ci/run`, in a fresh clone of HEAD that goes with it; a failed run stops here."""
    work = Path(tempfile.mkdtemp(prefix="ci-breakdown-"))
    try:
        tree = work / "tree"
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(tree)], check=True)
        engine = {name: daemon_cpu(name) for name in ("dockerd", "containerd")}
        busy, idle = machine_cpu()
        kernel, started = kernel_cpu(), tasks_started()
        sampler = Sampler()
        sampler.start()
        proc = subprocess.run(
            ["bash", ".ci/run"], cwd=tree, env={**os.environ, "CI": "true"},
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        sampler.stop()
        busy_after, idle_after = machine_cpu()
        kernel_after, started_after = kernel_cpu(), tasks_started()
        spent = {name: _spent(before, daemon_cpu(name)) for name, before in engine.items()}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if proc.returncode != 0:
        raise SystemExit(
            f".ci/run failed (exit {proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"
        )
    tasks = None if started is None or started_after is None else started_after - started
    kernel = kernel_after - kernel
    return Measured(proc.stdout, busy_after - busy, idle_after - idle, spent, kernel, tasks, sampler)


def _spent(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else after - before


def _by_lane(steps: list[Step], run: Measured) -> list[dict[str, object]]:
    """The busy CPU split: each lane's own processes, and the rest (containers, build steps, kernel)."""
    lanes: dict[str, int] = {}
    for step in steps:
        lanes[step.lane] = lanes.get(step.lane, 0) + step.cpu
    rest = run.busy - sum(lanes.values()) - sum(s for s in run.engine.values() if s is not None)
    for lane, cpu in sorted(lanes.items(), key=lambda item: -item[1]):
        print(f"lane {lane}: its processes {cpu} CPU-s", flush=True)
    print(f"containers, build steps and the kernel (the rest): {rest:.0f} CPU-s", flush=True)
    return [figure(f"lane {lane}: its processes' CPU", cpu, "s") for lane, cpu in lanes.items()] + [
        figure("containers, build steps, kernel (the rest)", rest, "s")
    ]


def _breakdown(run: Measured, steps: list[Step], total: int) -> list[dict[str, object]]:
    """One run's figures: its wall time, the busy CPU and who spent it, the idle by phase."""
    cores = psutil.cpu_count() or 1
    print(f".ci/run: {total} s; machine CPU busy {run.busy:.0f} s, idle {run.idle:.0f} s", flush=True)
    figures = [
        figure(".ci/run, wall time", total, "s", f"<= {GOAL_SECONDS} s warm"),
        figure("machine CPU busy", run.busy, "s"),
        figure("machine CPU idle", run.idle, "s"),
        figure(f"busy CPU over {cores} cores (no core idle)", run.busy / cores, "s"),
    ]
    for name, seconds in run.engine.items():
        if seconds is not None:
            share = 100 * seconds / run.busy
            print(f"{name}: {seconds:.1f} CPU-s ({share:.0f} % of the busy CPU)", flush=True)
            figures += [figure(f"{name} CPU", seconds, "s"), figure(f"{name}, of the busy CPU", share, "%")]
    figures += _by_lane(steps, run)
    kernel_share = 100 * run.kernel / run.busy
    print(f"the kernel: {run.kernel:.0f} CPU-s ({kernel_share:.0f} % of the busy CPU)", flush=True)
    figures += [figure("the kernel's CPU (system, irq, softirq)", run.kernel, "s")]
    figures += [figure("the kernel, of the busy CPU", kernel_share, "%")]
    if run.tasks is not None:
        print(f"processes and threads started: {run.tasks}", flush=True)
        figures += [figure("processes and threads started", run.tasks, "")]
    for phase, start, end in phases(steps, total):
        idle = run.sampler.idle_between(start, end)
        print(f"{phase}: t+{start} to t+{end} s, idle {idle:.0f} core-s", flush=True)
        figures += [figure(f"{phase}: seconds", end - start, "s"), figure(f"{phase}: idle", idle, "core-s")]
    return figures


def _series(totals: list[tuple[int, int]]) -> list[dict[str, object]]:
    """Each run's wall time and its tests lane's, and how many runs met the goal."""
    figures: list[dict[str, object]] = []
    for number, (total, tests) in enumerate(totals, start=1):
        figures += [
            figure(f".ci/run, wall time, run {number}", total, "s", f"<= {GOAL_SECONDS} s warm"),
            figure(f"tests lane, run {number}", tests, "s"),
        ]
    met = sum(total <= GOAL_SECONDS for total, _ in totals)
    print(f"runs within {GOAL_SECONDS} s: {met} of {len(totals)}", flush=True)
    return [*figures, figure(f"runs within {GOAL_SECONDS} s", f"{met} of {len(totals)}", "", "all")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="runs one after another (default 1)")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error(f"--runs {args.runs}: give at least 1")
    if os.geteuid() != 0:
        raise SystemExit("run it as root, as CI runs .ci/run: its tiers run as the CI user it makes")
    totals: list[tuple[int, int]] = []
    for number in range(1, args.runs + 1):
        run = measure()
        steps, total = steps_of(run.output)
        print(f"--- run {number} of {args.runs}", flush=True)
        print("\n".join(line for line in run.output.splitlines() if _STEP.match(line) or _TOTAL.match(line)))
        totals.append((total, next(s.seconds for s in steps if s.lane == "tests")))
    # The breakdown is the last run's; with --runs, each run's wall time is beside it.
    figures = _breakdown(run, steps, total) + (_series(totals) if args.runs > 1 else [])
    write_record("ci_breakdown", figures)


if __name__ == "__main__":
    main()
