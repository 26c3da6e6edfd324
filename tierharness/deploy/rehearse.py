"""`harness deploy`: the whole rehearsal. Candidates refused or resolved, blue verified, the
stack started under load, each candidate switched to or rolled back, and the verdict.

Passes when every candidate expected to be good was switched to with 0 failed requests and
the perf thresholds met; with `expect_rollback`, when every broken one rolled back.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from typing import Any

from tierharness.config import Settings, environment
from tierharness.deploy.bluegreen import deploy_candidate
from tierharness.deploy.candidates import BROKEN, CURRENT, broken_recipes, resolve_candidates
from tierharness.deploy.preflight import DeployError, check_port_free, require_image
from tierharness.deploy.probes import get, wait_until
from tierharness.deploy.rehearsal_stack import rehearsal
from tierharness.deploy.report import Outcome, rule_timing, write_verdict
from tierharness.deploy.state_lock import state_lock
from tierharness.deploy.timeline import Timeline
from tierharness.engine.labels import RunIdentity
from tierharness.engine.reaper import reaped
from tierharness.engine.run_ids import new_run_id
from tierharness.imaging.project_image import build_image
from tierharness.supply.stack_image import image_to_run

__all__ = ["run_rehearsal"]

_REHEARSAL_WAIT = 900.0  # seconds: longer than any rehearsal

Candidates = list[tuple[str, str, bool]]  # (label, image, broken)


def run_rehearsal(
    settings: Settings,
    wanted: list[str],
    *,
    expect_rollback: bool = False,
    log: Callable[[str], None] = print,
) -> int:
    """`harness deploy`: the whole rehearsal; returns the exit code."""
    recipes = broken_recipes(settings)
    # Refused before anything is built or started: a candidate that does not exist, a busy port.
    for item in wanted:
        if item not in (CURRENT, BROKEN, *recipes):
            require_image(item)
    check_port_free(settings.deploy.proxy_port)
    built = build_image(settings, log=log)
    candidates = resolve_candidates(settings, wanted, built.image, log)

    run_id = environment().run_id or new_run_id("deploy-")
    identity = RunIdentity(run_id, "deploy", os.getpid())
    with reaped(run_id, settings.state_dir):
        # Verified, the published image by digest from the registry: a failed verification starts nothing.
        blue = image_to_run(settings, built.image, identity, log)
        if blue != built.image:
            candidates = [
                (label, blue if image == built.image else image, bad) for label, image, bad in candidates
            ]
        with _one_rehearsal_at_a_time(settings, log):
            return _rehearse(settings, identity, blue, candidates, expect_rollback=expect_rollback)


def _rehearse(
    settings: Settings, identity: RunIdentity, blue: str, candidates: Candidates, *, expect_rollback: bool
) -> int:
    """The stack up under load, every candidate through the switch, everything removed; the verdict."""
    cfg = settings.deploy
    folder = settings.build_dir / "deploy"
    timeline = Timeline()
    outcomes: list[tuple[Outcome, bool]] = []
    results: dict[str, Any] | None = None
    retries = 0
    timeline.mark("rehearsal starts", f"run {identity.run_id}; blue = {blue}")
    with rehearsal(
        settings, identity, blue, folder=folder, timeline=timeline, users=cfg.users,
        instances=1 + len(candidates), load=lambda r: r.start_locust(cfg.users),
    ) as reh:  # fmt: skip
        if not wait_until(lambda: reh.locust_requests() >= 20, 60, poll=0.25):
            raise DeployError(
                "Locust made no requests through the proxy",
                checked=f"{folder / 'locust' / 'locust.log'}",
                fix="read Locust's log",
            )
        timeline.mark("load flowing through the proxy", f"{cfg.users} Locust users")
        for label, image, broken in candidates:
            outcomes.append((deploy_candidate(reh, image, label), broken))
        time.sleep(2.0)  # requests after the last switch, on whatever serves now
        results = reh.stop_locust()
        retries = reh.api.retries()
        timeline.mark("load stopped", "Locust's gate has judged the run")
        serving = reh.active
        status, _ = get(f"{reh.proxy_url}/health")
        timeline.mark("after the rehearsal", f"proxy routes to {serving}; GET /health through it: {status}")
    timeline.mark("everything removed")
    return write_verdict(
        timeline,
        outcomes,
        results,
        folder / "locust" / "stats_stats_history.csv",
        folder,
        expect_rollback=expect_rollback,
        limit=cfg.rollback_limit,
        timing=rule_timing(settings),
        slow_ms=settings.perf.p95_ms,
        retries=retries,
    )


def _one_rehearsal_at_a_time(
    settings: Settings, log: Callable[[str], None]
) -> contextlib.AbstractContextManager[None]:
    """Rehearsals of one checkout share build/deploy (the proxy's and Prometheus's files, the
    timeline): a second one waits for the first instead of deleting its files under it."""
    path = settings.state_dir / "deploy.lock"
    busy = DeployError(
        f"another deploy rehearsal held {path} for {_REHEARSAL_WAIT:g}s",
        checked=f"the lock {path}",
        fix="wait for it to finish (or stop it); a killed one releases the lock with its process",
    )
    waiting = f"another deploy rehearsal of this checkout is running; waiting for it ({path})"
    return state_lock(path, busy, wait=_REHEARSAL_WAIT, waiting=waiting, log=log)
