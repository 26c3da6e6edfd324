"""What one connection to a worker's Postgres costs, with the image's SCRAM iterations and
with the harness's cheap ones, and where that time goes.

Starts the `postgres` logical image the way the plugin does (start_postgres, on the host
network where the plugin would use it), once with the role's verifier left at Postgres's
default 4,096 PBKDF2 iterations and once as the plugin leaves it, and times many rounds of
psycopg `connect()` + `close()` from the host. Goal: a median connect within 2 ms.

Beside each median: the client's CPU per connect, the server's (the container's CPU counter
from the engine, over the same rounds: postmaster fork, backend start, authentication and
exit), and the same rounds through bare libpq (psycopg's share is the difference). For the
harness's server, also the floor no client change can lower: pgbench -C inside the
container over its unix socket, no password, no TCP.

    python benchmarks/connect_cost.py [--rounds 500]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import pq
from record import figure, write_record

from tierharness.config import load_settings
from tierharness.engine.client import engine_client
from tierharness.engine.labels import RunIdentity
from tierharness.runtime.containers import (
    CHEAP_SCRAM_ITERATIONS,
    FAST_POSTGRES,
    PostgresInfo,
    start_postgres,
    stop,
)
from tierharness.runtime.networking import use_host_network


def _iterations(info: PostgresInfo) -> str:
    with psycopg.connect(info.url) as conn:
        row = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = current_user").fetchone()
    return str(row[0]).split("$")[1].split(":")[0] if row else "?"


def _server_cpu_ns(container: Any) -> int:
    """The container's CPU time so far (all its processes), as the engine counts it."""
    stats = container.stats(stream=False, one_shot=True)
    return int(stats["cpu_stats"]["cpu_usage"]["total_usage"])


def _libpq_round(conninfo: str) -> Callable[[], None]:
    encoded = conninfo.encode()

    def round_() -> None:
        conn = pq.PGconn.connect(encoded)
        if conn.status != pq.ConnStatus.OK:
            raise RuntimeError("libpq connection failed")  # its message would name the password
        conn.finish()

    return round_


def _timed(round_: Callable[[], None], rounds: int, container: Any) -> dict[str, float]:
    """`rounds` calls of `round_` after a warm-up: median seconds, connects per second, and
    client and server CPU seconds per call."""
    for _ in range(10):  # warm-up: the first connections load libraries and fill caches
        round_()
    time.sleep(0.5)  # the warm-up's backends exit before the server's counter is read
    samples = []
    server0, cpu0 = _server_cpu_ns(container), time.process_time()
    for _ in range(rounds):
        t0 = time.perf_counter()
        round_()
        samples.append(time.perf_counter() - t0)
    cpu = (time.process_time() - cpu0) / rounds
    time.sleep(0.5)  # the last backends' exit is part of their cost
    server = (_server_cpu_ns(container) - server0) / 1e9 / rounds
    return {
        "median": statistics.median(samples),
        "per_second": rounds / sum(samples),
        "client_cpu": cpu,
        "server_cpu": server,
    }


def _pgbench_floor(container: Any, info: PostgresInfo, on_host: bool, rounds: int) -> float:
    """pgbench -C's average connection time in ms, inside the container over its unix
    socket (trusted there, so no password on a command line)."""
    port = info.port if on_host else 5432
    script = (
        "echo 'SELECT 1' > /tmp/connect_cost.sql && pgbench -n -C -f /tmp/connect_cost.sql "
        f"-t {rounds} -h /var/run/postgresql -p {port} -U {info.user} {info.dbname}"
    )
    code, output = container.exec_run(["sh", "-c", script])
    found = re.search(rb"average connection time = ([0-9.]+) ms", output)
    if code != 0 or found is None:
        raise RuntimeError(f"pgbench failed ({code}): {output.decode(errors='replace')[-500:]}")
    return float(found.group(1))


def _measure(image: str, on_host: bool, iterations: int | None, rounds: int) -> dict[str, Any]:
    identity = RunIdentity(f"bench-{uuid.uuid4().hex[:8]}", "bench", os.getpid())
    container, info = start_postgres(image, identity, scram_iterations=iterations, on_host=on_host)
    conninfo = (
        f"host={info.host} port={info.port} user={info.user} password={info.password} dbname={info.dbname}"
    )
    try:
        wrapped = container.get_wrapped_container()
        stored = _iterations(info)
        via_psycopg = _timed(lambda: psycopg.connect(conninfo).close(), rounds, wrapped)
        via_libpq = _timed(_libpq_round(conninfo), rounds, wrapped)
        floor = _pgbench_floor(wrapped, info, on_host, rounds) if iterations is not None else None
    finally:
        stop(container)
    psy, raw = via_psycopg, via_libpq
    print(
        f"{stored:>5} iterations: median connect {psy['median'] * 1000:6.2f} ms, "
        f"{psy['per_second']:7.1f} connects/s, CPU per connect: client {psy['client_cpu'] * 1000:5.2f} ms, "
        f"server {psy['server_cpu'] * 1000:5.2f} ms ({rounds} rounds)",
        flush=True,
    )
    print(
        f"{'':>8}bare libpq: median connect {raw['median'] * 1000:6.2f} ms, "
        f"client CPU {raw['client_cpu'] * 1000:5.2f} ms",
        flush=True,
    )
    if floor is not None:
        print(f"{'':>8}pgbench -C in the container, unix socket, no password: {floor:6.2f} ms", flush=True)
    return {"iterations": stored, "psycopg": via_psycopg, "libpq": via_libpq, "floor": floor}


# What a backend attaches to, made as small as it goes: if these sized its start, the floor
# would move with them.
LEAN_SERVER = (
    " -c shared_buffers=16MB -c max_connections=20 -c huge_pages=off -c max_wal_senders=0"
    " -c max_worker_processes=0 -c autovacuum=off"
)


def _lean_floor(image: str, on_host: bool, rounds: int) -> float:
    """The pgbench -C floor of the harness's server with LEAN_SERVER's settings added."""
    identity = RunIdentity(f"bench-{uuid.uuid4().hex[:8]}", "bench", os.getpid())
    command = FAST_POSTGRES.replace("-c max_connections=200", "") + LEAN_SERVER
    container, info = start_postgres(image, identity, command=command, on_host=on_host)
    try:
        floor = _pgbench_floor(container.get_wrapped_container(), info, on_host, rounds)
    finally:
        stop(container)
    print(f"{'':>8}the same floor, a lean server ({LEAN_SERVER.strip()}): {floor:6.2f} ms", flush=True)
    return floor


def _figures(label: str, result: dict[str, Any], goal: str) -> list[dict[str, Any]]:
    where = f"{label} ({result['iterations']} iterations)"
    psy, raw = result["psycopg"], result["libpq"]
    rows = [
        figure(f"connect + close, median, {where}", psy["median"] * 1000, "ms", goal),
        figure(f"connects per second, {where}", psy["per_second"], "/s"),
        figure(f"client CPU per connect, {where}", psy["client_cpu"] * 1000, "ms"),
        figure(f"server CPU per connect, {where}", psy["server_cpu"] * 1000, "ms"),
        figure(f"bare libpq connect + close, median, {where}", raw["median"] * 1000, "ms"),
        figure(f"bare libpq client CPU per connect, {where}", raw["client_cpu"] * 1000, "ms"),
    ]
    if result["floor"] is not None:
        floor = f"pgbench -C in the container, unix socket, no password, {where}"
        rows.append(figure(floor, result["floor"], "ms"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=500)
    args = parser.parse_args()
    image = load_settings().image("postgres").local
    on_host = use_host_network("auto", engine_client())
    default = _measure(image, on_host, None, args.rounds)
    cheap = _measure(image, on_host, CHEAP_SCRAM_ITERATIONS, args.rounds)
    figures = _figures("default", default, "") + _figures("harness", cheap, "<= 2 ms")
    lean = _lean_floor(image, on_host, args.rounds)
    figures.append(figure(f"pgbench -C floor, the harness's server with{LEAN_SERVER}", lean, "ms"))
    figures += [figure("rounds", args.rounds), figure("host network", str(on_host).lower())]
    write_record("connect_cost", figures)


if __name__ == "__main__":
    main()
