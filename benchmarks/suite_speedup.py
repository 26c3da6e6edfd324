"""How much faster the project's own unit and integration tiers run at `-n 2` than at `-n 0`.

Runs `pytest tests/unit tests/integration` in this environment, as `nox -s tests` does (with the
same pytest plugins left out, tests/plugin_selection.py) but without coverage (it taxes both runs
alike and would hide the harness's own share): at `-n 0` and at `-n 2` with the session's
scheduling (`--dist worksteal`), in rounds; then once with `--dist load` (xdist's default) for
comparison, and at `-n 4`: more workers than these machines' two cores, which gains where tests
wait rather than compute. Prints each wall time and the speed-ups. Last, the session's own run:
`-n 2` under `coverage run`, and what share of its wall time and busy CPU coverage takes.

Two runs of the same suite differ by more than the gap to the goal (on one machine in one
afternoon, `-n 2` took from 129 to 150 s), and the engine's build cache grows with every run.
So `-n 0` and `-n 2` are run in rounds, in alternating order (`-n 0` first in the first round,
`-n 2` first in the next), and compared by their median wall times; each round's own speed-up
is printed too, so the spread shows beside the median.
Goal: `-n 2` at least 1.8 times faster than `-n 0`.

Beside each wall time, the machine's busy and idle CPU seconds over the run (every process:
pytest, the engine, the containers; run it on a machine that has nothing else to do). The `-n 2`
run's busy CPU over the cores is the wall time it would take if no core ever idled, and `-n 0`'s
wall time over that is the speed-up that `-n 2` could reach on these cores without cutting work.
The ratio of the `-n 2` run's busy CPU to `-n 0`'s is printed too: what running two workers at
once adds to the cores' work for the same tests, if anything.
Beside each run too, its tests' own time: the sum of every test's set-up, call and tear-down,
from a JUnit report. One of the two workers runs at least half of that sum, so `-n 0`'s wall time
over that half is as fast as `-n 2` can be, however the tests are spread; and the ratio of the two
runs' sums says how much longer the same tests take side by side than one at a time.
And the engine's build cache records at each run's start: every container started and removed
costs containerd a little more the more of them there are (docs/image-build.md, "What a record
costs"), and each run adds some (its canaries' clean builds), so runs made on engines that hold
very different numbers of them do not compare.

Run it as a user in the `docker` group, as the README's test command runs: as root, some tests
take root's own paths (a second engine as a host process, the bootstrap test's real apt-get),
so a root record measures a heavier suite.

    python benchmarks/suite_speedup.py [--rounds 3] [--paths tests/unit tests/integration]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import psutil
from cpu import machine_cpu
from junitparser import JUnitXml, TestSuite
from record import ROOT, figure, write_record

from tierharness.engine.client import build_cache_records, engine_client

sys.path.insert(0, str(ROOT))  # the checkout's own `tests` package: the session's plugin selection
from tests.plugin_selection import lean_addopts

GOAL = 1.8
SERIAL, PARALLEL = "-n 0", "-n 2, worksteal"
# Compared in rounds: the goal's two.
PAIR = ((SERIAL, ["-n", "0"]), (PARALLEL, ["-n", "2", "--dist", "worksteal"]))
# Once each, against the rounds' median `-n 0`.
OTHERS = (("-n 2, load", ["-n", "2", "--dist", "load"]),
          # More workers than cores: how much of the suite's time is waiting, not computing.
          ("-n 4, worksteal", ["-n", "4", "--dist", "worksteal"]))  # fmt: skip
# The session's own run: the same, under coverage ([tool.coverage.run], subprocesses measured).
COVERED = "-n 2, worksteal, under coverage"


class Run(NamedTuple):
    """One run of the suite: seconds of wall time, pytest's summary line, the machine's busy and
    idle CPU seconds over it, the engine's build cache records when it started, and the sum of
    its tests' own durations (set-up, call and tear-down, as the JUnit report times them)."""

    wall: float
    summary: str
    busy: float
    idle: float
    records: int
    tests: float


def run_once(paths: list[str], extra: list[str], *, covered: bool = False) -> Run:
    """One run; a failed run stops the benchmark. `covered`: under `coverage run`, as `nox -s
    tests` runs it. Its JUnit report and coverage data go to a temporary folder."""
    # The root-only tests are `nox -s root-tests`' own: the same suite whoever runs this.
    runner = ["coverage", "run", "-m", "pytest"] if covered else ["pytest"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HARNESS_", "COV_", "COVERAGE_"))}
    # Unselected, every pytest process (the workers, and each project run the tests start)
    # would import the e2e tier's plugins too: a heavier suite than the session's.
    env["PYTEST_ADDOPTS"] = lean_addopts(os.environ.get("PYTEST_ADDOPTS", ""))
    # Each run adds records (the canaries' clean builds), and each record makes the next run's
    # containers cost the engine a little more (benchmarks/record_cost.py): the count beside each
    # run shows how far apart they were.
    records = len(build_cache_records(engine_client()))
    with tempfile.TemporaryDirectory(prefix="suite-speedup-") as folder:
        report = Path(folder) / "junit.xml"
        # Under coverage, the measured processes' data goes there, not to the checkout's.
        env["COVERAGE_FILE"] = str(Path(folder) / ".coverage")
        argv = [sys.executable, "-m", *runner, "-q", "-p", "no:cacheprovider", "-m", "not needs_root"]
        argv += [f"--junitxml={report}", *extra, *paths]
        busy0, idle0 = machine_cpu()
        started = time.monotonic()
        proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        seconds = time.monotonic() - started
        busy1, idle1 = machine_cpu()
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
        tests = _tests_time(report)
    summary = next((ln for ln in reversed(proc.stdout.splitlines()) if re.search(r"\d+ passed", ln)), "")
    return Run(seconds, summary.strip("= "), busy1 - busy0, idle1 - idle0, records, tests)


def _tests_time(report: Path) -> float:
    """The sum of the JUnit report's test case times: each test's set-up, call and tear-down."""
    xml = JUnitXml.fromfile(str(report))
    suites = [xml] if isinstance(xml, TestSuite) else list(xml)
    return sum(case.time for suite in suites for case in suite)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of -n 0 and -n 2 (default 3)")
    parser.add_argument("--paths", nargs="+", default=["tests/unit", "tests/integration"])
    args = parser.parse_args()
    if args.rounds < 1:
        raise SystemExit(f"--rounds {args.rounds}: give at least 1")
    walls, busies, tests, figures = _rounds(args.paths, args.rounds)
    figures += _bound(walls, tests)
    for name, extra in OTHERS:
        run = run_once(args.paths, extra)
        walls[name] = run.wall
        figures += _reported(name, run)
    figures += _floor(walls, busies)
    figures += _covered(args.paths, walls, busies[PARALLEL])
    for name, seconds in walls.items():
        if name not in (SERIAL, COVERED):
            speedup = walls[SERIAL] / seconds
            goal = f">= {GOAL}x" if name.startswith("-n 2") else ""
            what = f"{name} over -n 0" + (", medians of the rounds" if name == PARALLEL else "")
            print(f"speed-up, {what}: {speedup:.2f}x" + (f" (goal {goal})" if goal else ""))
            figures.append(figure(f"speed-up, {what}", speedup, "x", goal))
    write_record("suite_speedup", figures)


Rows = list[dict[str, object]]


Medians = dict[str, float]  # by run name


def _rounds(paths: list[str], rounds: int) -> tuple[Medians, Medians, Medians, Rows]:
    """`rounds` runs of each of PAIR, in alternating order; their median wall times, busy CPU and
    tests' own time (the rest of the record compares with these), and each run's rows and each
    round's speed-up."""
    runs: dict[str, list[Run]] = {name: [] for name, _ in PAIR}
    figures: Rows = []
    for index in range(rounds):
        for name, extra in PAIR if index % 2 == 0 else PAIR[::-1]:
            run = run_once(paths, extra)
            runs[name].append(run)
            figures += _reported(f"{name}, round {index + 1}", run)
        speedup = runs[SERIAL][-1].wall / runs[PARALLEL][-1].wall
        print(f"round {index + 1}: speed-up of -n 2 over -n 0 {speedup:.2f}x", flush=True)
        figures.append(figure(f"speed-up, {PARALLEL} over -n 0, round {index + 1}", speedup, "x"))
    walls = {name: statistics.median(run.wall for run in done) for name, done in runs.items()}
    busies = {name: statistics.median(run.busy for run in done) for name, done in runs.items()}
    tests = {name: statistics.median(run.tests for run in done) for name, done in runs.items()}
    for name, wall in walls.items():
        print(
            f"{name}: median of {rounds} round(s) {wall:.1f} s, busy CPU {busies[name]:.0f} s, "
            f"tests' own time {tests[name]:.1f} s",
            flush=True,
        )
        figures += [
            figure(f"wall time, {name}, median of the rounds", wall, "s"),
            figure(f"machine CPU busy, {name}, median of the rounds", busies[name], "s"),
            figure(f"tests' own time, {name}, median of the rounds", tests[name], "s"),
        ]
    return walls, busies, tests, figures


def _bound(walls: Medians, tests: Medians) -> Rows:
    """The most `-n 2` can gain, from its tests' own time and `-n 0`'s wall time (medians)."""
    # However the tests are spread, one of the two workers runs at least half their summed time:
    # `-n 2` takes at least that long, and its tests take longer side by side than one at a time.
    stretch = tests[PARALLEL] / tests[SERIAL]
    bound = walls[SERIAL] / (tests[PARALLEL] / 2)
    print(
        f"tests' own time at {PARALLEL} over -n 0's: {stretch:.2f}x; with half of it on each worker, "
        f"-n 2 would be {bound:.2f}x faster than -n 0, and it can be no faster",
        flush=True,
    )
    return [
        figure(f"tests' own time, {PARALLEL} over -n 0's, medians", stretch, "x"),
        figure(f"speed-up, {PARALLEL} over -n 0, at most (half its tests' own time a worker)", bound, "x"),
    ]


def _reported(name: str, run: Run) -> Rows:
    cores = psutil.cpu_count() or 1
    print(
        f"{name}: {run.wall:.1f} s ({run.summary}); machine CPU busy {run.busy:.0f} s, idle {run.idle:.0f} s "
        f"({run.busy / (run.wall * cores):.0%} of {cores} cores); tests' own time {run.tests:.1f} s; the "
        f"engine held {run.records} build cache records at its start",
        flush=True,
    )
    return [
        figure(f"wall time, {name}", run.wall, "s"),
        figure(f"machine CPU busy, {name}", run.busy, "s"),
        figure(f"machine CPU idle, {name}", run.idle, "s"),
        figure(f"engine build cache records at the start, {name}", run.records, "records"),
        figure(f"tests' own time, {name}", run.tests, "s"),
    ]


def _floor(walls: Medians, busies: Medians) -> Rows:
    """How fast `-n 2` would be with no core idle, from the rounds' medians."""
    cores = psutil.cpu_count() or 1
    floor = busies[PARALLEL] / cores
    growth = busies[PARALLEL] / busies[SERIAL]
    print(
        f"{PARALLEL} with no core idle: {floor:.1f} s, a speed-up of {walls[SERIAL] / floor:.2f}x; "
        f"its busy CPU is {growth:.2f}x -n 0's, for the same tests",
        flush=True,
    )
    return [
        figure(f"machine CPU busy, {PARALLEL}, over -n 0's", growth, "x"),
        figure(f"{PARALLEL}, busy CPU over {cores} cores (no core idle)", floor, "s"),
        figure(f"speed-up, {PARALLEL} with no core idle, over -n 0", walls[SERIAL] / floor, "x"),
    ]


def _covered(paths: list[str], walls: dict[str, float], uncovered_busy: float) -> Rows:
    """The session's run, under coverage; what coverage adds to the `-n 2, worksteal` run."""
    run = run_once(paths, ["-n", "2", "--dist", "worksteal"], covered=True)
    walls[COVERED] = run.wall
    rows = _reported(COVERED, run)
    wall_share = 1 - walls[PARALLEL] / run.wall
    cpu_share = 1 - uncovered_busy / run.busy
    print(f"coverage's share of its wall time {wall_share:.0%}, of its busy CPU {cpu_share:.0%}", flush=True)
    return [
        *rows,
        figure(f"coverage's share of the wall time, {COVERED}", 100 * wall_share, "%"),
        figure(f"coverage's share of the busy CPU, {COVERED}", 100 * cpu_share, "%"),
    ]


if __name__ == "__main__":
    main()
