"""The run's identity: its id and owner pid, made by the run's controller (or the one process
of a run without xdist) and handed to its xdist workers through the environment, since early
provisioning runs before xdist gives a worker anything else."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from tierharness.config import environment
from tierharness.plugin.session import OWNER_PID, RUN_ID, STARTED

if TYPE_CHECKING:
    from tierharness.engine.labels import RunIdentity

__all__ = ["CONTROLLER_VAR", "claim_identity", "identity"]

CONTROLLER_VAR = "HARNESS_CONTROLLER"  # "<run id>:<pid>", read back as Environment.controller


def claim_identity(config: pytest.Config) -> bool:
    """Stash the run's id, owner and start; True when this process is the run's controller
    (not a worker that inherited them)."""
    inherited = _controller_of_this_worker()
    if inherited is not None:
        config.stash[RUN_ID], config.stash[OWNER_PID] = inherited
    else:
        from tierharness.engine.run_ids import new_run_id  # noqa: PLC0415  lazy: plugin start-up time (a worker inherits the run's id)

        config.stash[RUN_ID] = environment().run_id or new_run_id()
        config.stash[OWNER_PID] = os.getpid()
        os.environ[CONTROLLER_VAR] = f"{config.stash[RUN_ID]}:{os.getpid()}"
    config.stash[STARTED] = datetime.now(UTC).isoformat(timespec="seconds")
    return inherited is None


def identity(config: pytest.Config) -> RunIdentity:
    """This process's identity in the run: what its containers are labelled with."""
    from tierharness.engine.labels import RunIdentity  # noqa: PLC0415  lazy: plugin start-up time (only what starts something labels it)

    return RunIdentity(config.stash[RUN_ID], _worker_id(), config.stash[OWNER_PID])


def _worker_id() -> str:
    """The xdist way: PYTEST_XDIST_WORKER in a worker (set before its config exists), else
    "master"."""
    return environment().xdist_worker or "master"


def _controller_of_this_worker() -> tuple[str, int] | None:
    """(run id, controller pid) when this process is an xdist worker of a harness run: the
    variable is inherited from the controller, and the controller is our parent (a pytest
    started by a test inherits the variable too, but not that parent)."""
    env = environment()
    run_id, _, pid = (env.controller or "").rpartition(":")
    if not env.xdist_worker or not pid.isdigit() or int(pid) != os.getppid():
        return None
    return run_id, int(pid)
