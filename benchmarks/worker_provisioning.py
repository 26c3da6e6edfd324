"""Worker provisioning and per-test reset, as medians, through the plugin's own code path
(`tierharness.runtime.worker.provision`):

- cold: N workers (processes, like `-n N`) provisioning at once: containers started, ready,
  migrated (goal: <= 1.0 s at -n 2 on 2 cores); `--network bridge` measures them with
  published ports instead of the engine's host network;
- migrated: the same, started from the migrated image (`harness_migrate_once`, goal: <= 0.6 s
  at -n 2), after a first worker of a key of its own (a seed command no run uses) has migrated
  and committed it: that first worker's time and the commit's are printed too;
- reused: a worker taking back its kept containers (`--harness-reuse`), reset included
  (goal: <= 150 ms);
- reset: one reset per strategy after a small write (goal: median < 10 ms), "snapshot"
  restoring a seeded row.

The engine's store size is printed beside the cold figure, and `--fresh-engine` runs the cold
rounds again on a second engine made for the purpose, holding only the two images: the state
of a CI runner's engine, not of a developer's long-used one.

    python benchmarks/worker_provisioning.py [--workers 2] [--rounds 3] [--resets 200] [--fresh-engine]
                                             [--network auto|host|bridge]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
from record import figure, write_record

from tierharness.config import child_env, load_settings
from tierharness.engine.client import build_cache_records, docker_cli, engine_client
from tierharness.engine.labels import LABEL_RUN, RunIdentity
from tierharness.engine.reaper import remove_labelled
from tierharness.engine.reuse import migrations_digest, remove_kept
from tierharness.engine.second_engine import second_engine
from tierharness.process import run
from tierharness.runtime.migrated import LABEL_KEY, migrated_key
from tierharness.runtime.networking import NETWORK_MODES, use_host_network
from tierharness.runtime.worker import WorkerPlan, provision

MIGRATE = "python -m services.api_gateway migrate"


def _plan(
    state_dir: Path,
    *,
    reset: str = "deletion",
    reuse: bool = False,
    network: str = "auto",
    seed: str | None = None,
) -> WorkerPlan:
    settings = load_settings()
    return WorkerPlan(
        rootdir=settings.root,
        state_dir=state_dir,
        postgres_image=settings.image("postgres").local,
        redis_image=settings.image("redis").local,
        migrate=MIGRATE,
        seed=seed,
        keep_tables=("schema_migrations",),
        reset=reset,
        reuse=reuse,
        migrate_once=seed is not None,
        network=network,
    )


def _cold(run_id: str, worker: str, state_dir: str, network: str, seed: str | None) -> float:
    """One worker in its own process, as under xdist; the seconds until it was ready. With
    `seed`, migrate-once is on, keyed by that seed command."""
    os.environ.pop("CI", None)
    started = time.monotonic()
    w = provision(
        _plan(Path(state_dir), network=network, seed=seed), RunIdentity(run_id, worker, os.getpid())
    )
    seconds = time.monotonic() - started
    if seed is not None:
        assert w.migrated, "the worker did not start from the migrated image"
    w.close()
    return seconds


def _first_of_a_key(run_id: str, state_dir: Path, network: str, seed: str) -> dict[str, float]:
    """A worker of a key no image exists for: it migrates, seeds and commits."""
    os.environ.pop("CI", None)
    w = provision(_plan(state_dir, network=network, seed=seed), RunIdentity(run_id, "first", os.getpid()))
    w.close()
    assert w.record.get("migrated_image_committed"), "the first worker of the key committed no image"
    return {"ready": w.record["provision_seconds"], "commit": w.record["commit_seconds"]}


def _remove_key(client: Any, state_dir: Path, seed: str) -> None:
    plan = _plan(state_dir, seed=seed)
    image_id = client.images.get(plan.postgres_image).id
    key = migrated_key(image_id, migrations_digest(plan.rootdir, plan.migrate, plan.seed))
    for image in client.images.list(filters={"label": f"{LABEL_KEY}={key}"}):
        client.images.remove(image.id, force=True)


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


def _store(client: Any) -> str:
    return f"{len(build_cache_records(client))} build-cache records, {len(client.images.list())} images"


def _cold_rounds(
    workers: int,
    rounds: int,
    run_id: str,
    state_dir: Path,
    *,
    where: str,
    network: str,
    seed: str | None = None,
) -> list[float]:
    cold: list[float] = []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for r in range(rounds):
            futures = [
                pool.submit(_cold, run_id, f"gw{n}-r{r}", str(state_dir), network, seed)
                for n in range(workers)
            ]
            got = [f.result() for f in futures]
            print(f"round {r}: " + ", ".join(f"{s:.2f}s" for s in got))
            cold += got
    how, goal = ("started migrated", "0.6") if seed else ("containers + migrations", "1.0")
    print(
        f"cold worker ready ({how}) at -n {workers}, {where}: "
        f"median {statistics.median(cold):.2f}s, max {max(cold):.2f}s (goal <= {goal} s)",
        flush=True,
    )
    return cold


def _on_a_fresh_engine(workers: int, rounds: int, network: str) -> None:
    """The cold rounds again, in a child process whose engine is a second one of its own,
    holding only the Postgres and Redis images; it is removed afterwards."""
    settings = load_settings()
    images = [settings.image("postgres").local, settings.image("redis").local]
    with (
        tempfile.TemporaryDirectory(prefix="harness-bench-engine-") as tmp,
        # The host process: the workers reach its Postgres and Redis on published 127.0.0.1 ports,
        # which a container engine publishes inside its own network namespace.
        second_engine(Path(tmp) / "state", kind="process") as engine,
    ):
        tar = Path(tmp) / "images.tar"
        run(
            [docker_cli(), "save", "--output", str(tar), *images],
            what="exporting the Postgres and Redis images for the fresh engine",
            fix="run `nox -s images` first",
        )
        engine.docker("load", "--quiet", "--input", str(tar), what="loading them into the fresh engine")
        tar.unlink()
        run(
            [
                *(sys.executable, __file__, "--cold-only", "--workers", str(workers)),
                *("--rounds", str(rounds), "--network", network),
            ],
            what="the cold rounds on the fresh engine",
            fix="read the output above",
            env=child_env(engine.env(), drop=("DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH")),
            capture=False,
        )


def _migrated_rounds(args: argparse.Namespace, run_id: str, state_dir: Path, network: str) -> list[Any]:
    """The first worker of a new key (migrates, seeds, commits), then cold rounds started from
    its image; the key's image removed afterwards."""
    seed = f"python -c pass bench-{uuid.uuid4().hex[:8]}"  # a key of its own, and no rows
    client = engine_client()
    try:
        first = _first_of_a_key(run_id, state_dir, args.network, seed)
        ready, commit = first["ready"], first["commit"]
        print(f"first worker of a new key: ready {ready:.2f}s, of which the commit {commit:.2f}s")
        started = _cold_rounds(
            args.workers, args.rounds, run_id, state_dir, where="this engine", network=args.network, seed=seed
        )
    finally:
        _remove_key(client, state_dir, seed)
    what = f"cold worker ready (started migrated) at -n {args.workers}, {network}"
    return [
        figure("first worker of a new key (migrated, seeded, committed)", first["ready"], "s"),
        figure("of which the commit", first["commit"], "s"),
        figure(f"{what}, median", statistics.median(started), "s", "<= 0.6 s"),
        figure(f"{what}, max", max(started), "s"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="workers provisioning at once (-n)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of cold and reused provisioning")
    parser.add_argument("--resets", type=int, default=200, help="resets to time per strategy")
    parser.add_argument(
        "--fresh-engine",
        action="store_true",
        help="also run the cold rounds on a fresh second engine holding only the two images (needs root)",
    )
    parser.add_argument(
        "--network",
        choices=NETWORK_MODES,
        default="auto",
        help="how the workers' services are reached (harness_network): bridge measures published ports",
    )
    # The fresh engine's child process: the cold rounds only.
    parser.add_argument("--cold-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    run_id = f"bench-{uuid.uuid4().hex[:8]}"
    state_dir = Path(tempfile.mkdtemp(prefix="harness-bench-"))
    client = engine_client()
    try:
        where = "fresh engine" if args.cold_only else "this engine"
        network = "host network" if use_host_network(args.network, client) else "ports published"
        store = _store(client)
        print(f"{where}: {store}; {network} (--network {args.network})", flush=True)
        cold = _cold_rounds(args.workers, args.rounds, run_id, state_dir, where=where, network=args.network)
        cold_what = f"cold worker ready (containers + migrations) at -n {args.workers}, {network}"
        figures = [
            figure("engine's store", store),
            figure(f"{cold_what}, median", statistics.median(cold), "s", "<= 1.0 s"),
            figure(f"{cold_what}, max", max(cold), "s"),
        ]
        name = "worker_provisioning" + ("-fresh-engine" if args.cold_only else "")
        name += "" if args.network == "auto" else f"-{args.network}"
        if args.cold_only:
            write_record(name, figures)
            return
        if args.fresh_engine:
            _on_a_fresh_engine(args.workers, args.rounds, args.network)
        figures += _migrated_rounds(args, run_id, state_dir, network)
        reused = _reused(state_dir, args.rounds)
        print(
            f"reused worker ready (reset included): median {statistics.median(reused) * 1000:.0f} ms, "
            f"max {max(reused) * 1000:.0f} ms (goal <= 150 ms)"
        )
        figures.append(
            figure("reused worker ready (reset included), median", statistics.median(reused) * 1000, "ms",
                   "<= 150 ms")
        )  # fmt: skip
        for strategy in ("deletion", "truncation", "snapshot"):
            samples = sorted(_resets(state_dir, run_id, strategy, args.resets))
            print(
                f"reset {strategy:<10}: median {statistics.median(samples) * 1000:.2f} ms, "
                f"p95 {samples[int(len(samples) * 0.95)] * 1000:.2f} ms over {len(samples)} "
                "(goal: median < 10 ms)"
            )
            median = statistics.median(samples) * 1000
            figures.append(figure(f"reset {strategy}, median", median, "ms", "< 10 ms"))
        write_record(name, figures)
    finally:
        remove_labelled(client, {"label": [f"{LABEL_RUN}={run_id}"]})
        for record in (state_dir / "reuse").glob("*.json"):  # only the keys made here
            remove_kept(client, record.stem)
        shutil.rmtree(state_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
