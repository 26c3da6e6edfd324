"""Worker provisioning time and per-test isolation overhead, as medians.

Provisioning: Postgres and Redis started at once, both ready, migrations applied
(what each xdist worker pays once). Isolation: one reset to "clean and migrated"
(what every test pays), measured after each of a number of small writes.

    python benchmarks/worker_provisioning.py [--workers 3] [--resets 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid

import psycopg

from harness.config import load_settings
from harness.runtime.containers import start_services, stop
from harness.runtime.labels import RunIdentity
from harness.runtime.migrations import run_migrations
from harness.runtime.reset import StateReset

MIGRATE = "python -m services.api_gateway migrate"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=3, help="provisionings to time")
    parser.add_argument("--resets", type=int, default=200, help="resets to time")
    args = parser.parse_args()
    settings = load_settings()
    pg_image, redis_image = settings.image("postgres").local, settings.image("redis").local
    run_id = f"bench-{uuid.uuid4().hex[:8]}"
    provisioning: list[float] = []
    resets: list[float] = []
    for n in range(args.workers):
        identity = RunIdentity(run_id, f"gw{n}", os.getpid())
        t0 = time.monotonic()
        (pg_c, pg), (rd_c, rd) = start_services(pg_image, redis_image, identity)
        try:
            run_migrations(MIGRATE, pg)
            provisioning.append(time.monotonic() - t0)
            print(
                f"worker {n}: postgres ready {pg.ready_seconds:.2f}s, "
                f"redis ready {rd.ready_seconds:.2f}s, ready+migrated {provisioning[-1]:.2f}s"
            )
            if n == 0:
                reset = StateReset(pg, rd, ["schema_migrations"])
                with psycopg.connect(pg.url, autocommit=True) as conn:
                    for i in range(args.resets):
                        conn.execute(
                            "INSERT INTO articles (slug, title, body) VALUES (%s, 't', 'b')", (f"s{i}",)
                        )
                        reset.redis.set(f"k{i}", "v")
                        resets.append(reset.reset())
                reset.close()
        finally:
            stop(pg_c)
            stop(rd_c)
    median_provisioning = statistics.median(provisioning)
    print(
        "worker provisioning (both containers ready and migrated): "
        f"median {median_provisioning:.2f}s over {len(provisioning)} workers"
    )
    ordered = sorted(resets)
    p95 = ordered[int(len(ordered) * 0.95)]
    print(
        f"per-test isolation overhead: median {statistics.median(resets) * 1000:.2f} ms, "
        f"p95 {p95 * 1000:.2f} ms over {len(resets)} resets (goal: median < 10 ms)"
    )


if __name__ == "__main__":
    main()
