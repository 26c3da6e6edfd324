"""Temporary folders named for their owner: a sweep removes those of processes that are gone,
and nothing else (a live owner's, another pid namespace's, a file, a link)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.root import root_only
from tierharness.scratch import make_scratch, scratch_folder, sweep_scratch


@pytest.fixture
def tmpdir_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's own temporary folder, for this process and its children."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() caches its first answer
    return folder


def _made_by_a_process_that_is_gone() -> Path:
    """A folder made by a child Python process, which then exits without removing it (as a
    SIGKILLed run would)."""
    code = "from tierharness.scratch import make_scratch; print(make_scratch('registry'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def test_a_gone_owners_folder_is_swept_and_a_live_ones_is_kept(tmpdir_here: Path) -> None:
    gone = _made_by_a_process_that_is_gone()
    (gone / "password").write_text("secret")
    assert gone.parent == tmpdir_here
    assert gone.name.startswith("harness-registry@")
    mine = make_scratch("repro")  # its making swept `gone` already
    assert not gone.exists()
    assert mine.is_dir()
    assert (mine.stat().st_mode & 0o777) == 0o700

    again = _made_by_a_process_that_is_gone()
    assert sweep_scratch() == [again]
    assert mine.is_dir()


def test_what_is_not_a_gone_owners_folder_is_never_touched(tmpdir_here: Path) -> None:
    gone = _made_by_a_process_that_is_gone()
    pid, start, namespace = gone.name.split("@", 1)[1].split("-", 1)[0].split(".")
    other_namespace = tmpdir_here / f"harness-registry@{pid}.{start}.{int(namespace) + 1}-abc"
    a_file = tmpdir_here / f"harness-registry@{pid}.{start}.{namespace}-file"
    a_link = tmpdir_here / f"harness-registry@{pid}.{start}.{namespace}-link"
    unnamed = tmpdir_here / "harness-registry-abcdefgh"
    other_namespace.mkdir()
    a_file.write_text("")
    a_link.symlink_to(gone)
    unnamed.mkdir()

    assert sweep_scratch() == [gone]
    assert other_namespace.is_dir()
    assert a_file.is_file()
    assert a_link.is_symlink()
    assert unnamed.is_dir()


@root_only("a folder of another user (chown)", "run it as root: sudo .venv/bin/nox -s root-tests")
def test_another_users_folder_is_never_touched(tmpdir_here: Path) -> None:
    gone = _made_by_a_process_that_is_gone()
    os.chown(gone, 65534, 65534)  # nobody's now: its maker is gone all the same
    assert sweep_scratch() == []
    assert gone.is_dir()


def test_a_reused_pid_does_not_keep_a_folder(tmpdir_here: Path) -> None:
    """The owner is its pid *and* start time: a live process that got the pid later is not it."""
    mine = make_scratch("export")
    pid, start, namespace = mine.name.split("@", 1)[1].split("-", 1)[0].split(".")
    impostor = tmpdir_here / f"harness-export@{pid}.{int(start) - 1}.{namespace}-abc"
    impostor.mkdir()
    assert sweep_scratch() == [impostor]
    assert mine.is_dir()


def test_scratch_folder_goes_at_the_end_of_its_block_however_it_ends(tmpdir_here: Path) -> None:
    with scratch_folder("Lock: base/2") as folder:
        assert folder.name.startswith("harness-lock-base-2@")
        (folder / "f").write_text("x")
    assert not folder.exists()
    with pytest.raises(RuntimeError), scratch_folder("diff") as failed:
        raise RuntimeError("boom")
    assert not failed.exists()
    assert list(tmpdir_here.iterdir()) == []


def test_a_folder_made_beside_its_destination_is_swept_there(tmp_path: Path, tmpdir_here: Path) -> None:
    """The wheel cache fills a folder beside the entry it renames into place."""
    cache = tmp_path / "wheels"
    cache.mkdir()
    code = f"from tierharness.scratch import make_scratch; print(make_scratch('wheels', {str(cache)!r}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    gone = Path(out.stdout.strip())
    entry = cache / "0123abcd"  # a filled entry: no maker in its name
    entry.mkdir()
    assert gone.parent == cache
    assert sweep_scratch() == []  # a sweep of the temporary folder does not reach into the cache
    assert gone.is_dir()
    mine = make_scratch("wheels", parent=cache)
    assert sorted(p.name for p in cache.iterdir()) == sorted(["0123abcd", mine.name])
