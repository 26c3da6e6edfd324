"""`perf --capacity`, the harness's side: the step plan checked before Locust starts, then the
steps and the knee printed, the knee gated against the baseline (`perf.knee`) or accepted as the
new one, and what the history records of it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tierharness.config import PerfConfig
from tierharness.errors import HarnessError
from tierharness.perf.knee import (
    ACCEPT_COMMAND,
    compare,
    count_users,
    read_baseline,
    shape_of,
    write_baseline,
)

__all__ = ["check_plan", "gate_knee", "render_steps"]


def check_plan(cfg: PerfConfig) -> None:
    """Refuse a step plan that cannot find a knee, before anything starts."""
    problems = []
    if cfg.capacity_start_users < 1 or cfg.capacity_step_users < 1:
        problems.append("capacity-start-users and capacity-step-users must be 1 or more")
    if cfg.capacity_max_users < cfg.capacity_start_users:
        problems.append("capacity-max-users must be at least capacity-start-users")
    if cfg.capacity_step_seconds <= 0:
        problems.append("capacity-step-seconds must be above 0")
    if not 0 <= cfg.knee_tolerance < 1:
        problems.append("knee-tolerance is a share: 0 or more, below 1 (0.2 is 20 %)")
    if problems:
        values = (
            ", ".join(f"{k} {v}" for k, v in shape_of(cfg).items()) + f", knee_tolerance {cfg.knee_tolerance}"
        )
        raise HarnessError(
            "the capacity run's plan is not usable: " + "; ".join(problems),
            checked=f"[tool.harness.perf] and the command line: {values}",
            fix="correct them in [tool.harness.perf] or their flags (`python -m tierharness perf --help`)",
        )


def render_steps(result: dict[str, Any]) -> str:
    header = f"{'users':>6} {'seconds':>8} {'reqs':>7} {'rps':>8} {'p95 ms':>7} {'fail':>7}  verdict"
    lines = ["capacity steps, each judged on its own requests:", header, "-" * len(header)]
    for s in result["steps"]:
        verdict = "within thresholds" if s["passed"] else f"BROKE: {s['breach']}"
        lines.append(
            f"{s['users']:>6} {s['seconds']:>8.1f} {s['requests']:>7} {s['rps']:>8.1f} {s['p95_ms']:>7.0f} "
            f"{s['fail_ratio']:>7.2%}  {verdict}"
        )
    lines.append(f"stopped: {result['stopped']}")
    knee = result["knee"]
    if knee:
        lines.append(
            f"knee: {count_users(knee['users'])}, {knee['rps']:.1f} RPS, p95 {knee['p95_ms']:.0f} ms"
        )
    else:
        lines.append("knee: none, the first step already broke a threshold (lower capacity-start-users)")
    for reason in result["invalid"]:
        lines.append(f"INVALID RUN: {reason}")
    if result["stats"]["exceptions"]:
        lines.append("task exceptions: " + "; ".join(result["stats"]["exception_messages"]))
    return "\n".join(lines)


def gate_knee(
    knee: dict[str, Any] | None,
    cfg: PerfConfig,
    root: Path,
    commit: str | None,
    *,
    accept: bool,
    log: Callable[[str], None] = print,
) -> bool:
    """The knee gate; with `accept`, the knee becomes the baseline instead. False: the gate failed."""
    path = root / cfg.knee_baseline
    if knee is None:
        return True  # no knee: the run has already failed, with its reason
    if accept:
        write_baseline(path, knee, commit, shape_of(cfg))
        log(f"knee gate: this knee is the new baseline, written to {path}: commit it")
        return True
    baseline = read_baseline(path)
    if baseline is None:
        log(
            f"knee gate: NOT CHECKED, no baseline at {path}; record one with `{ACCEPT_COMMAND}` and commit it"
        )
        return True
    verdict = compare(knee, baseline, cfg.knee_tolerance, path=path, shape=shape_of(cfg))
    log(verdict.message)
    return verdict.passed
