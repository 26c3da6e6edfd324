"""What one build cache prune costs the builds that come after it: a chain of steps on the
`base` logical image, and one on `scratch`, each built twice (the second time from the cache),
then a throwaway build on the same image whose records alone are pruned (by id, as
`prune_build_cache` prunes), then both chains again: how many of their steps came from the
cache before the prune and after it. `prune_build_cache` keeps what is due until it passes
`HARNESS_BUILD_CACHE_KEEP` because of what this shows (docs/image-build.md).

    python benchmarks/prune_forgets_chains.py

Run it while no other build runs on the engine: every record that appears while the throwaway
builds is counted as its own, and pruned.
"""

from __future__ import annotations

import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

from record import figure, write_record

from tierharness.config import load_settings
from tierharness.engine.client import build_cache_records, engine_client


def cached_steps(context: Path, *extra: str) -> tuple[int, int]:
    """Build `context` (cache only, no image) and count its Dockerfile steps: (from the
    cache, in all)."""
    proc = subprocess.run(
        ["docker", "buildx", "build", "--progress=plain", "--output", "type=cacheonly", *extra, str(context)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    steps: dict[str, bool] = {}  # a step's progress number -> whether it came from the cache
    for line in proc.stderr.splitlines():
        number, _, rest = line.partition(" ")
        if number.startswith("#") and rest.startswith("[") and "internal]" not in rest and "FROM" not in rest:
            steps.setdefault(number, False)
        elif number in steps and rest == "CACHED":
            steps[number] = True
    return sum(steps.values()), len(steps)


def context(folder: Path, dockerfile: str, **files: str) -> Path:
    folder.mkdir()
    (folder / "Dockerfile").write_text(dockerfile)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def prune_ids(client: Any, ids: set[str]) -> int:
    answer = client.api.prune_builds(filters={"id": f"^({'|'.join(sorted(ids))})$"}, all=True) or {}
    return len(answer.get("CachesDeleted") or [])


def main() -> None:
    client = engine_client()
    base = load_settings().image("base").local
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        # Steps of their own (a fresh value in each), so the first build makes the chain.
        mark = uuid.uuid4().hex
        on_base = context(root / "base", f"FROM {base}\nRUN echo {mark} > /one\nRUN cp /one /two\n")
        scratch = "FROM scratch\nCOPY one /one\nCOPY two /two\n"
        on_scratch = context(root / "scratch", scratch, one=mark, two=mark)
        throwaway = context(root / "throwaway", f"FROM {base}\nRUN echo {uuid.uuid4().hex} > /x\n")
        for chain in (on_base, on_scratch):
            cached_steps(chain)
        before = {chain: cached_steps(chain) for chain in (on_base, on_scratch)}
        listed = {str(r["ID"]) for r in build_cache_records(client)}
        cached_steps(throwaway)
        made = {str(r["ID"]) for r in build_cache_records(client)} - listed
        pruned = prune_ids(client, made) + prune_ids(client, made)  # a parent goes once its child has
        after = {chain: cached_steps(chain) for chain in (on_base, on_scratch)}
        again = cached_steps(on_base)
        prune_ids(client, {str(r["ID"]) for r in build_cache_records(client)} - listed)
    for name, chain in (("on the base image", on_base), ("on scratch", on_scratch)):
        cached, steps = before[chain]
        print(f"chain {name}: {cached} of {steps} steps cached before the prune, {after[chain][0]} after")
    print(f"records of the throwaway build pruned: {pruned}; the base chain once rebuilt: {again[0]} cached")
    write_record(
        "prune_forgets_chains",
        [
            figure("steps of each chain", before[on_base][1]),
            figure("chain on the base image: steps from the cache before the prune", before[on_base][0]),
            figure("chain on scratch: steps from the cache before the prune", before[on_scratch][0]),
            figure("records pruned (the throwaway build's own, by id)", pruned),
            figure("chain on the base image: steps from the cache after the prune", after[on_base][0]),
            figure("chain on scratch: steps from the cache after the prune", after[on_scratch][0]),
            figure("chain on the base image, built once more: steps from the cache", again[0]),
        ],
    )


if __name__ == "__main__":
    main()
