"""What a clean build leaves in the engine, and what the next prune takes: the build cache
records that one `repro-check` of this checkout (two `--no-cache` builds of the real image)
adds to the engine, their size, and how many of them are still there after
`prune_build_cache` (what `python -m tierharness clean --prune` runs once what is due passes
HARNESS_BUILD_CACHE_KEEP; here with no budget), a few seconds later, with the idle time the
environment sets (HARNESS_BUILD_CACHE_IDLE, six hours by default).

    python benchmarks/clean_build_cache.py

Run it while no other build runs on the engine: every record that appears meanwhile is
counted as the check's. It prunes only what the invoking user's harness runs recorded.
"""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

from record import ROOT, figure, write_record

from tierharness.config import environment
from tierharness.engine.client import build_cache_records, engine_client
from tierharness.engine.retention import prune_build_cache

PAUSE = 5  # seconds between the check's end and the prune


def records(client: Any) -> dict[str, int]:
    """The engine's build cache records: id -> size in bytes."""
    return {str(r["ID"]): int(r.get("Size") or 0) for r in build_cache_records(client)}


def main() -> None:
    client = engine_client()
    idle = environment().build_cache_idle
    before = records(client)
    check = subprocess.run([sys.executable, "-m", "tierharness", "repro-check"], cwd=ROOT, check=False)
    if check.returncode != 0:
        sys.exit(f"repro-check exited {check.returncode}: the figures would not be of a clean check")
    after = records(client)
    made = {i: size for i, size in after.items() if i not in before}
    # The next clean runs minutes later; a prune in the same second as the check's last export
    # finds that build's records used under a second ago (the floor of `until`), and keeps them.
    time.sleep(PAUSE)
    pruned = prune_build_cache(idle, client=client)
    left = set(made) & set(records(client))
    mib = sum(made.values()) / 2**20
    print(f"records one repro-check added: {len(made)} ({mib:.0f} MiB)")
    print(f"of those, left after the prune (idle time {idle:.0f} s): {len(left)}")
    print(f"records the prune removed in all (this user's recorded ones): {pruned.records}")
    write_record(
        "clean_build_cache",
        [
            figure("build cache records one repro-check added", len(made)),
            figure("their size", mib, "MiB"),
            figure("idle time of the prune (HARNESS_BUILD_CACHE_IDLE)", idle, "s"),
            figure("seconds between the check's end and the prune", PAUSE, "s"),
            figure("of those records, left after the prune", len(left), goal="0"),
            figure("records the prune removed in all (this user's)", pruned.records),
        ],
    )


if __name__ == "__main__":
    main()
