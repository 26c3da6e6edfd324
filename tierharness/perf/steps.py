"""A capacity run's steps, judged each on its own requests, and the knee they make.

Locust keeps cumulative totals; a step is the difference between the totals when all its users
were running and when its time was up (`StepCounts.between`), so an earlier step's requests never
count towards a later one. The knee is the last step within the thresholds before the first that
broke one. Pure: tested without Locust, which patches the standard library when imported.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Step", "StepCounts", "Totals", "judge", "knee_of"]


@dataclass(frozen=True)
class Totals:
    """Locust's cumulative totals at one moment."""

    at: float  # time.monotonic()
    requests: int
    failures: int
    response_times: dict[int, int]  # rounded ms -> count, as Locust keeps them


@dataclass(frozen=True)
class StepCounts:
    """What one step's own requests were: counts and their response-time histogram."""

    seconds: float
    requests: int
    failures: int
    response_times: dict[int, int]

    @classmethod
    def between(cls, before: Totals, after: Totals) -> StepCounts:
        times = {ms: n - before.response_times.get(ms, 0) for ms, n in after.response_times.items()}
        return cls(
            max(after.at - before.at, 1e-9),
            after.requests - before.requests,
            after.failures - before.failures,
            {ms: n for ms, n in times.items() if n > 0},
        )


@dataclass(frozen=True)
class Step:
    users: int
    seconds: float
    requests: int
    failures: int
    rps: float
    p95_ms: float
    fail_ratio: float
    passed: bool
    breach: str  # what broke, empty when the step passed


def judge(
    users: int, counts: StepCounts, p95_ms: float, *, limit_p95_ms: float, max_fail_ratio: float
) -> Step:
    """The step at `users`, whose own requests had this p95, against the thresholds."""
    ratio = counts.failures / counts.requests if counts.requests else 0.0
    breaches = []
    if counts.requests == 0:
        breaches.append("no request completed")
    if p95_ms > limit_p95_ms:
        breaches.append(f"p95 {p95_ms:g} ms > {limit_p95_ms:g} ms")
    if ratio > max_fail_ratio:
        breaches.append(f"fail ratio {ratio:.2%} > {max_fail_ratio:.2%}")
    rps = round(counts.requests / counts.seconds, 1)
    seconds = round(counts.seconds, 2)
    return Step(
        users,
        seconds,
        counts.requests,
        counts.failures,
        rps,
        p95_ms,
        ratio,
        not breaches,
        "; ".join(breaches),
    )


def knee_of(steps: list[Step]) -> Step | None:
    """The last step within the thresholds before the first that broke one (None: the first broke)."""
    knee = None
    for step in steps:
        if not step.passed:
            break
        knee = step
    return knee
