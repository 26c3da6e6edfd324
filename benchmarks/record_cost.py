"""What the engine's build cache records cost every container: a worker's Redis container
started (its port published on loopback, as the plugin's are) and removed, `--cycles` times, on
the engine as it is; again once `--builds` chains of `--steps` RUN steps have added their
records (as the project's clean builds make them, recorded in a throwaway ledger); and again
once the harness's prune has removed those. Beside each round: its wall time a cycle, dockerd's
and containerd's CPU a cycle where this user can read them, and the engine's records.

Builds leave such records behind by the hundred (the suite's canaries and clean builds, every
run); this says what each costs the containers that every later run starts, against which a
prune's own cost is weighed (docs/image-build.md, "Why a prune waits for a budget").

    python benchmarks/record_cost.py [--cycles 30] [--builds 40] [--steps 10]

Run it while nothing else uses the engine: every record that appears while it builds is counted
as its own, and pruned.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from cpu import daemon_cpu
from prune_cost import make_chains
from record import figure, write_record

from tierharness.config import load_settings
from tierharness.engine.client import build_cache_records, engine_client
from tierharness.engine.labels import RunIdentity
from tierharness.engine.retention import prune_build_cache

DAEMONS = ("dockerd", "containerd")


def cycles(client: Any, image: str, count: int) -> tuple[float, dict[str, float | None]]:
    """The median seconds of `count` start-and-remove cycles, and each daemon's CPU seconds a
    cycle (None where this user cannot read it)."""
    # Labelled as a run of this process, as a worker's are: a container a kill leaves between
    # its start and its removal is swept by the next run, or `nox -s clean`.
    labels = RunIdentity(f"bench-{uuid.uuid4().hex[:8]}", "bench", os.getpid()).labels("redis")
    before = {name: daemon_cpu(name) for name in DAEMONS}
    seconds = []
    for _ in range(count):
        started = time.monotonic()
        container = client.containers.run(
            image, detach=True, labels=labels, ports={"6379/tcp": ("127.0.0.1", None)}
        )
        try:
            container.reload()
        finally:
            container.remove(force=True)
        seconds.append(time.monotonic() - started)
    after = {name: daemon_cpu(name) for name in DAEMONS}
    cpu = {
        name: None if before[name] is None or after[name] is None else (after[name] - before[name]) / count
        for name in DAEMONS
    }
    return statistics.median(seconds), cpu


Round = tuple[int, float, dict[str, float | None]]  # records, seconds a cycle, CPU a cycle


def _growth(before: Round, after: Round) -> list[dict[str, Any]]:
    """What a cycle costs more per 100 records, from the round on the engine as it was to the
    one with the added records."""
    per_hundred = 100 / max(after[0] - before[0], 1)
    grown = {"wall time": (after[1] - before[1]) * per_hundred}
    for d in DAEMONS:
        was, now = before[2][d], after[2][d]
        if was is not None and now is not None:
            grown[f"{d} CPU"] = (now - was) * per_hundred
    for what, seconds in grown.items():
        print(f"{what} a cycle: {seconds * 1000:+.1f} ms per 100 records more", flush=True)
    return [figure(f"{what} a cycle, per 100 records more", s * 1000, "ms") for what, s in grown.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cycles", type=int, default=30)
    parser.add_argument("--builds", type=int, default=40)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    client = engine_client()
    image = load_settings().image("redis").local
    figures = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["HARNESS_CACHE_DIR"] = str(Path(tmp) / "machine")  # a ledger of its own
        rounds: list[Round] = []
        for name in ("as it was", "with the added records", "after the prune"):
            if name == "with the added records":
                made = make_chains(client, Path(tmp), args.builds, args.steps, record=True)
                print(f"added {len(made)} build cache records", flush=True)
            elif name == "after the prune":
                time.sleep(2)  # past the prune's `until` (a second) for the last build's records
                pruned = prune_build_cache(0, client=client).records
                print(f"pruned {pruned} of them", flush=True)
            records = len(build_cache_records(client))
            seconds, cpu = cycles(client, image, args.cycles)
            rounds.append((records, seconds, cpu))
            shown = ", ".join(f"{d} {v * 1000:.0f} ms" for d, v in cpu.items() if v is not None)
            print(f"{name}: {records} records; a cycle {seconds * 1000:.0f} ms ({shown} of CPU)", flush=True)
            figures += [
                figure(f"{name}: engine build cache records", records, "records"),
                figure(f"{name}: wall time a cycle, median", seconds * 1000, "ms"),
                *(
                    figure(f"{name}: {d} CPU a cycle", v * 1000, "ms")
                    for d, v in cpu.items()
                    if v is not None
                ),
            ]
    figures += _growth(rounds[0], rounds[1])
    write_record("record_cost", figures)


if __name__ == "__main__":
    main()
