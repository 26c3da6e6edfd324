"""Checks of what earlier runs left in the engine, judged as the sweep judges them."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from tierharness.doctor.verdicts import CLEAN, Check
from tierharness.engine.labels import LABEL_PID, LABEL_RUN, OwnerPlace
from tierharness.engine.reaper import judge_owner
from tierharness.engine.reuse import LABEL_REUSE, owner_of
from tierharness.owners import pid_alive

__all__ = ["leftover_checks"]


@dataclass
class _Run:
    counts: dict[str, int] = field(default_factory=dict)
    owner: Mapping[str, str] = field(default_factory=dict)  # the labels of a resource naming the owner
    kept: bool = False
    kept_by: int | None = None  # a kept one's user (uid)


def leftover_checks(
    resources: Iterable[tuple[str, Mapping[str, str]]],
    *,
    here: OwnerPlace,
    alive: Callable[[int, str | None], bool] = pid_alive,
) -> list[Check]:
    """Resources (kind, labels) labelled with a run id, one row per run, judged as the sweep
    judges them: a live owner's run is in use, a dead owner's is left over, one whose owner
    cannot be judged from `here` is not ours to call, kept ones (--harness-reuse) are kept."""
    runs: dict[str, _Run] = {}
    for kind, labels in resources:
        run_id = labels.get(LABEL_RUN)
        if not run_id:
            continue
        entry = runs.setdefault(run_id, _Run())
        entry.counts[kind] = entry.counts.get(kind, 0) + 1
        if LABEL_REUSE in labels:
            entry.kept, entry.kept_by = True, owner_of(labels)
        # Networks may be labelled with the run id only; the owner comes from whichever has it.
        if not entry.owner and labels.get(LABEL_PID):
            entry.owner = labels
    if not runs:
        return [Check("leftovers", "PASS", f"no container, network or volume labelled {LABEL_RUN}")]
    checks = []
    for run_id, entry in sorted(runs.items()):
        what = ", ".join(f"{n} {kind}{'s' if n > 1 else ''}" for kind, n in sorted(entry.counts.items()))
        name = f"run {run_id}"
        verdict = judge_owner(entry.owner, here, alive)
        if entry.kept:
            # Kept for the next run of the same checkout; they expire when idle.
            if entry.kept_by == os.getuid():
                how = f"kept for --harness-reuse (`{CLEAN}` removes them)"
            else:
                who = "an unknown user" if entry.kept_by is None else f"uid {entry.kept_by}"
                how = f"kept for --harness-reuse by {who} (`{CLEAN} --all-users` removes them)"
            checks.append(Check(name, "PASS", f"{what}; {how}"))
        elif verdict is None:
            # The sweep (and so `clean`) only removes what a dead pid owned: these need a hand.
            by_hand = f"remove them by hand: docker ps -a --filter label={LABEL_RUN}={run_id}"
            checks.append(Check(name, "WARN", f"{what}; no owner pid label", by_hand))
        elif verdict.state == "unknown":
            later = "the sweep removes them once older than HARNESS_ORPHAN_AGE"
            checks.append(Check(name, "PASS", f"{what}; {verdict.why}: not judged here ({later})"))
        elif verdict.state == "alive":
            checks.append(Check(name, "PASS", f"{what}; {verdict.why}"))
        else:
            checks.append(Check(name, "WARN", f"{what}; {verdict.why}: left over", CLEAN))
    return checks
