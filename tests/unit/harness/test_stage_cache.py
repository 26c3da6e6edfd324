"""Where the project image's stages keep their cache (tierharness.imaging.stage_cache), and
what a sweep of one leaves, without an engine."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest
from filelock import FileLock

from tierharness.imaging.stage_cache import prune_stage_caches, stage_cache, sweep


@pytest.fixture(autouse=True)
def machine_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("HARNESS_BUILD_CACHE_FROM", "HARNESS_BUILD_CACHE_TO", "HARNESS_BUILDER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "machine"))
    return tmp_path / "machine"


def test_a_stage_exports_into_its_own_folder_and_imports_once_there_is_an_export(machine_cache: Path) -> None:
    folder = machine_cache / "stage-cache" / "knowledge-hub_api-gateway" / "test"
    with stage_cache("knowledge-hub/api-gateway", "test", no_cache=False) as first:
        assert (first.cache_from, first.cache_to) == (None, f"type=local,dest={folder},mode=max")
        (folder / "index.json").write_text(json.dumps({"manifests": []}))
    with stage_cache("knowledge-hub/api-gateway", "test", no_cache=False) as second:
        assert second.cache_from == f"type=local,src={folder}"
    with stage_cache("knowledge-hub/api-gateway", "production", no_cache=False) as other:
        assert other.cache_from is None  # each stage its own: an export replaces the index


def test_the_environments_locations_and_a_clean_build_bypass_the_stage_folder(
    machine_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with stage_cache("app", "test", no_cache=True) as clean:
        assert (clean.cache_from, clean.cache_to) == (None, None)
    monkeypatch.setenv("HARNESS_BUILD_CACHE_TO", "type=gha,mode=max")
    with stage_cache("app", "test", no_cache=False) as named:
        assert (named.cache_from, named.cache_to) == (None, "type=gha,mode=max")
    assert not (machine_cache / "stage-cache").exists()


def _blob(blobs: Path, document: dict[str, object] | bytes) -> dict[str, str]:
    data = document if isinstance(document, bytes) else json.dumps(document).encode()
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    media = "application/vnd.oci.image.index.v1+json" if isinstance(document, dict) else "layer"
    return {"mediaType": media, "digest": f"sha256:{digest}"}


def test_a_sweep_keeps_what_the_index_reaches_and_removes_the_rest(tmp_path: Path) -> None:
    blobs = tmp_path / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    layer, config, old = _blob(blobs, b"layer"), _blob(blobs, b"cache config"), _blob(blobs, b"old layer")
    manifest = _blob(blobs, {"manifests": [layer, config]})
    (tmp_path / "index.json").write_text(json.dumps({"manifests": [manifest]}))

    assert sweep(tmp_path) == 1

    kept = {p.name for p in blobs.iterdir()}
    assert kept == {d["digest"].removeprefix("sha256:") for d in (layer, config, manifest)}
    assert old["digest"].removeprefix("sha256:") not in kept

    (tmp_path / "index.json").write_text("{not json")
    assert sweep(tmp_path) == 0  # an unreadable index removes nothing
    assert len(list(blobs.iterdir())) == 3


def test_clean_removes_only_the_stage_caches_no_build_exported_into_for_a_while(machine_cache: Path) -> None:
    root = machine_cache / "stage-cache"
    stale, fresh, held = root / "gone-app" / "test", root / "app" / "test", root / "app" / "production"
    for folder in (stale, fresh, held):
        folder.mkdir(parents=True)
        (folder / "index.json").write_text("{}")
    long_ago = time.time() - 7200
    for folder in (stale, held):
        os.utime(folder / "index.json", (long_ago, long_ago))

    with FileLock(str(held.with_name("production.lock"))):  # a build of it is under way
        assert prune_stage_caches(3600) == 1

    assert not (root / "gone-app").exists()  # the image's folder too, with its last stage
    assert fresh.is_dir()
    assert held.is_dir()
    assert prune_stage_caches(3600) == 1
    assert not held.exists()
    assert fresh.is_dir()
