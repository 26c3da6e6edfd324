"""What a build cache prune by id costs, a record: `prune_build_cache` (twenty ids a prune, newest
first, the expression unanchored where every id has one length) against the form it had before
(200 ids a prune, `^(ids)$`), each on records of its own: chains of `RUN` steps on the `base`
logical image, as the project's clean builds make them, recorded as clean builds' in a
throwaway ledger. Beside each, the engine's records when it
began (BuildKit weighs every one of them, on every pass), and dockerd's CPU seconds where this
user can read them. `prune_build_cache` runs first, on the larger engine.

    python benchmarks/prune_cost.py [--builds 20] [--steps 6]

Run it while no other build runs on the engine: every record that appears while it builds is
counted as its own, and pruned.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from cpu import daemon_cpu
from record import figure, write_record

from tierharness.config import load_settings
from tierharness.engine.client import build_cache_records, engine_client
from tierharness.engine.retention import prune_build_cache, recording_build_cache

FORMER_IDS_PER_PRUNE = 200


def make_chains(client: Any, folder: Path, builds: int, steps: int, *, record: bool) -> set[str]:
    """`builds` chains of `steps` RUN steps each on the `base` image (a fresh value in each, so
    every step is a new record), recorded as clean builds' if `record`; returns the records
    that appeared."""
    base = load_settings().image("base").local
    listed = {str(r["ID"]) for r in build_cache_records(client)}
    for _ in range(builds):
        context = folder / uuid.uuid4().hex
        context.mkdir()
        runs = [f"RUN echo {uuid.uuid4().hex} > /f0", *(f"RUN cp /f{s - 1} /f{s}" for s in range(1, steps))]
        (context / "Dockerfile").write_text("\n".join([f"FROM {base}", *runs, ""]))
        with recording_build_cache(client, clean=True) if record else contextlib.nullcontext():
            subprocess.run(
                ["docker", "buildx", "build", "--quiet", "--output", "type=cacheonly", str(context)],
                capture_output=True, check=True,
            )  # fmt: skip
    return {str(r["ID"]) for r in build_cache_records(client)} - listed


def prune_as_before(client: Any, ids: set[str]) -> int:
    """The former prune: 200 ids a prune, start-anchored, rounds until one frees nothing."""
    remaining, pruned = sorted(ids), 0
    while remaining:
        freed: set[str] = set()
        for start in range(0, len(remaining), FORMER_IDS_PER_PRUNE):
            pattern = f"^({'|'.join(remaining[start : start + FORMER_IDS_PER_PRUNE])})$"
            answer = client.api.prune_builds(filters={"until": "1s", "id": pattern}, all=True) or {}
            freed.update(answer.get("CachesDeleted") or [])
        if not freed:
            break
        pruned += len(freed & set(remaining))
        remaining = [i for i in remaining if i not in freed]
    return pruned


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--builds", type=int, default=20)
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    client = engine_client()
    figures = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["HARNESS_CACHE_DIR"] = str(Path(tmp) / "machine")  # a ledger of its own
        harness_made = make_chains(client, Path(tmp), args.builds, args.steps, record=True)
        former_made = make_chains(client, Path(tmp), args.builds, args.steps, record=False)
        time.sleep(2)  # past the prune's `until` (a second) for the last build's records
        ways = (
            ("prune_build_cache", harness_made, lambda: prune_build_cache(0, client=client).records),
            ("the former form", former_made, lambda: prune_as_before(client, former_made)),
        )
        for name, made, prune in ways:
            engine = len(build_cache_records(client))
            cpu, started = daemon_cpu("dockerd"), time.monotonic()
            pruned = prune()
            seconds = time.monotonic() - started
            after = daemon_cpu("dockerd")
            left = made & {str(r["ID"]) for r in build_cache_records(client)}
            per_record = seconds / max(pruned, 1) * 1000
            shown = "" if cpu is None or after is None else f", dockerd {after - cpu:.1f} CPU-s"
            print(
                f"{name}: {pruned} of {len(made)} records in {seconds:.1f} s"
                f" ({per_record:.0f} ms a record{shown}), engine of {engine} records, {len(left)} left",
                flush=True,
            )
            figures += [
                figure(f"{name}: engine build cache records at the start", engine, "records"),
                figure(f"{name}: records pruned", pruned, "records"),
                figure(f"{name}: records left of its own", len(left), "records", "0"),
                figure(f"{name}: wall time", seconds, "s"),
                figure(f"{name}: wall time a record", per_record, "ms"),
            ]
            if cpu is not None and after is not None:
                figures.append(figure(f"{name}: dockerd CPU", after - cpu, "s"))
    write_record("prune_cost", figures)


if __name__ == "__main__":
    main()
