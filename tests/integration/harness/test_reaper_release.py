"""A run that ends normally releases its reaper: it sweeps once and exits, instead of sweeping
the engine every second for the grace period that only a killed run needs."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.projects import project_env
from tierharness.engine.reaper import end_marker, spawn_reaper
from tierharness.process import start_child

# Long enough that a reaper still sweeping for it is told apart from one that was released,
# and short enough that a killed test's reapers are gone soon after it.
GRACE = "20"
KILLED_GRACE = 4

TESTS = """
def test_one(harness_reaper):
    pass


def test_two(harness_reaper):
    pass
"""


def _wait_for(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_a_run_that_ends_normally_releases_its_reaper_at_once(tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    (root / "pyproject.toml").write_text("[tool.pytest.ini_options]\n")
    (root / "test_project.py").write_text(TESTS)
    run_id = f"release-{uuid.uuid4().hex[:8]}"
    # Two workers: one of them starts the reaper, the controller releases it.
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2", f"--rootdir={root}"],
        cwd=root, env=project_env(run_id, {"HARNESS_REAPER_GRACE": GRACE}),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    ended = time.monotonic()
    log = root / ".harness" / "reaper.log"
    line = f"reaper: run {run_id}: owner"
    assert _wait_for(lambda: log.is_file() and line in log.read_text(), 10), (
        f"no reaper line for {run_id} within 10 s of the run's end (grace {GRACE} s): "
        + (log.read_text() if log.is_file() else "no reaper.log")
    )
    said = next(x for x in log.read_text().splitlines() if x.startswith(line))
    assert "ended normally" in said, said
    print(f"reaper done {time.monotonic() - ended:.1f} s after the run's end")
    # The marker that made the reaper one-per-run, and the end marker, are consumed.
    assert sorted(p.name for p in (root / ".harness" / "runs").glob(f"{run_id}.*")) == []


@pytest.mark.parametrize("ended_normally", [True, False], ids=["ended", "killed"])
def test_only_an_owner_that_wrote_its_end_marker_skips_the_grace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ended_normally: bool
) -> None:
    # The reaper's, read in its own process. Killed, the test waits the grace out: a short one,
    # still longer than a released reaper's single sweep takes here (under a second).
    grace = GRACE if ended_normally else str(KILLED_GRACE)
    monkeypatch.setenv("HARNESS_REAPER_GRACE", grace)
    run_id = f"release-{uuid.uuid4().hex[:8]}"
    owner = start_child(["sleep", "300"], log_path=tmp_path / "owner.log")  # dies with this test
    marker = end_marker(tmp_path, run_id)
    marker.parent.mkdir(parents=True)
    reaper = spawn_reaper(run_id, owner.pid, tmp_path / "reaper.log", ended=marker)
    try:
        if ended_normally:
            marker.touch()
        owner.kill()
        owner.wait()
        if ended_normally:
            assert reaper.wait(timeout=10) == 0, (tmp_path / "reaper.log").read_text()
            assert not marker.exists()
            assert "ended normally" in (tmp_path / "reaper.log").read_text()
        else:
            # Killed, the owner may have left a creation in flight: the reaper sweeps for the
            # whole grace (counted from when it saw the owner gone), then ends by itself.
            gone = time.monotonic()
            assert reaper.wait(timeout=KILLED_GRACE + 30) == 0, (tmp_path / "reaper.log").read_text()
            swept_for = time.monotonic() - gone
            assert swept_for >= KILLED_GRACE, (
                f"the reaper of a killed owner ended {swept_for:.1f} s after it, within its "
                f"{KILLED_GRACE} s grace: " + (tmp_path / "reaper.log").read_text()
            )
            assert f"owner {owner.pid} gone" in (tmp_path / "reaper.log").read_text()
    finally:
        for process in (owner, reaper):
            if process.poll() is None:
                process.kill()
            process.wait()
