"""The capacity run's load shape, run inside Locust: users step up until a step breaks a threshold.

`harness perf --capacity` passes `locustfiles/capacity.py` to Locust beside the locustfile
(`-f a.py,capacity.py`); it makes `CapacitySteps` a `LoadTestShape`, which Locust then runs instead
of a fixed number of users. This module never imports Locust at its top: importing Locust patches
the standard library (gevent), which only Locust's own process may have. Each step is
judged on its own requests only (`tierharness.perf.steps`), its p95 by Locust's own percentile
function. The run stops at the first step whose p95 or fail ratio breaks its threshold (`p95-ms`,
`max-fail-ratio`), or after the step at `capacity-max-users`. Its results file has every step and
the knee, the last step within the thresholds; the knee gate is the harness's (`perf.knee`).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tierharness.config import PERF_OPTIONS
from tierharness.perf.gate import GATE_FAILED, snapshot
from tierharness.perf.steps import Step, StepCounts, Totals, judge, knee_of

__all__ = ["CapacitySteps", "install"]

# Users that never all start (a locustfile failing in on_start) must not hold a step forever.
SPAWN_WAIT_SECONDS = 10.0


def _totals(entry: Any) -> Totals:
    return Totals(time.monotonic(), entry.num_requests, entry.num_failures, dict(entry.response_times))


def _judged(users: int, before: Totals, after: Totals, options: Any) -> Step:
    from locust.stats import calculate_response_time_percentile  # noqa: PLC0415  lazy: Locust patches the standard library; this runs inside Locust only

    counts = StepCounts.between(before, after)
    p95 = float(calculate_response_time_percentile(counts.response_times, counts.requests, 0.95))
    return judge(users, counts, p95, limit_p95_ms=options.p95_ms, max_fail_ratio=options.max_fail_ratio)


class CapacitySteps:
    """Steps of `capacity-step-users` more users, each measured for `capacity-step-seconds` once
    all its users run, from `capacity-start-users` up to `capacity-max-users`. Mixed into Locust's
    `LoadTestShape` (which sets `runner`) by `locustfiles/capacity.py`."""

    runner: Any = None

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[Step] = []
        self.users = 0
        self.asked = 0.0  # when this step's users were asked for
        self.before: Totals | None = None  # this step's start, once all its users run
        self.stopped = ""

    def _next(self, users: int) -> tuple[int, float]:
        self.users, self.asked, self.before = users, time.monotonic(), None
        return users, float(max(users, 1))  # the step's users within about a second

    def tick(self) -> tuple[int, float] | None:
        options = self.runner.environment.parsed_options
        total = self.runner.environment.stats.total
        if not self.users:
            return self._next(options.capacity_start_users)
        if self.before is None:
            waited = time.monotonic() - self.asked
            if self.runner.user_count >= self.users or waited > SPAWN_WAIT_SECONDS:
                self.before = _totals(total)
            return self.users, float(self.users)
        if time.monotonic() - self.before.at < options.capacity_step_seconds:
            return self.users, float(self.users)
        step = _judged(self.users, self.before, _totals(total), options)
        self.steps.append(step)
        if not step.passed:
            self.stopped = f"the step at {step.users} users broke a threshold: {step.breach}"
            return None
        if self.users >= options.capacity_max_users:
            self.stopped = (
                f"the maximum of {options.capacity_max_users} users was reached within the thresholds"
            )
            return None
        return self._next(min(self.users + options.capacity_step_users, options.capacity_max_users))


def _options(parser: Any) -> None:
    for option in PERF_OPTIONS:
        if option.shape:
            parser.add_argument(
                f"--{option.name}", type=option.kind, default=option.default, help=option.help,
                include_in_web_ui=False,
            )  # fmt: skip


def _results(environment: Any, **_kwargs: Any) -> None:
    """The steps and the knee into the results file; invalid runs and runs without a knee fail here."""
    shape = environment.shape_class
    if not isinstance(shape, CapacitySteps):
        return
    stats = snapshot(environment)
    knee = knee_of(shape.steps)
    invalid = []
    if stats["cpu_warning"]:
        invalid.append(
            "the load generator saturated its CPU (Locust's CPU warning): the knee would be its own"
        )
    if not shape.steps:
        invalid.append("no step was completed")
    failed = bool(invalid) or knee is None or stats["exceptions"] > 0
    result = {
        "stats": stats,
        "steps": [asdict(s) for s in shape.steps],
        "knee": asdict(knee) if knee else None,
        "stopped": shape.stopped or "Locust stopped before the steps ended",
        "invalid": invalid,
        "passed": not failed,
    }
    if environment.parsed_options.harness_results:
        Path(environment.parsed_options.harness_results).write_text(
            json.dumps(result, indent=2), encoding="utf-8"
        )
    if failed:
        environment.process_exit_code = GATE_FAILED


def install(events: Any) -> None:
    """Register the steps' options and the listener that writes their results with Locust."""
    events.init_command_line_parser.add_listener(_options)
    events.quitting.add_listener(_results)
