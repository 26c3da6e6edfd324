"""The rehearsal's verdict and its report: what each candidate did, how long a rollback took
counted from the first bad request a client got, and whether the proxy hid failures.

Two rollback figures per candidate rolled back after the switch:

- rehearsed (measured): from the first bad request (Locust's per-second history: a failed
  request, or one slower than the perf gate's p95 bar, counted from when it was sent) to the
  proxy routing back to blue, with the rules as rehearsed (each `for:` = `alert-hold`,
  evaluated every `scrape-interval`). The gate uses this one, against `rollback-limit`.
- shipped (computed, not measured): the same, with the rehearsal's hold and evaluation interval
  replaced by the shipped rules' (`deploy/k8s/prometheusrule.yaml`: its `for:` and its group's
  `interval:`, else Prometheus's default of 1m). A rehearsal cannot wait minutes per candidate.

A retry is a failure the proxy hid: a rotation that needed any has not passed.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tierharness.config import Settings, load_settings
from tierharness.deploy.timeline import Timeline, load_summary, requests_between

__all__ = [
    "Outcome",
    "RuleTiming",
    "first_bad_request",
    "rollback_figures",
    "rule_timing",
    "write_rotation_verdict",
    "write_verdict",
]

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
_PROMETHEUS_DEFAULT_INTERVAL = 60.0  # global evaluation_interval when none is set


def _seconds(duration: str) -> float:
    """A Prometheus duration ("1s", "1m", "1m30s") in seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration.strip())
    if not parts or "".join(n + u for n, u in parts) != duration.strip():
        raise ValueError(f"not a Prometheus duration: {duration!r}")
    return sum(float(n) * _UNITS[u] for n, u in parts)


@dataclass
class Outcome:
    """What one candidate did: deployed, or rolled back and why, with the instants the
    verdict times the rollback by."""

    candidate: str
    image: str
    deployed: bool
    reason: str = ""
    signal_after_switch: float | None = None
    rollback_seconds: float | None = None
    switch_at: float | None = None  # wall clock
    drained_at: float | None = None  # wall clock
    rolled_back_at: float | None = None  # wall clock
    retries: int = 0  # requests the proxy sent again while this candidate was deployed


@dataclass(frozen=True)
class RuleTiming:
    """How long the paging rules wait, as rehearsed and as shipped (seconds)."""

    rehearsed_hold: float
    rehearsed_interval: float
    shipped_hold: float | None  # None: the project ships no PrometheusRule
    shipped_interval: float
    shipped_from: str  # where the shipped figures were read

    def describe(self) -> str:
        rehearsed = (
            f"rehearsed with for: {self.rehearsed_hold:g}s, evaluated every {self.rehearsed_interval:g}s"
        )
        if self.shipped_hold is None:
            return f"{rehearsed}; no shipped rules at {self.shipped_from}"
        return (
            f"{rehearsed}; shipped ({self.shipped_from}) for: {self.shipped_hold:g}s, "
            f"evaluated every {self.shipped_interval:g}s"
        )


def rule_timing(settings: Settings) -> RuleTiming:
    """The rehearsal's hold and interval, and the longest `for:` and group `interval:` of the
    shipped PrometheusRule."""
    cfg = settings.deploy
    path = settings.root / cfg.k8s / "prometheusrule.yaml"
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    holds = [_seconds(m) for m in re.findall(r"^\s*for:\s*(\S+)\s*$", text, re.MULTILINE)]
    intervals = [_seconds(m) for m in re.findall(r"^\s*interval:\s*(\S+)\s*$", text, re.MULTILINE)]
    return RuleTiming(
        rehearsed_hold=_seconds(cfg.alert_hold),
        rehearsed_interval=_seconds(cfg.scrape_interval),
        shipped_hold=max(holds) if holds else None,
        shipped_interval=max(intervals, default=_PROMETHEUS_DEFAULT_INTERVAL),
        shipped_from=str(path.relative_to(settings.root)),
    )


def first_bad_request(history: Path, start: float, end: float, slow_ms: float) -> float | None:
    """When the first bad request after `start` (wall clock) was sent, from Locust's per-second
    history up to `end`: a second in which a request failed, or whose slowest response took more
    than `slow_ms` (then it was sent that long before it ended). Each row covers the second up
    to its stamp, so the earliest instant of that second is taken; never before `start`."""
    if not history.exists():
        return None
    previous_failures: int | None = None
    with history.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row.get("Name") != "Aggregated":
                continue
            stamp, failures = float(row["Timestamp"]), int(row["Total Failure Count"])
            failed = previous_failures is not None and failures > previous_failures
            previous_failures = failures
            if stamp <= start or stamp > end + 1:
                continue
            slowest = float(row["100%"]) if row.get("100%", "N/A") not in ("", "N/A") else 0.0
            if failed or slowest > slow_ms:
                sent = stamp - 1 - (slowest / 1000 if slowest > slow_ms else 0.0)
                return max(start, sent)
    return None


def rollback_figures(
    outcome: Outcome, history: Path, timing: RuleTiming, slow_ms: float
) -> dict[str, Any] | None:
    """Both figures for a candidate rolled back after the switch; None otherwise (no client
    request reached it)."""
    if outcome.switch_at is None or outcome.rolled_back_at is None:
        return None
    first = first_bad_request(history, outcome.switch_at, outcome.rolled_back_at, slow_ms)
    if first is None:
        return {"first_bad_request": None, "rehearsed_seconds": None, "shipped_seconds": None}
    rehearsed = outcome.rolled_back_at - first
    # What the rules' waiting does not explain (the expression turning true, the harness seeing
    # the alert, the switch) is kept; the waiting is replaced by the shipped rules'.
    rest = max(0.0, rehearsed - timing.rehearsed_hold - timing.rehearsed_interval)
    shipped = None if timing.shipped_hold is None else rest + timing.shipped_hold + timing.shipped_interval
    return {
        "first_bad_request": round(first, 3),
        "rehearsed_seconds": round(rehearsed, 2),
        "shipped_seconds": None if shipped is None else round(shipped, 2),
    }


def _rolled_back(outcome: Outcome, figures: Mapping[str, Any] | None, limit: float) -> tuple[str, str | None]:
    """The summary line of a rolled-back candidate, and the gate's complaint, if any."""
    if figures is None:
        # Before the switch no client request reached green: the time is from the bad signal.
        line = (
            f"ROLLED BACK in {outcome.rollback_seconds:.2f}s (bad signal to green out, before the "
            f"switch: no client request reached it): {outcome.reason}"
        )
        late = (outcome.rollback_seconds or 0) > limit
        return line, f"rollback took {outcome.rollback_seconds:.2f}s (limit {limit:g}s)" if late else None
    if figures["rehearsed_seconds"] is None:
        line = (
            f"ROLLED BACK, no bad request seen by clients; {outcome.rollback_seconds:.2f}s from the "
            f"bad signal to blue serving alone: {outcome.reason}"
        )
        late = (outcome.rollback_seconds or 0) > limit
        return line, f"rollback took {outcome.rollback_seconds:.2f}s (limit {limit:g}s)" if late else None
    rehearsed, shipped = figures["rehearsed_seconds"], figures["shipped_seconds"]
    as_shipped = "no shipped rules to compute it for" if shipped is None else f"about {shipped:.0f}s"
    line = (
        f"ROLLED BACK in {rehearsed:.2f}s from the first bad request to blue serving alone (rules as "
        f"rehearsed; gated); {as_shipped} with the rules as shipped (computed, not measured); "
        f"{outcome.rollback_seconds:.2f}s from the alert seen to blue alone: {outcome.reason}"
    )
    late = rehearsed > limit
    return (
        line,
        f"rollback took {rehearsed:.2f}s from the first bad request (limit {limit:g}s)" if late else None,
    )


def write_verdict(
    timeline: Timeline,
    outcomes: list[tuple[Outcome, bool]],
    results: dict[str, Any] | None,
    history: Path,
    folder: Path,
    *,
    expect_rollback: bool,
    limit: float,
    timing: RuleTiming | None = None,
    slow_ms: float | None = None,
    retries: int = 0,
) -> int:
    """The verdict in the timeline's summary and figures, written with it to `folder`; the exit
    code. Without `timing` and `slow_ms`, this checkout's settings give them."""
    if timing is None or slow_ms is None:
        settings = load_settings()
        timing, slow_ms = timing or rule_timing(settings), slow_ms or settings.perf.p95_ms
    problems: list[str] = []
    rollbacks: list[dict[str, Any]] = []
    for outcome, broken in outcomes:
        name = outcome.candidate
        retried = f"; {outcome.retries} retried by the proxy" if outcome.retries else ""
        if outcome.deployed:
            spans = requests_between(history, outcome.switch_at, outcome.drained_at)
            timeline.summary[name] = (
                "deployed; requests "
                + ", ".join(f"{k} {v['requests']} ({v['failures']} failed)" for k, v in spans.items())
                + retried
            )
            if broken:
                problems.append(f"{name}: a broken candidate was deployed instead of rolled back")
            continue
        figures = rollback_figures(outcome, history, timing, slow_ms)
        line, late = _rolled_back(outcome, figures, limit)
        timeline.summary[name] = line + retried
        rollbacks.append({"candidate": name, "reason": outcome.reason, **(figures or {}),
                          "from_bad_signal_seconds": outcome.rollback_seconds})  # fmt: skip
        if not broken or not expect_rollback:
            problems.append(f"{name}: rolled back: {outcome.reason}")
        elif late:
            problems.append(f"{name}: {late}")
    timeline.figures["rollback"] = {
        "gated": "rehearsed_seconds (from the first bad request), at most rollback-limit",
        "limit_seconds": limit,
        "timing": timing.describe(),
        "candidates": rollbacks,
    }
    problems += _retries(timeline, outcomes, retries)
    problems += _requests(timeline, outcomes, results, history)
    timeline.summary["verdict"] = "PASSED" if not problems else "FAILED: " + "; ".join(problems)
    path = timeline.write(folder)
    print(timeline.render())
    print(f"timeline written to {path} and {path.with_suffix('.txt')}")
    return 0 if not problems else 1


def _retries(timeline: Timeline, outcomes: list[tuple[Outcome, bool]], retries: int) -> list[str]:
    """Retries are expected only while a broken green served; anywhere else they hid failures."""
    expected = sum(o.retries for o, broken in outcomes if broken and not o.deployed)
    timeline.summary["proxy retries"] = f"{retries} (requests the proxy sent again after a backend failed)"
    timeline.figures["retries"] = retries
    if retries > expected:
        return [
            f"{retries - expected} request(s) retried by the proxy: a backend failed them and the proxy "
            "hid it (0 is the bar)"
        ]
    return []


def _requests(
    timeline: Timeline, outcomes: list[tuple[Outcome, bool]], results: dict[str, Any] | None, history: Path
) -> list[str]:
    if results is None:
        return ["Locust wrote no results"]
    total = results["stats"]["total"]
    timeline.summary["requests"] = load_summary(total)
    if any(b for _, b in outcomes):
        # Failures are expected only while a broken green served; blue alone must fail none.
        expected = sum(
            requests_between(history, o.switch_at - 1, o.rolled_back_at + 1)
            .get("during", {})
            .get("failures", 0)
            for o, _ in outcomes
            if o.switch_at is not None and o.rolled_back_at is not None
        )
        if total["failures"] > expected:
            return [f"{total['failures'] - expected} request(s) failed while no broken green was serving"]
        return []
    problems = (
        [f"{total['failures']} request(s) failed across the switch (0 is the bar)"]
        if total["failures"]
        else []
    )
    invalid = [f"INVALID RUN: {r}" for r in results["invalid"]]
    breached = [
        f"threshold {c['name']} breached: {c['actual']} (limit {c['limit']})"
        for c in results["checks"]
        if not c["passed"]
    ]
    return problems + [f"perf: {line}" for line in invalid + breached]


def write_rotation_verdict(
    timeline: Timeline, results: dict[str, Any] | None, retries: int, folder: Path
) -> int:
    """A rotation's verdict: 0 failed and 0 retried requests are the bar. In the timeline's
    summary, written with it to `folder`; the exit code."""
    problems = []
    timeline.summary["proxy retries"] = f"{retries} (requests the proxy sent again after the service failed)"
    if retries:
        problems.append(f"{retries} request(s) retried by the proxy: the service failed them (0 is the bar)")
    if results is None:
        problems.append("Locust wrote no results")
    else:
        total = results["stats"]["total"]
        timeline.summary["requests"] = load_summary(total)
        if total["failures"]:
            problems.append(f"{total['failures']} request(s) failed during the rotation (0 is the bar)")
    timeline.summary["verdict"] = "PASSED" if not problems else "FAILED: " + "; ".join(problems)
    path = timeline.write(folder)
    print(timeline.render())
    print(f"timeline written to {path}")
    return 0 if not problems else 1
