"""The performance gate, run inside Locust: thresholds checked when Locust quits.

The locustfile calls `install(events)`. The thresholds arrive as Locust command-line
options (the harness passes them from `[tool.harness.perf]` or its own flags). The
`quitting` listener only ever sets a *non-zero* exit code; it never clears one. A run
is *invalid* (non-zero, with the reason) when the load generator itself saturated
(Locust's CPU warning) or when too few requests were made to judge.

`evaluate` is a pure function of a stats snapshot, so the verdict logic is tested
without Locust.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tierharness.config import PERF_OPTIONS

__all__ = ["Check", "Thresholds", "Verdict", "evaluate", "install", "snapshot"]

GATE_FAILED = 3  # distinct from Locust's own 1 (errors) and 2 (crash)


@dataclass(frozen=True)
class Thresholds:
    """The gate's limits; their defaults and help live in `tierharness.config.PERF_OPTIONS`."""

    p95_ms: float
    max_fail_ratio: float
    min_rps: float
    min_requests: int

    @classmethod
    def from_options(cls, options: Any) -> Thresholds:
        return cls(options.p95_ms, options.max_fail_ratio, options.min_rps, options.min_requests)


@dataclass(frozen=True)
class Check:
    name: str
    limit: str
    actual: str
    passed: bool


@dataclass
class Verdict:
    checks: list[Check]
    invalid: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.invalid and all(c.passed for c in self.checks)

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else GATE_FAILED

    @classmethod
    def from_results(cls, result: dict[str, Any]) -> Verdict:
        """The verdict the gate wrote into its results file (`--harness-results`)."""
        return cls([Check(**c) for c in result["checks"]], list(result["invalid"]))

    def failures(self) -> list[str]:
        lines = [f"INVALID RUN: {reason}" for reason in self.invalid]
        lines += [
            f"threshold {c.name} breached: {c.actual} (limit {c.limit})" for c in self.checks if not c.passed
        ]
        return lines


def evaluate(stats: dict[str, Any], thresholds: Thresholds) -> Verdict:
    total = stats["total"]
    invalid = []
    if stats.get("cpu_warning"):
        invalid.append(
            "the load generator saturated its CPU (Locust's CPU warning): its timings cannot be trusted"
        )
    if total["requests"] < thresholds.min_requests:
        invalid.append(
            f"only {total['requests']} requests were made; at least {thresholds.min_requests} are needed"
        )
    checks = [
        Check(
            "p95",
            f"<= {thresholds.p95_ms:g} ms",
            f"{total['p95_ms']:g} ms",
            total["p95_ms"] <= thresholds.p95_ms,
        ),
        Check(
            "fail-ratio",
            f"<= {thresholds.max_fail_ratio:.2%}",
            f"{total['fail_ratio']:.2%}",
            total["fail_ratio"] <= thresholds.max_fail_ratio,
        ),
        Check("rps", f">= {thresholds.min_rps:g}", f"{total['rps']:.1f}", total["rps"] >= thresholds.min_rps),
        Check("task-exceptions", "= 0", str(stats["exceptions"]), stats["exceptions"] == 0),
    ]
    return Verdict(checks, invalid)


def _entry(entry: Any) -> dict[str, Any]:
    return {
        "name": entry.name,
        "method": entry.method or "",
        "requests": entry.num_requests,
        "failures": entry.num_failures,
        "fail_ratio": entry.fail_ratio,
        "rps": entry.total_rps,
        "p50_ms": entry.get_response_time_percentile(0.5) or 0,
        "p95_ms": entry.get_response_time_percentile(0.95) or 0,
        "p99_ms": entry.get_response_time_percentile(0.99) or 0,
    }


def snapshot(environment: Any) -> dict[str, Any]:
    stats = environment.stats
    runner = environment.runner
    return {
        "endpoints": [
            _entry(e) for e in sorted(stats.entries.values(), key=lambda e: (e.name, e.method or ""))
        ],
        "total": _entry(stats.total),
        "exceptions": sum(row["count"] for row in runner.exceptions.values()) if runner else 0,
        "exception_messages": [row["msg"] for row in runner.exceptions.values()][:5] if runner else [],
        "cpu_warning": bool(runner and runner.cpu_warning_emitted),
    }


def install(events: Any) -> None:
    """Register the gate's options and its `quitting` listener with Locust."""

    def _options(parser: Any) -> None:
        # Locust's own parser (not a group): it knows include_in_web_ui.
        for option in PERF_OPTIONS:
            if option.gate:
                parser.add_argument(
                    f"--{option.name}",
                    type=option.kind,
                    default=option.default,
                    help=option.help,
                    include_in_web_ui=False,
                )
        parser.add_argument("--harness-results", default="", include_in_web_ui=False)

    def _gate(environment: Any, **_kwargs: Any) -> None:
        if environment.shape_class is not None:
            # A capacity run pushes past the thresholds on purpose: its steps are judged one by
            # one, by the step shape (tierharness.perf.capacity_shape), not the whole run here.
            return
        options = environment.parsed_options
        thresholds = Thresholds.from_options(options)
        stats = snapshot(environment)
        verdict = evaluate(stats, thresholds)
        if options.harness_results:
            result: dict[str, Any] = {
                "stats": stats,
                "thresholds": asdict(thresholds),
                "checks": [asdict(c) for c in verdict.checks],
                "invalid": verdict.invalid,
                "passed": verdict.passed,
            }
            Path(options.harness_results).write_text(json.dumps(result, indent=2), encoding="utf-8")
        if not verdict.passed:
            # Only ever non-zero: a failure decided elsewhere is never cleared here.
            environment.process_exit_code = verdict.exit_code

    events.init_command_line_parser.add_listener(_options)
    events.quitting.add_listener(_gate)
