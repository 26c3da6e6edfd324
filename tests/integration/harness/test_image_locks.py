"""The images' packages.lock against this machine's apt index (what every offline image
build checks first): a changed hash or a version gone from the mirror is named."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from tierharness.config import LogicalImage, load_settings
from tierharness.errors import LockfileError
from tierharness.imaging.debs import check_lock, index_entries, lock_path, read_lock, write_lock


def _copy(tmp_path: Path, name: str) -> LogicalImage:
    spec = load_settings().image(name)
    recipe = tmp_path / name
    shutil.copytree(spec.recipe, recipe)
    return replace(spec, recipe=recipe)


@pytest.mark.parametrize("name", ["base", "postgres", "redis", "registry", "engine", "haproxy", "prometheus"])
def test_every_image_lock_matches_the_mirror(name: str) -> None:
    assert len(check_lock(load_settings().image(name))) > 0


def test_apt_keeps_its_binary_cache_in_the_machines_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "machine"))
    debs = read_lock(lock_path(load_settings().image("redis")))[:3]
    first = index_entries(debs)
    kept = tmp_path / "machine" / "apt" / "pkgcache.bin"
    assert kept.stat().st_size > 0  # built once, then read by every later call
    assert index_entries(debs) == first
    assert sorted(first) == sorted(d.key for d in debs)


def test_a_lock_entry_whose_hash_does_not_match_fails_naming_it(tmp_path: Path) -> None:
    spec = _copy(tmp_path, "redis")
    debs = read_lock(lock_path(spec))
    victim = next(d for d in debs if d.name == "redis-server")
    wrong = replace(victim, sha256="0" * 64)
    write_lock(lock_path(spec), [wrong if d == victim else d for d in debs], image="redis")

    with pytest.raises(LockfileError) as err:
        check_lock(spec)

    message = str(err.value)
    assert f"redis-server {victim.version} (amd64): the mirror's .deb has SHA-256 {victim.sha256}" in message
    assert f"locks {'0' * 64}" in message
    assert "nox -s lock -- --images" in message


def test_a_version_gone_from_the_mirror_fails_naming_it(tmp_path: Path) -> None:
    spec = _copy(tmp_path, "registry")
    debs = read_lock(lock_path(spec))
    gone = replace(debs[0], version="0.0.0-gone")
    write_lock(lock_path(spec), [gone, *debs[1:]], image="registry")

    with pytest.raises(LockfileError, match=rf"{gone.name} 0.0.0-gone \({gone.arch}\), locked in .* is gone"):
        check_lock(spec)
