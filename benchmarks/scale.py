"""Wall time of one slice of the suite run three ways on this machine: -n 0, -n 2, and two
shards (`--splits 2 --group K`, -n 1 each) at once. Prints figures; asserts nothing.

    python benchmarks/scale.py [paths ...]   (default: tests/unit tests/integration/service)
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from record import figure, write_record

from tierharness.scale.shards import Shard

ROOT = Path(__file__).resolve().parent.parent


def _pytest(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _timed(*procs_args: tuple[str, ...]) -> float:
    started = time.monotonic()
    procs = [_pytest(*args) for args in procs_args]
    codes = [p.wait() for p in procs]
    if any(codes):
        raise SystemExit(f"a run failed (exit codes {codes}): rerun it by hand to see why")
    return time.monotonic() - started


def main() -> None:
    paths = tuple(sys.argv[1:]) or ("tests/unit", "tests/integration/service")
    print(f"suite slice: {' '.join(paths)}")
    serial = _timed(("-n", "0", *paths))
    print(f"-n 0:                         {serial:6.1f} s")
    parallel = _timed(("-n", "2", *paths))
    print(f"-n 2:                         {parallel:6.1f} s")
    shards = _timed(*(("-n", "1", *Shard(k, 2).pytest_args(), *paths) for k in (1, 2)))
    print(f"two shards at once (-n 1 each): {shards:6.1f} s")
    write_record(
        "scale",
        [
            figure("suite slice", " ".join(paths)),
            figure("-n 0", serial, "s"),
            figure("-n 2", parallel, "s"),
            figure("two shards at once (-n 1 each)", shards, "s"),
        ],
    )


if __name__ == "__main__":
    main()
