"""What one connection to a worker's Postgres costs, with the image's SCRAM iterations and
with the harness's cheap ones.

Starts the `postgres` logical image the way the plugin does (start_postgres, on the host
network where the plugin would use it), once with the role's verifier left at Postgres's
default 4,096 PBKDF2 iterations and once as the plugin leaves it, and times many rounds of
psycopg `connect()` + `close()` from the host. Goal: a median connect within 2 ms.

    python benchmarks/connect_cost.py [--rounds 500]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid

import psycopg
from record import figure, write_record

from tierharness.config import load_settings
from tierharness.engine.client import engine_client
from tierharness.engine.labels import RunIdentity
from tierharness.runtime.containers import CHEAP_SCRAM_ITERATIONS, PostgresInfo, start_postgres, stop
from tierharness.runtime.networking import use_host_network


def _iterations(info: PostgresInfo) -> str:
    with psycopg.connect(info.url) as conn:
        row = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = current_user").fetchone()
    return str(row[0]).split("$")[1].split(":")[0] if row else "?"


def _connects(info: PostgresInfo, rounds: int) -> tuple[list[float], float]:
    """Each connect()+close() in seconds, and the process's CPU seconds per connect."""
    conninfo = (
        f"host={info.host} port={info.port} user={info.user} password={info.password} dbname={info.dbname}"
    )
    for _ in range(10):  # warm-up: the first connections load libraries and fill caches
        psycopg.connect(conninfo).close()
    samples = []
    cpu0 = time.process_time()
    for _ in range(rounds):
        t0 = time.perf_counter()
        psycopg.connect(conninfo).close()
        samples.append(time.perf_counter() - t0)
    return samples, (time.process_time() - cpu0) / rounds


def _measure(image: str, on_host: bool, iterations: int | None, rounds: int) -> dict[str, float | str]:
    identity = RunIdentity(f"bench-{uuid.uuid4().hex[:8]}", "bench", os.getpid())
    container, info = start_postgres(image, identity, scram_iterations=iterations, on_host=on_host)
    try:
        stored = _iterations(info)
        samples, cpu = _connects(info, rounds)
    finally:
        stop(container)
    median = statistics.median(samples)
    result: dict[str, float | str] = {
        "iterations": stored,
        "median_ms": median * 1000,
        "per_second": rounds / sum(samples),
        "client_cpu_ms": cpu * 1000,
    }
    print(
        f"{stored:>5} iterations: median connect {median * 1000:6.2f} ms, "
        f"{result['per_second']:7.1f} connects/s, client CPU {cpu * 1000:5.2f} ms per connect "
        f"({rounds} rounds)",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=500)
    args = parser.parse_args()
    image = load_settings().image("postgres").local
    on_host = use_host_network("auto", engine_client())
    default = _measure(image, on_host, None, args.rounds)
    cheap = _measure(image, on_host, CHEAP_SCRAM_ITERATIONS, args.rounds)
    figures = []
    for label, result in (("default", default), ("harness", cheap)):
        where = f"{label} ({result['iterations']} iterations)"
        goal = "<= 2 ms" if label == "harness" else ""
        figures += [
            figure(f"connect + close, median, {where}", result["median_ms"], "ms", goal),
            figure(f"connects per second, {where}", result["per_second"], "/s"),
            figure(f"client CPU per connect, {where}", result["client_cpu_ms"], "ms"),
        ]
    figures += [figure("rounds", args.rounds), figure("host network", str(on_host).lower())]
    write_record("connect_cost", figures)


if __name__ == "__main__":
    main()
