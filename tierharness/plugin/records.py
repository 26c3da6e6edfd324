"""What the run leaves in its state dir: the reaper, started once per run whoever starts
something first and released by the controller at a normal end, and the manifests each worker
writes and the controller merges."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tierharness.plugin.plans import state_dir
from tierharness.plugin.session import OWNER_PID, RUN_ID, STARTED, SUMMARY, options_of

if TYPE_CHECKING:
    from tierharness.runtime.worker import Worker

__all__ = ["ensure_reaper", "merge_manifests", "release_reaper", "run_state_dir", "write_manifest"]


def run_state_dir(config: pytest.Config) -> Path:
    return state_dir(options_of(config), Path(config.rootpath))


def _reaper_marker(where: Path, run_id: str) -> Path:
    # Beside the run's folder, not in it: the controller removes that folder when it merges the
    # manifests, and releases the reaper after that.
    return where / "runs" / f"{run_id}.reaper"


def ensure_reaper(config: pytest.Config) -> None:
    """Start the run's reaper once, the first time anything is started: whichever process
    gets here first (a worker, or the controller without xdist) starts it for the run's
    controller. A marker file created exclusively makes "once" hold across workers."""
    if not options_of(config).reaper:
        return
    where, run_id = run_state_dir(config), config.stash[RUN_ID]
    marker = _reaper_marker(where, run_id)
    marker.parent.mkdir(parents=True, exist_ok=True)
    try:
        marker.touch(exist_ok=False)
    except FileExistsError:
        return
    from tierharness.engine.reaper import end_marker, spawn_reaper  # noqa: PLC0415  lazy: plugin start-up time (filelock, ctypes)

    spawn_reaper(run_id, config.stash[OWNER_PID], where / "reaper.log", ended=end_marker(where, run_id))


def release_reaper(config: pytest.Config) -> None:
    """In the controller, at its very end: its workers are gone and every fixture has stopped
    what it started, so the run's reaper (if one was started) sweeps once instead of for its
    grace period. A killed controller never gets here, and its reaper keeps its grace."""
    where, run_id = run_state_dir(config), config.stash[RUN_ID]
    marker = _reaper_marker(where, run_id)
    if not marker.exists():
        return
    from tierharness.engine.reaper import mark_ended  # noqa: PLC0415  lazy: plugin start-up time (filelock, ctypes)

    mark_ended(where, run_id)
    marker.unlink(missing_ok=True)


def write_manifest(config: pytest.Config, worker: Worker) -> None:
    from tierharness.runtime import manifest  # noqa: PLC0415  lazy: plugin start-up time

    manifest.write_worker(
        run_state_dir(config), worker.identity.run_id, worker.identity.worker, worker.record
    )


def merge_manifests(config: pytest.Config) -> None:
    """In the controller, at the session's end: the workers' manifests in one, and the line
    the terminal summary prints about it."""
    where = run_state_dir(config)
    if not (where / "runs" / config.stash[RUN_ID]).is_dir():
        return  # no worker started anything, so wrote no manifest
    from tierharness.runtime import manifest  # noqa: PLC0415  lazy: plugin start-up time

    merged = manifest.merge_run(
        where, config.stash[RUN_ID], {"started": config.stash.get(STARTED, ""), "pid": os.getpid()}
    )
    if merged is not None:
        config.stash[SUMMARY] = manifest.summary_line(merged, where / "last-run.json")
