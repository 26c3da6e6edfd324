"""What a build leaves in the engine stays in bounds (tierharness.engine.retention), on real
engines, and only what the harness made goes. Each test touches only what it made (its own
ledger, in a machine cache of its own), or works on an engine of its own: a developer's own
cache and images are safe."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from docker.errors import ImageNotFound

from tierharness.config import child_env
from tierharness.engine.client import engine_client, engine_connection
from tierharness.engine.image_list import listed_images
from tierharness.engine.retention import (
    prune_build_cache,
    prune_loopback_pulls,
    prune_old_builds,
    record_build,
    record_pull,
    recording_build_cache,
)
from tierharness.engine.reuse import LABEL_REUSE, LABEL_REUSE_OWNER
from tierharness.engine.second_engine import SecondEngine, second_engine
from tierharness.runtime.migrated import LABEL_KEY, LABEL_OWNER, REPOSITORY, prune_migrated


@pytest.fixture(autouse=True)
def own_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the harness recorded as made lives in the machine cache: a fresh one per test."""
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "machine"))


def _tiny_image(reference: str, content: str, client: Any = None) -> str:
    """A one-file image, imported (no build): its creation time is the import's."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("stamp")
        info.size = len(content.encode())
        tar.addfile(info, io.BytesIO(content.encode()))
    repository, _, tag = reference.rpartition(":")
    (client or engine_client()).api.import_image_from_data(buf.getvalue(), repository=repository, tag=tag)
    return reference


def _exists(reference: str, client: Any = None) -> bool:
    try:
        (client or engine_client()).images.get(reference)
    except ImageNotFound:
        return False
    return True


@pytest.fixture
def repository() -> Iterator[str]:
    name = f"harness-test/retention-{uuid.uuid4().hex[:8]}"
    yield name
    for image in listed_images(engine_client(), name=name):
        for tag in image.tags:
            if tag.startswith(f"{name}:"):
                engine_client().images.remove(tag)


def test_old_builds_beyond_keep_go_newest_and_protected_and_other_tags_stay(repository: str) -> None:
    revisions = [f"{n:012x}" for n in range(1, 6)]  # oldest first
    for n, revision in enumerate(revisions):
        record_build(_tiny_image(f"{repository}:{revision}", f"build {n}"))
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


def test_old_builds_that_the_harness_did_not_make_stay(repository: str) -> None:
    """A commit-shaped tag of the same repository made by hand (another project's `app`, or a
    tag moved to another image) is not the harness's build, however old."""
    foreign = _tiny_image(f"{repository}:{'a' * 12}", "another project's app")
    moved = _tiny_image(f"{repository}:{'b' * 12}", "built")
    record_build(moved)
    built = engine_client().images.get(moved).id
    _tiny_image(moved, "tagged again by hand")  # the tag now names another image
    try:
        time.sleep(0.01)
        newer = [f"{repository}:{n:012x}" for n in range(1, 3)]
        for n, tag in enumerate(newer):
            record_build(_tiny_image(tag, f"build {n}"))
            time.sleep(0.01)

        assert prune_old_builds(repository, 1) == (newer[0],)
        assert _exists(foreign)
        assert _exists(moved)
        assert _exists(newer[1])
    finally:
        with contextlib.suppress(ImageNotFound):  # untagged by the second import, maybe kept dangling
            engine_client().images.remove(built)


def test_loopback_pulls_the_harness_made_are_removed_and_other_references_kept(repository: str) -> None:
    mine = f"127.0.0.1:1/{repository}"
    pulled = _tiny_image(f"{mine}:t1", "pulled from a run's own registry")
    record_pull(pulled)
    foreign = _tiny_image(f"localhost:1/{repository}/other:keep", "another project's loopback registry")
    local = _tiny_image(f"{repository}:keep", "a local image")
    try:
        assert prune_loopback_pulls() == (pulled,)
        assert not _exists(pulled)
        assert _exists(foreign)
        assert _exists(local)
        assert prune_loopback_pulls() == ()  # forgotten once gone
    finally:
        for reference in (pulled, foreign):
            if _exists(reference):
                engine_client().images.remove(reference)


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


def test_build_cache_the_harness_made_is_pruned_when_idle_and_other_builds_cache_kept(tmp_path: Path) -> None:
    """On an engine of its own: a prune while another build exports can fail that build.
    Without root, that engine runs in a container (tierharness.engine.second_engine_container)."""
    with second_engine(tmp_path / "state") as engine:
        client = engine.client()
        foreign = _build_cache_record(engine, tmp_path / "foreign", f"foreign-{uuid.uuid4().hex}")
        with recording_build_cache(client):  # as buildx_build records the harness's builds
            stale = _build_cache_record(engine, tmp_path / "stale", f"stale-{uuid.uuid4().hex}")
        before = {str(r["ID"]) for r in _records(engine)}
        with recording_build_cache(client, clean=True):  # and its --no-cache ones
            clean = _build_cache_record(engine, tmp_path / "clean", f"clean-{uuid.uuid4().hex}")
        made_clean = {str(r["ID"]) for r in _records(engine)} - before  # its step's, and its sources'
        time.sleep(3)
        with recording_build_cache(client):
            fresh = _build_cache_record(engine, tmp_path / "fresh", f"fresh-{uuid.uuid4().hex}")
        fresh_built = time.monotonic()

        # Used seconds ago, all three builds' records: only the clean build's go.
        assert clean in made_clean
        assert prune_build_cache(3600, client=client).records == len(made_clean)
        assert not made_clean & {str(r["ID"]) for r in _records(engine)}
        # Older than the fresh record by a margin, younger than the stale one. A busy engine
        # may hold a record a moment after its build returned: asked again until it lets go.
        deadline = fresh_built + 20
        while stale in {str(r["ID"]) for r in _records(engine)} and time.monotonic() < deadline:
            prune_build_cache(int(time.monotonic() - fresh_built) + 2, client=client)
            time.sleep(0.2)
        ids = {str(r["ID"]) for r in _records(engine)}
        assert stale not in ids
        assert fresh in ids
        assert foreign in ids  # older than both and unused: another build's, so not the harness's


def _kept(client: Any, owner: int, image: str) -> str:
    """A container as `--harness-reuse` keeps one, for the user `owner`: its id."""
    key = uuid.uuid4().hex[:20]
    labels = {LABEL_REUSE: key, LABEL_REUSE_OWNER: str(owner), "harness.role": "postgres"}
    container = client.containers.create(image, ["/stamp"], name=f"harness-reuse-{key}", labels=labels)
    return str(container.id)


def test_clean_prune_removes_what_the_harness_made_and_leaves_other_projects_and_users_alone(
    tmp_path: Path, project_root: Path
) -> None:
    """`python -m tierharness clean --prune` on an engine of its own (it prunes, and the
    tests run beside builds): another project's `localhost:5000/...` image and another user's
    kept container survive it; this user's kept container and the run's own pull do not.
    `clean --build-cache` before it prunes a --no-cache build's records and touches nothing else."""
    with second_engine(tmp_path / "state") as engine:
        client = engine.client()
        small = _tiny_image("harness-test/small:1", "a small local image", client)
        foreign_image = "localhost:5000/other/app:keep"
        client.images.get(small).tag(foreign_image)  # by hand, as another project would
        pulled = _tiny_image("127.0.0.1:1/harness-test/app:t1", "pulled from a run's own registry", client)
        record_pull(pulled, client=client)  # as verified_image records its pull
        mine, theirs = _kept(client, os.getuid(), small), _kept(client, os.getuid() + 1, small)
        with recording_build_cache(client, clean=True):
            made = _build_cache_record(engine, tmp_path / "clean", f"clean-{uuid.uuid4().hex}")
        built = time.monotonic()

        # This engine only, with the test's own machine cache (HARNESS_CACHE_DIR, own_ledger).
        env = child_env(engine.env(), drop=("DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"))

        def clean(*args: str, budget: str = "4096") -> str:
            proc = subprocess.run(
                [sys.executable, "-m", "tierharness", "clean", *args],
                cwd=project_root, env={**env, "HARNESS_BUILD_CACHE_KEEP": budget},
                capture_output=True, text=True, timeout=300, check=False,
            )  # fmt: skip
            assert proc.returncode == 0, proc.stdout + proc.stderr
            return proc.stdout

        said = clean("--build-cache")  # within the budget: held
        assert made in {str(r["ID"]) for r in _records(engine)}, said
        assert "within HARNESS_BUILD_CACHE_KEEP (4096 MiB)" in said
        time.sleep(max(0.0, built + 2 - time.monotonic()))  # a prune's `until` spares the last second
        said = clean("--build-cache", budget="0")  # no budget, as .ci/run's last stage asks
        assert made not in {str(r["ID"]) for r in _records(engine)}, said
        assert _exists(pulled, client), said
        assert {mine, theirs} <= {c.id for c in client.containers.list(all=True)}, said

        said = clean("--prune")
        assert _exists(foreign_image, client), said
        assert _exists(small, client)
        assert not _exists(pulled, client)
        left = {c.id for c in client.containers.list(all=True)}
        assert theirs in left, said
        assert mine not in left, said
        assert "left 1 kept container(s) of other users" in said

        clean("--all-users")  # asked for explicitly
        assert theirs not in {c.id for c in client.containers.list(all=True)}


def _removing_after_list(victim: str) -> Any:
    """A client of its own whose image list is followed at once by another run's removal of
    `victim`: the moment between a list and the inspection of what it named."""
    client = engine_connection(timeout=30)
    listed = client.api.images

    def then_removed(*args: Any, **kwargs: Any) -> Any:
        summaries = listed(*args, **kwargs)
        with contextlib.suppress(ImageNotFound):
            engine_client().images.remove(victim)
        return summaries

    client.api.images = then_removed
    return client


def test_an_image_removed_between_list_and_inspection_is_left_out_not_an_error(repository: str) -> None:
    kept = _tiny_image(f"{repository}:kept", "stays")
    victim = _tiny_image(f"{repository}:gone", "removed by another run")
    found = listed_images(_removing_after_list(victim), name=repository)
    assert [tag for image in found for tag in image.tags] == [kept]
    # The canary: the SDK's own list inspects each image it listed, and fails on the removed one.
    _tiny_image(victim, "removed by another run, again")
    with pytest.raises(ImageNotFound):
        _removing_after_list(victim).images.list(name=repository)


def _migrated_image(client: Any, key: str, owner: int) -> str:
    """An image labelled as a migrated image of `owner` (as commit_migrated labels its commits)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("stamp")
        info.size = len(key)
        tar.addfile(info, io.BytesIO(key.encode()))
    changes = [f"LABEL {LABEL_KEY}={key}", f"LABEL {LABEL_OWNER}={owner}"]
    client.api.import_image_from_data(buf.getvalue(), repository=REPOSITORY, tag=key, changes=changes)
    return f"{REPOSITORY}:{key}"


def test_a_users_migrated_images_beyond_the_newest_ten_go_and_another_users_stay(tmp_path: Path) -> None:
    """On an engine of its own: the prune would take a developer's own oldest migrated images."""
    with second_engine(tmp_path / "state") as engine:
        client = engine.client()
        theirs = [_migrated_image(client, f"theirs{n}", os.getuid() + 1) for n in range(2)]
        mine = []
        for n in range(12):
            mine.append(_migrated_image(client, f"mine{n:02d}", os.getuid()))
            time.sleep(0.01)  # creation times apart: the prune keeps the newest by them
        prune_migrated(client)
        assert [ref for ref in mine if _exists(ref, client)] == mine[2:]
        assert all(_exists(ref, client) for ref in theirs)
