"""Worker provisioning and per-test reset, as medians, through the plugin's own code path
(`harness.runtime.worker.provision`):

- cold: N workers (processes, like `-n N`) provisioning at once: containers started, ready,
  migrated (goal: <= 1.0 s at -n 2 on 2 cores);
- reused: a worker taking back its kept containers (`--harness-reuse`), reset included
  (goal: <= 150 ms);
- reset: one reset per strategy after a small write (goal: median < 10 ms), "snapshot"
  restoring a seeded row.

    python benchmarks/worker_provisioning.py [--workers 2] [--rounds 3] [--resets 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import psycopg

from harness.config import load_settings
from harness.engine import engine_client
from harness.runtime.labels import LABEL_RUN, RunIdentity
from harness.runtime.reaper import remove_labelled
from harness.runtime.reuse import remove_kept
from harness.runtime.worker import WorkerPlan, provision

MIGRATE = "python -m services.api_gateway migrate"


def _plan(state_dir: Path, *, reset: str = "deletion", reuse: bool = False) -> WorkerPlan:
    settings = load_settings()
    return WorkerPlan(
        rootdir=settings.root,
        state_dir=state_dir,
        postgres_image=settings.image("postgres").local,
        redis_image=settings.image("redis").local,
        migrate=MIGRATE,
        keep_tables=("schema_migrations",),
        reset=reset,
        reuse=reuse,
    )


def _cold(run_id: str, worker: str, state_dir: str) -> float:
    """One worker in its own process, as under xdist; the seconds until it was ready."""
    os.environ.pop("CI", None)
    started = time.monotonic()
    w = provision(_plan(Path(state_dir)), RunIdentity(run_id, worker, os.getpid()))
    seconds = time.monotonic() - started
    w.close()
    return seconds


def _reused(state_dir: Path, rounds: int) -> list[float]:
    os.environ.pop("CI", None)
    plan = _plan(state_dir, reuse=True)
    identity = RunIdentity(f"bench-reuse-{uuid.uuid4().hex[:6]}", "gw0", os.getpid())
    provision(plan, identity).close()  # the first run keeps its containers
    took = []
    for _ in range(rounds):
        started = time.monotonic()
        worker = provision(plan, identity)
        took.append(time.monotonic() - started)
        assert worker.reused, "the kept containers were not taken back"
        worker.close()
    return took


def _resets(state_dir: Path, run_id: str, strategy: str, count: int) -> list[float]:
    worker = provision(
        _plan(state_dir, reset=strategy), RunIdentity(run_id, f"reset-{strategy}", os.getpid())
    )
    samples = []
    try:
        with psycopg.connect(worker.postgres.url, autocommit=True) as conn:
            conn.execute("INSERT INTO articles (slug, title, body) VALUES ('seed', 'seeded', 'row')")
            worker.reset.reset()  # snapshot: taken here, with the seeded row
            for i in range(count):
                conn.execute("INSERT INTO articles (slug, title, body) VALUES (%s, 't', 'b')", (f"s{i}",))
                samples.append(worker.reset.reset())
            rows = conn.execute("SELECT count(*) FROM articles").fetchone()
            expected = 1 if strategy == "snapshot" else 0
            assert rows == (expected,), f"{strategy}: {rows} rows after a reset, expected {expected}"
    finally:
        worker.close()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="workers provisioning at once (-n)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of cold and reused provisioning")
    parser.add_argument("--resets", type=int, default=200, help="resets to time per strategy")
    args = parser.parse_args()
    run_id = f"bench-{uuid.uuid4().hex[:8]}"
    state_dir = Path(tempfile.mkdtemp(prefix="harness-bench-"))
    client = engine_client()
    try:
        cold: list[float] = []
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            for r in range(args.rounds):
                futures = [
                    pool.submit(_cold, run_id, f"gw{n}-r{r}", str(state_dir)) for n in range(args.workers)
                ]
                got = [f.result() for f in futures]
                print(f"round {r}: " + ", ".join(f"{s:.2f}s" for s in got))
                cold += got
        print(
            f"cold worker ready (containers + migrations) at -n {args.workers}: "
            f"median {statistics.median(cold):.2f}s, max {max(cold):.2f}s (goal <= 1.0 s)"
        )
        reused = _reused(state_dir, args.rounds)
        print(
            f"reused worker ready (reset included): median {statistics.median(reused) * 1000:.0f} ms, "
            f"max {max(reused) * 1000:.0f} ms (goal <= 150 ms)"
        )
        for strategy in ("deletion", "truncation", "snapshot"):
            samples = sorted(_resets(state_dir, run_id, strategy, args.resets))
            print(
                f"reset {strategy:<10}: median {statistics.median(samples) * 1000:.2f} ms, "
                f"p95 {samples[int(len(samples) * 0.95)] * 1000:.2f} ms over {len(samples)} "
                "(goal: median < 10 ms)"
            )
    finally:
        remove_labelled(client, {"label": [f"{LABEL_RUN}={run_id}"]})
        for record in (state_dir / "reuse").glob("*.json"):  # only the keys made here
            remove_kept(client, record.stem)


if __name__ == "__main__":
    main()
