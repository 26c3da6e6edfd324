"""The machine's wheel cache: a fresh checkout takes its wheelhouse from it without a
download, and a tampered cache entry is refused by name before anything is built."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tierharness.errors import BuildError
from tierharness.imaging import wheelhouse
from tierharness.imaging.lockfiles import parse_lockfile
from tierharness.imaging.wheelhouse import fill_wheelhouse


def _small_lockfile(project_root: Path, folder: Path) -> Path:
    """One pure-Python pin of the app's lockfile, with its hashes: a download of seconds."""
    (pin,) = [p for p in parse_lockfile(project_root / "requirements/app.txt") if p.name == "h11"]
    lockfile = folder / "small.txt"
    hashes = " ".join(f"--hash=sha256:{h}" for h in pin.hashes)
    lockfile.write_text(f"h11=={pin.version} {hashes}\n", encoding="utf-8")
    return lockfile


def _wheels(folder: Path) -> list[str]:
    return sorted(w.name for w in folder.glob("*.whl"))


def test_a_fresh_checkout_takes_its_wheels_from_the_cache_and_a_tampered_one_is_named(
    project_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lockfile = _small_lockfile(project_root, tmp_path)
    cache = tmp_path / "cache"
    fill_wheelhouse([lockfile], tmp_path / "first", cache=cache)  # downloads, then shares
    (entry,) = [p for p in cache.iterdir() if not p.name.startswith(".")]
    assert _wheels(entry) == _wheels(tmp_path / "first") != []

    def no_download(*_args: Any, **_kwargs: Any) -> None:
        pytest.fail("the wheels were downloaded again despite the cache")

    monkeypatch.setattr(wheelhouse, "run", no_download)
    fill_wheelhouse([lockfile], tmp_path / "second", cache=cache)
    assert _wheels(tmp_path / "second") == _wheels(entry)

    (cached,) = entry.glob("*.whl")
    cached.write_bytes(b"not the wheel the lockfile pins")
    with pytest.raises(BuildError) as err:
        fill_wheelhouse([lockfile], tmp_path / "third", cache=cache)
    assert str(cached) in err.value.what
    assert f"rm -r {entry}" in str(err.value)
