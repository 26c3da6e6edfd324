from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from tierharness.__main__ import build_parser
from tierharness.cli import handlers
from tierharness.config import PerfConfig
from tierharness.errors import HarnessError
from tierharness.perf.capacity_run import check_plan, gate_knee, render_steps
from tierharness.perf.knee import compare, read_baseline, shape_of, write_baseline
from tierharness.perf.steps import Step, StepCounts, Totals, judge, knee_of


def test_a_step_counts_only_its_own_requests() -> None:
    # 100 slow requests before the step, 50 fast ones during it: the step sees the 50 only.
    before = Totals(at=10.0, requests=100, failures=5, response_times={900: 100})
    after = Totals(at=15.0, requests=150, failures=5, response_times={900: 100, 10: 40, 20: 10})
    counts = StepCounts.between(before, after)
    assert (counts.requests, counts.failures, counts.seconds) == (50, 0, 5.0)
    assert counts.response_times == {10: 40, 20: 10}


def test_a_step_is_judged_on_its_p95_and_fail_ratio() -> None:
    counts = StepCounts(seconds=5.0, requests=50, failures=1, response_times={10: 50})
    step = judge(20, counts, 20.0, limit_p95_ms=100, max_fail_ratio=0.05)
    assert step.passed
    assert step.breach == ""
    assert (step.users, step.rps, step.fail_ratio) == (20, 10.0, 0.02)
    slow = judge(20, counts, 101.0, limit_p95_ms=100, max_fail_ratio=0.05)
    assert not slow.passed
    assert slow.breach == "p95 101 ms > 100 ms"
    failing = judge(20, counts, 20.0, limit_p95_ms=100, max_fail_ratio=0.01)
    assert failing.breach == "fail ratio 2.00% > 1.00%"


def test_a_step_without_answers_breaks_the_thresholds() -> None:
    step = judge(5, StepCounts(seconds=5.0, requests=0, failures=0, response_times={}), 0.0,
                 limit_p95_ms=100, max_fail_ratio=0.01)  # fmt: skip
    assert not step.passed
    assert "no request completed" in step.breach


def _step(users: int, rps: float, passed: bool) -> Step:
    counts = StepCounts(seconds=1.0, requests=int(rps), failures=0, response_times={})
    return judge(users, counts, 10.0 if passed else 500.0, limit_p95_ms=100, max_fail_ratio=0.01)


def test_the_knee_is_the_last_step_before_the_first_breach() -> None:
    steps = [_step(10, 100, True), _step(20, 180, True), _step(30, 150, False)]
    knee = knee_of(steps)
    assert knee is not None
    assert (knee.users, knee.rps) == (20, 180.0)
    assert knee_of([_step(10, 50, False)]) is None


KNEE = {"users": 20, "rps": 100.0, "p95_ms": 40.0}


def test_a_knee_within_the_tolerance_passes_and_one_beyond_fails(tmp_path: Path) -> None:
    path = tmp_path / "perf-baseline.json"
    write_baseline(path, KNEE, "a" * 40, shape_of(PerfConfig()))
    baseline = read_baseline(path)
    assert baseline is not None
    shape = shape_of(PerfConfig())
    assert compare({**KNEE, "rps": 81.0}, baseline, 0.2, path=path, shape=shape).passed
    failed = compare({**KNEE, "rps": 79.0, "users": 10}, baseline, 0.2, path=path, shape=shape)
    assert not failed.passed
    assert "knee RPS 79.0 at 10 users against the baseline's 100.0 at 20 users (-21%" in failed.message
    assert f"commit {'a' * 12}" in failed.message
    assert "--capacity --accept-knee" in failed.message
    other = compare({**KNEE, "rps": 10.0}, baseline, 0.2, path=path, shape={**shape, "p95_ms": 1})
    assert "the steps or thresholds differ" in other.message


def test_the_gate_accepts_a_new_baseline_and_then_gates_against_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = PerfConfig()
    assert gate_knee(KNEE, cfg, tmp_path, "b" * 40, accept=False)
    assert "NOT CHECKED, no baseline" in capsys.readouterr().out
    assert gate_knee(KNEE, cfg, tmp_path, "b" * 40, accept=True)
    recorded = json.loads((tmp_path / cfg.knee_baseline).read_text())
    assert (recorded["knee"], recorded["commit"]) == (KNEE, "b" * 40)
    assert not gate_knee({**KNEE, "rps": 50.0}, cfg, tmp_path, "c" * 40, accept=False)
    assert "knee gate FAILED" in capsys.readouterr().out


@pytest.mark.parametrize(
    "text", ["not json", '{"knee": {"users": 1}}', '{"knee": {"users": 1, "rps": 0, "p95_ms": 1}}']
)
def test_a_broken_baseline_says_how_to_fix_it(tmp_path: Path, text: str) -> None:
    path = tmp_path / "perf-baseline.json"
    path.write_text(text)
    with pytest.raises(HarnessError, match="cannot be read") as caught:
        read_baseline(path)
    assert "--capacity --accept-knee" in str(caught.value)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"capacity_start_users": 0}, "must be 1 or more"),
        ({"capacity_max_users": 5, "capacity_start_users": 10}, "at least capacity-start-users"),
        ({"capacity_step_seconds": 0.0}, "above 0"),
        ({"knee_tolerance": 1.5}, "knee-tolerance is a share"),
    ],
)
def test_an_unusable_plan_is_refused(change: dict[str, object], problem: str) -> None:
    check_plan(PerfConfig())
    with pytest.raises(HarnessError, match=problem):
        check_plan(replace(PerfConfig(), **change))  # type: ignore[arg-type]


def test_the_steps_table_names_the_knee_and_the_breach() -> None:
    steps = [_step(10, 100, True), _step(20, 150, False)]
    result = {
        "steps": [vars(s) for s in steps],
        "knee": vars(steps[0]),
        "stopped": "the step at 20 users broke a threshold",
        "invalid": [],
        "stats": {"exceptions": 0, "exception_messages": []},
    }
    text = render_steps(result)
    assert "knee: 10 users, 100.0 RPS, p95 10 ms" in text
    assert "BROKE: p95 500 ms > 100 ms" in text


def test_accept_knee_needs_capacity() -> None:
    args = build_parser().parse_args(["perf", "--accept-knee"])
    with pytest.raises(HarnessError, match="add --capacity"):
        handlers.perf(args)
