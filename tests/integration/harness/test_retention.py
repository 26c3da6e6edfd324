"""What a build leaves in the engine stays in bounds (tierharness.build.retention), on real
engines. Each test touches only what it made, or works on an engine of its own: a developer's
own cache and images are safe."""

from __future__ import annotations

import io
import re
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from docker.errors import ImageNotFound

from tierharness.build.retention import prune_build_cache, prune_loopback_pulls, prune_old_builds
from tierharness.engine import engine_client
from tierharness.supply.engines import SecondEngine, second_engine


def _tiny_image(reference: str, content: str) -> str:
    """A one-file image, imported (no build): its creation time is the import's."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("stamp")
        info.size = len(content.encode())
        tar.addfile(info, io.BytesIO(content.encode()))
    repository, _, tag = reference.rpartition(":")
    engine_client().api.import_image_from_data(buf.getvalue(), repository=repository, tag=tag)
    return reference


def _exists(reference: str) -> bool:
    try:
        engine_client().images.get(reference)
    except ImageNotFound:
        return False
    return True


@pytest.fixture
def repository() -> Iterator[str]:
    name = f"harness-test/retention-{uuid.uuid4().hex[:8]}"
    yield name
    for image in engine_client().images.list(name=name):
        for tag in image.tags:
            if tag.startswith(f"{name}:"):
                engine_client().images.remove(tag)


def test_old_builds_beyond_keep_go_newest_and_protected_and_other_tags_stay(repository: str) -> None:
    revisions = [f"{n:012x}" for n in range(1, 6)]  # oldest first
    for n, revision in enumerate(revisions):
        _tiny_image(f"{repository}:{revision}", f"build {n}")
        time.sleep(0.01)  # distinct creation times, in this order
    _tiny_image(f"{repository}:latest", "not a revision tag")
    _tiny_image(f"{repository}:broken-slow", "a candidate, not a build")

    pruned = prune_old_builds(repository, 2, protect=f"{repository}:{revisions[0]}")

    assert sorted(pruned) == [f"{repository}:{r}" for r in revisions[1:3]]
    for revision in (revisions[0], *revisions[3:]):  # protected; the newest two
        assert _exists(f"{repository}:{revision}")
    for revision in revisions[1:3]:
        assert not _exists(f"{repository}:{revision}")
    assert _exists(f"{repository}:latest")
    assert _exists(f"{repository}:broken-slow")


def test_loopback_pulls_are_removed_and_other_references_kept(repository: str) -> None:
    mine = f"127.0.0.1:1/{repository}"
    pulled = _tiny_image(f"{mine}:t1", "pulled from a run's own registry")
    local = _tiny_image(f"{repository}:keep", "a local image")
    try:
        pruned = prune_loopback_pulls(matching=re.compile(re.escape(mine)))
        assert pruned == (pulled,)
        assert not _exists(pulled)
        assert _exists(local)
    finally:
        if _exists(pulled):
            engine_client().images.remove(pulled)


def _build_cache_record(engine: SecondEngine, folder: Path, token: str) -> str:
    """Build one step whose cache record names `token` on `engine`; the record's id."""
    folder.mkdir()
    (folder / token).write_text(token)
    (folder / "Dockerfile").write_text(f"FROM scratch\nCOPY {token} /\n")
    engine.docker("buildx", "build", "--quiet", "--output", "type=cacheonly", str(folder), what="a build")
    records = [r for r in _records(engine) if token in (r.get("Description") or "")]
    assert len(records) == 1, f"one build cache record for {token}, found {records}"
    return str(records[0]["ID"])


def _records(engine: SecondEngine) -> list[dict[str, Any]]:
    return list(engine.client().df()["BuildCache"] or [])


def test_build_cache_unused_longer_than_the_idle_time_is_pruned_and_fresh_cache_kept(tmp_path: Path) -> None:
    """On an engine of its own: a prune while another build exports can fail that build.
    Without root, that engine runs in a container (tierharness.supply.engine_container)."""
    with second_engine(tmp_path / "state") as engine:
        client = engine.client()
        stale = _build_cache_record(engine, tmp_path / "stale", f"stale-{uuid.uuid4().hex}")
        time.sleep(3)
        fresh = _build_cache_record(engine, tmp_path / "fresh", f"fresh-{uuid.uuid4().hex}")
        fresh_built = time.monotonic()

        assert prune_build_cache(3600, client=client).records == 0  # used seconds ago: kept
        # Older than the fresh record by a margin, younger than the stale one. A busy engine
        # may hold a record a moment after its build returned: asked again until it lets go.
        deadline = fresh_built + 20
        while stale in {str(r["ID"]) for r in _records(engine)} and time.monotonic() < deadline:
            prune_build_cache(int(time.monotonic() - fresh_built) + 2, client=client)
            time.sleep(0.2)
        ids = {str(r["ID"]) for r in _records(engine)}
        assert stale not in ids
        assert fresh in ids
