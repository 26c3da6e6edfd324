"""The knee gate: a capacity run's knee against the recorded baseline.

The baseline is a committed JSON file beside `[tool.harness.perf]` (`knee-baseline`, by default
`perf-baseline.json` at the root): the knee's users, RPS and p95, the commit it was measured on,
when, the machine's CPU count and the steps that found it. It is committed so that it travels
with the code it describes: a review sees a new one in the diff, and every clean checkout (CI
starts from one) gates against the same figure; `build/` is neither kept nor shared. A run fails
when its knee's RPS is more than `knee-tolerance` below the baseline's; `--accept-knee` writes the
run's knee as the new baseline, to commit.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tierharness.config import PerfConfig
from tierharness.errors import HarnessError

__all__ = [
    "ACCEPT_COMMAND",
    "Baseline",
    "KneeVerdict",
    "compare",
    "read_baseline",
    "shape_of",
    "write_baseline",
]

ACCEPT_COMMAND = "nox -s perf -- --capacity --accept-knee"


@dataclass(frozen=True)
class Baseline:
    knee: dict[str, Any]  # {"users": N, "rps": X, "p95_ms": Y}, as in build/perf/history.jsonl
    commit: str | None
    recorded: str
    cpus: int | None
    shape: dict[str, Any]


@dataclass(frozen=True)
class KneeVerdict:
    passed: bool
    message: str


def shape_of(cfg: PerfConfig) -> dict[str, Any]:
    """What found the knee: the steps and the thresholds that judged them."""
    keys = ("capacity_start_users", "capacity_step_users", "capacity_step_seconds", "capacity_max_users",
            "p95_ms", "max_fail_ratio")  # fmt: skip
    return {key: getattr(cfg, key) for key in keys}


def read_baseline(path: Path) -> Baseline | None:
    """The recorded knee, or None when there is none yet."""
    if not path.is_file():
        return None
    fix = f"restore {path.name} from git, or record a new one: {ACCEPT_COMMAND}"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        knee = data["knee"]
        if (
            not all(isinstance(knee.get(k), int | float) for k in ("users", "rps", "p95_ms"))
            or knee["rps"] <= 0
        ):
            raise ValueError("knee needs numeric users, rps (above 0) and p95_ms")
        return Baseline(
            knee, data.get("commit"), str(data.get("recorded", "?")), data.get("cpus"), data.get("shape", {})
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise HarnessError(
            f"the knee baseline {path} cannot be read: {exc}",
            checked=f'{path} holds {{"knee": {{"users": N, "rps": X, "p95_ms": Y}}, "commit": ...}}',
            fix=fix,
        ) from exc


def write_baseline(path: Path, knee: dict[str, Any], commit: str | None, shape: dict[str, Any]) -> None:
    record = {
        "knee": knee,
        "commit": commit,
        "recorded": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "shape": shape,
    }
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def count_users(n: int) -> str:
    return f"{n} user" if n == 1 else f"{n} users"


def _short(commit: str | None) -> str:
    return commit[:12] if commit else "an unknown commit"


def compare(
    knee: dict[str, Any], baseline: Baseline, tolerance: float, *, path: Path, shape: dict[str, Any]
) -> KneeVerdict:
    """The run's knee against the baseline: fails when its RPS is more than `tolerance` below."""
    before, now = float(baseline.knee["rps"]), float(knee["rps"])
    change = (now - before) / before
    compared = (
        f"knee RPS {now:.1f} at {count_users(knee['users'])} against the baseline's {before:.1f} at "
        f"{count_users(baseline.knee['users'])} ({change:+.0%}; commit {_short(baseline.commit)}, "
        f"recorded {baseline.recorded}, in {path})"
    )
    if change >= -tolerance:
        return KneeVerdict(True, f"knee gate PASSED: {compared}, within the {tolerance:.0%} tolerance")
    notes = []
    if baseline.shape and baseline.shape != shape:
        notes.append(f"the steps or thresholds differ from the baseline's ({baseline.shape})")
    if baseline.cpus is not None and baseline.cpus != os.cpu_count():
        notes.append(
            f"the baseline was recorded with {baseline.cpus} CPUs, this machine has {os.cpu_count()}"
        )
    lines = [
        f"knee gate FAILED: {compared}: more than the {tolerance:.0%} tolerance below it",
        *(f"  note: {note}" for note in notes),
        f"  if the lower capacity is intended, accept it: `{ACCEPT_COMMAND}`, then commit {path.name}",
    ]
    return KneeVerdict(False, "\n".join(lines))
