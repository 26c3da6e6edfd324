"""What one build cache prune costs the builds that come after it: a chain of steps on the
`base` logical image, one on `scratch`, and one on `base` built as the project image's stages
are, with a stage cache (tierharness.imaging.stage_cache), each built twice (the second time
from the cache), then a throwaway build on the same image whose records alone are pruned (by
id, as `prune_build_cache` prunes), then the chains again: how many of their steps came from
the cache before the prune and after it. `prune_build_cache` keeps what is due until it passes
`HARNESS_BUILD_CACHE_KEEP`, and the project image's stages keep a cache of their own, because
of what this shows (docs/image-build.md).

    python benchmarks/prune_forgets_chains.py

Run it while no other build runs on the engine: every record that appears while the throwaway
builds is counted as its own, and pruned.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

from record import figure, write_record

from tierharness.config import load_settings
from tierharness.engine.client import build_cache_records, engine_client
from tierharness.imaging.stage_cache import stage_cache


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


def cached_with_stage_cache(context: Path, image: str) -> tuple[int, int]:
    """`cached_steps`, with the cache locations a stage of the project image gets."""
    with stage_cache(image, "chain", no_cache=False) as cache:
        extra = [f"--cache-from={cache.cache_from}"] if cache.cache_from else []
        return cached_steps(context, *extra, f"--cache-to={cache.cache_to}")


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
        os.environ["HARNESS_CACHE_DIR"] = str(root / "machine")  # a stage cache of its own
        # Steps of their own (a fresh value in each), so the first build makes the chain.
        mark = uuid.uuid4().hex
        on_base = context(root / "base", f"FROM {base}\nRUN echo {mark} > /one\nRUN cp /one /two\n")
        scratch = "FROM scratch\nCOPY one /one\nCOPY two /two\n"
        on_scratch = context(root / "scratch", scratch, one=mark, two=mark)
        kept = context(root / "kept", f"FROM {base}\nRUN echo {uuid.uuid4().hex} > /one\nRUN cp /one /two\n")
        throwaway = context(root / "throwaway", f"FROM {base}\nRUN echo {uuid.uuid4().hex} > /x\n")
        builds = {
            on_base: lambda: cached_steps(on_base),
            on_scratch: lambda: cached_steps(on_scratch),
            kept: lambda: cached_with_stage_cache(kept, f"prune-forgets-chains-{mark}"),
        }
        for build in builds.values():
            build()
        before = {chain: build() for chain, build in builds.items()}
        listed = {str(r["ID"]) for r in build_cache_records(client)}
        cached_steps(throwaway)
        made = {str(r["ID"]) for r in build_cache_records(client)} - listed
        pruned = prune_ids(client, made) + prune_ids(client, made)  # a parent goes once its child has
        after = {chain: build() for chain, build in builds.items()}
        again = cached_steps(on_base)
        prune_ids(client, {str(r["ID"]) for r in build_cache_records(client)} - listed)
    names = {
        on_base: "on the base image",
        on_scratch: "on scratch",
        kept: "on the base image, with a stage cache",
    }
    chains = list(names.items())
    for chain, name in chains:
        cached, steps = before[chain]
        print(f"chain {name}: {cached} of {steps} steps cached before the prune, {after[chain][0]} after")
    print(f"records of the throwaway build pruned: {pruned}; the base chain once rebuilt: {again[0]} cached")
    write_record(
        "prune_forgets_chains",
        [
            figure("steps of each chain", before[on_base][1]),
            *(figure(f"chain {n}: steps from the cache before the prune", before[c][0]) for c, n in chains),
            figure("records pruned (the throwaway build's own, by id)", pruned),
            *(figure(f"chain {n}: steps from the cache after the prune", after[c][0]) for c, n in chains),
            figure("chain on the base image, built once more: steps from the cache", again[0]),
        ],
    )


if __name__ == "__main__":
    main()
