"""What the pytest plugin costs a run that uses none of it.

Generates a suite of trivial tests (no harness fixture, no early provisioning) in a temporary
directory with its own minimal `pyproject.toml`, runs it N times at `-n 0` and `-n 2` with the
plugin and with `-p no:harness`, and prints the median wall time of each and the difference.
Goal: the plugin adds at most 50 ms at either.

    python benchmarks/plugin_cost.py [--runs 16] [--tests 200]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from record import figure, write_record

PLUGIN = "harness"  # the pytest11 entry point's name in pyproject.toml
GOAL_MS = 50.0


def make_suite(where: Path, tests: int) -> None:
    (where / "pyproject.toml").write_text(
        '[project]\nname = "trivial"\nversion = "0"\n\n[tool.pytest.ini_options]\naddopts = "-q"\n',
        encoding="utf-8",
    )
    body = "".join(f"def test_{i}():\n    assert {i} == {i}\n\n\n" for i in range(tests))
    (where / "test_trivial.py").write_text(body, encoding="utf-8")


def run_once(where: Path, workers: int, *, plugin: bool) -> tuple[float, float]:
    argv = [sys.executable, "-m", "pytest", "-n", str(workers), "-p", "no:cacheprovider"]
    if not plugin:
        argv += ["-p", f"no:{PLUGIN}"]
    # Without PYTHONDONTWRITEBYTECODE, as nox's sessions run: the warm-up run leaves bytecode,
    # and the timed runs measure imports, not compiling every module from source.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HARNESS_", "PYTEST_")) and k != "PYTHONDONTWRITEBYTECODE"
    }
    cpu0 = _children_cpu()
    t0 = time.monotonic()
    proc = subprocess.run(argv, cwd=where, env=env, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stdout}\n{proc.stderr}")
    return elapsed, _children_cpu() - cpu0


def _children_cpu() -> float:
    """CPU seconds of the waited-for children so far: pytest, its xdist workers and theirs."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=16)
    parser.add_argument("--tests", type=int, default=200)
    args = parser.parse_args()
    figures = []
    with tempfile.TemporaryDirectory(prefix="plugin-cost-") as tmp:
        where = Path(tmp)
        make_suite(where, args.tests)
        for workers in (0, 2):
            run_once(where, workers, plugin=True)  # warm the file cache and the bytecode
            samples: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
            for run in range(args.runs):
                # Interleaved, so a slow moment hits both, and in alternating order (ABBA): a run
                # taken second in every pair measured about 100 ms slower, whichever it was.
                for plugin in (False, True) if run % 2 == 0 else (True, False):
                    samples[plugin].append(run_once(where, workers, plugin=plugin))
            without = statistics.median(w for w, _ in samples[False]) * 1000
            with_plugin = statistics.median(w for w, _ in samples[True]) * 1000
            # Each pair's difference, then their median: steadier than a difference of medians
            # when the machine's load drifts; and the CPU the pytest processes used, which a
            # busy machine slows but does not inflate as it does wall time.
            pairs = list(zip(samples[False], samples[True], strict=True))
            added = statistics.median((t[0] - f[0]) * 1000 for f, t in pairs)
            cpu = statistics.median((t[1] - f[1]) * 1000 for f, t in pairs)
            # The fastest run of each is the one least disturbed by the rest of the machine (as
            # timeit reports): single runs of this CPU-bound suite swing by +-150 ms on a shared VM.
            fastest = (min(w for w, _ in samples[True]) - min(w for w, _ in samples[False])) * 1000
            print(
                f"-n {workers}: without the plugin {without:.0f} ms, with it {with_plugin:.0f} ms, "
                f"added {fastest:+.0f} ms between the fastest runs (goal <= {GOAL_MS:.0f} ms); "
                f"medians of {args.runs} pairs: {added:+.0f} ms of wall time, {cpu:+.0f} ms of CPU",
                flush=True,
            )
            figures += [
                figure(f"-n {workers}, {args.tests} trivial tests, -p no:{PLUGIN}, median", without, "ms"),
                figure(f"-n {workers}, {args.tests} trivial tests, plugin loaded, median", with_plugin, "ms"),
                figure(f"-n {workers}, added by the unused plugin (fastest runs)", fastest, "ms",
                       f"<= {GOAL_MS:.0f} ms"),
                figure(f"-n {workers}, added by the unused plugin (median of pairs)", added, "ms"),
                figure(f"-n {workers}, CPU added by the unused plugin (median of pairs)", cpu, "ms"),
            ]  # fmt: skip
    figures.append(figure("runs", args.runs))
    write_record("plugin_cost", figures)


if __name__ == "__main__":
    main()
