"""The project image's stages, kept where a build cache prune cannot take them: each cached
build of a stage exports its cache (`--cache-to type=local,mode=max`) into the machine cache,
and the next build of that stage imports it (`--cache-from`).

Why: on Docker 26.1 (BuildKit 0.13, the containerd image store), a prune that removes any build
cache record, even another project's or another user's, makes BuildKit forget the cache of every
step built on an image (docs/image-build.md, "Why a prune waits for a budget"). Its records stay,
and an import finds them again by the exported cache's keys: the steps come from the cache, with
no new record. So the image's `deps` and `test` stages stay warm whoever prunes.

One folder a stage (`stage-cache/<image>/<stage>`): an export replaces the folder's index, so
stages sharing one would evict each other. Its blobs are content-addressed and shared between
exports; after each export, those its index no longer names go. A lock beside the folder
keeps two builds of one stage from exporting into it at once. Off where the environment names
cache locations of its own (HARNESS_BUILD_CACHE_FROM, HARNESS_BUILD_CACHE_TO), for a clean
(`--no-cache`) build, and on a builder of its own (HARNESS_BUILDER), which keeps its cache.
`clean --prune` removes the folders no build exported into for HARNESS_BUILD_CACHE_IDLE
(`prune_stage_caches`): an image that is no longer built, such as a test's throwaway one.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from tierharness.config import environment, machine_cache

__all__ = ["CacheLocations", "image_folder", "prune_stage_caches", "stage_cache", "sweep"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class CacheLocations:
    """A build's `--cache-from` and `--cache-to`, either of them None for none."""

    cache_from: str | None
    cache_to: str | None


@contextlib.contextmanager
def stage_cache(image: str, stage: str, *, no_cache: bool) -> Iterator[CacheLocations]:
    """Around one build of `stage` of the project's image `image`: its cache locations, the
    environment's if it names any, else the stage's folder in the machine cache (locked for the
    build, its unnamed blobs swept after it)."""
    env = environment()
    if env.build_cache_from or env.build_cache_to or no_cache or env.builder:
        yield CacheLocations(env.build_cache_from, env.build_cache_to)
        return
    folder = image_folder(image) / _UNSAFE.sub("_", stage)
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder.with_name(f"{folder.name}.lock"))):
        imported = f"type=local,src={folder}" if (folder / "index.json").is_file() else None
        yield CacheLocations(imported, f"type=local,dest={folder},mode=max")
        sweep(folder)


def image_folder(image: str) -> Path:
    """The folder of `image`'s stage caches (and their locks)."""
    return machine_cache("stage-cache") / _UNSAFE.sub("_", image)


def prune_stage_caches(idle_seconds: float) -> int:
    """Remove the stage folders (and their locks) no build exported into for `idle_seconds`,
    skipping any a build holds; returns how many went."""
    root = machine_cache("stage-cache")
    cutoff = time.time() - idle_seconds
    gone = 0
    for folder in sorted(root.glob("*/*/")):
        exported = folder / "index.json"
        if (exported if exported.is_file() else folder).stat().st_mtime > cutoff:
            continue
        lock_path = folder.with_name(f"{folder.name}.lock")
        try:
            with FileLock(str(lock_path), timeout=0):
                shutil.rmtree(folder, ignore_errors=True)
        except Timeout:
            continue
        lock_path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            folder.parent.rmdir()  # the image's folder, once its last stage has gone
        gone += 1
    return gone


def sweep(folder: Path) -> int:
    """Remove the blobs of `folder` (an OCI layout) that its index does not reach; returns how
    many went. An unreadable index removes nothing."""
    blobs = folder / "blobs" / "sha256"
    try:
        named = _reached(blobs, json.loads((folder / "index.json").read_text()))
    except (OSError, ValueError):
        return 0
    gone = 0
    for blob in blobs.iterdir() if blobs.is_dir() else ():
        if blob.name not in named:
            blob.unlink(missing_ok=True)
            gone += 1
    return gone


def _reached(blobs: Path, document: dict[str, object]) -> set[str]:
    """The hex digests `document` names (an index's manifests, a manifest's config and layers),
    and those that the indexes and manifests among them name in turn."""
    named: set[str] = set()
    pending = [document]
    while pending:
        current = pending.pop()
        descriptors = [*_list(current.get("manifests")), *_list(current.get("layers")), current.get("config")]
        for descriptor in descriptors:
            if not isinstance(descriptor, dict):
                continue
            hexdigest = str(descriptor.get("digest", "")).removeprefix("sha256:")
            if not hexdigest or hexdigest in named:
                continue
            named.add(hexdigest)
            if str(descriptor.get("mediaType", "")).endswith(("manifest.v1+json", "index.v1+json")):
                pending.append(json.loads((blobs / hexdigest).read_text()))
    return named


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else []
