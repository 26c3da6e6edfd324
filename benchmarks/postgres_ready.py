"""How fast a container of the `postgres` logical image accepts its first connection.

Starts N containers one after another (random credentials given in env, as
testcontainers does), and prints the time from `docker start` to the first
accepted psycopg connection. Goal: median under 1 s.

    python benchmarks/postgres_ready.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid

from record import figure, write_record

from tierharness.config import load_settings
from tierharness.runtime.containers import RunIdentity, start_postgres, stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    image = load_settings().image("postgres").local
    identity = RunIdentity(f"bench-{uuid.uuid4().hex[:8]}", "bench", os.getpid())
    samples = []
    for i in range(args.runs):
        t0 = time.monotonic()
        container, info = start_postgres(image, identity)
        total = time.monotonic() - t0
        try:
            samples.append(info.ready_seconds)
            print(
                f"run {i + 1}: start->first connection {info.ready_seconds * 1000:7.1f} ms "
                f"(create+start+ready {total * 1000:7.1f} ms)"
            )
        finally:
            stop(container)
    print(
        f"postgres ready: median {statistics.median(samples) * 1000:.1f} ms, "
        f"min {min(samples) * 1000:.1f} ms, max {max(samples) * 1000:.1f} ms over {len(samples)} runs "
        f"(goal < 1000 ms)"
    )
    median = statistics.median(samples) * 1000
    write_record(
        "postgres_ready",
        [
            figure("start to first accepted connection, median", median, "ms", "< 1000 ms"),
            figure("start to first accepted connection, min", min(samples) * 1000, "ms"),
            figure("start to first accepted connection, max", max(samples) * 1000, "ms"),
            figure("runs", len(samples)),
        ],
    )


if __name__ == "__main__":
    main()
