"""What the harness leaves in the engine between runs, kept in bounds.

Every container the engine starts or removes costs containerd work in proportion to what its
metadata holds, and BuildKit's cache holds most of it: on this project's machines, after a day
of builds, canary builds and clean rebuilds (4,488 snapshots, 178 references pulled from runs'
registries), a container started and removed cost containerd 0.44 CPU-seconds; 0.10 once they
were gone (the engine's own GC frees space, not records). So:

- after each build, the project image's per-commit tags beyond the newest `keep-images` are
  removed (never the one just built, never one a container still runs: the engine refuses,
  and it is skipped);
- `python -m tierharness clean --prune` prunes the build cache that no build used for
  `HARNESS_BUILD_CACHE_IDLE` seconds, and the references pulled by digest from runs' own
  loopback registries. Only there, and only while no build or stack runs: the pulls may be a
  running stack's image (run beside the e2e tier, it took the stack's image away), and a
  build cache prune beside a build made that build fail ("failed to solve: not found",
  BuildKit 0.13).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tierharness.config import Settings
from tierharness.engine import engine_client

__all__ = [
    "CachePruned",
    "prune_build_cache",
    "prune_loopback_pulls",
    "prune_old_builds",
    "retain",
]

_REVISION_TAG = re.compile(r"^[0-9a-f]{12}$")  # what `harness build` tags: the commit, abbreviated
_LOOPBACK = re.compile(r"^(127\.0\.0\.1|localhost):\d+/")  # a run's own registry


@dataclass(frozen=True)
class CachePruned:
    """What a build cache prune removed."""

    records: int
    size: int  # bytes


def prune_build_cache(idle_seconds: float, *, client: Any = None) -> CachePruned:
    """Build cache that no build used for `idle_seconds` (BuildKit's own `until` filter;
    records in use are never pruned)."""
    client = client or engine_client()
    filters = {"until": f"{max(int(idle_seconds), 1)}s"}
    # all: with the docker driver most records are "shared" (with the image store), and a
    # prune without it leaves those; images keep their own layers whatever is pruned here.
    answer = client.api.prune_builds(filters=filters, all=True) or {}
    return CachePruned(len(answer.get("CachesDeleted") or []), int(answer.get("SpaceReclaimed") or 0))


def _remove(client: Any, reference: str) -> bool:
    """Remove one reference; a reference a container still uses (or already gone) stays put."""
    from docker.errors import APIError, ImageNotFound

    try:
        client.images.remove(reference)
    except (APIError, ImageNotFound):
        return False
    return True


def prune_old_builds(repository: str, keep: int, *, protect: str = "", client: Any = None) -> tuple[str, ...]:
    """The per-commit tags (`REPOSITORY:<12 hex>`) of `repository` beyond the newest `keep`
    (by the image's creation time, which is its commit's: SOURCE_DATE_EPOCH), never `protect`.
    Returns the tags removed."""
    client = client or engine_client()
    tagged: list[tuple[str, str]] = []
    for image in client.images.list(name=repository):
        created = str(image.attrs.get("Created", ""))
        for tag in image.tags:
            name, _, version = tag.rpartition(":")
            if name == repository and _REVISION_TAG.match(version):
                tagged.append((created, tag))
    tagged.sort(reverse=True)
    stale = [tag for _, tag in tagged[keep:] if tag != protect]
    return tuple(tag for tag in stale if _remove(client, tag))


def prune_loopback_pulls(*, matching: re.Pattern[str] = _LOOPBACK, client: Any = None) -> tuple[str, ...]:
    """References pulled from a loopback registry (`127.0.0.1:PORT/...`; `matching` may
    narrow them): each run's registry is its own and gone with it. Only while no run goes on.
    Returns the references removed."""
    client = client or engine_client()
    found = [
        ref
        for image in client.images.list()
        for ref in _references(image)
        if _LOOPBACK.match(ref) and matching.match(ref)
    ]
    return tuple(ref for ref in found if _remove(client, ref))


def _references(image: Any) -> list[str]:
    return [*image.tags, *(image.attrs.get("RepoDigests") or [])]


def retain(settings: Settings, *, protect: str = "", log: Callable[[str], None] = print) -> None:
    """After a build: old per-commit tags go (see the module's doc)."""
    removed = prune_old_builds(settings.build.image, settings.build.keep_images, protect=protect)
    if removed:
        log(f"removed {len(removed)} old build(s): {', '.join(removed)} (keep-images)")
