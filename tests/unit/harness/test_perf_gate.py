from __future__ import annotations

import argparse
from typing import Any

import pytest

from tierharness.__main__ import build_parser
from tierharness.config import PERF_OPTIONS, PerfConfig, load_settings
from tierharness.errors import HarnessError
from tierharness.perf.gate import Thresholds, evaluate, install
from tierharness.perf.locust_run import render_summary

LIMITS = Thresholds(p95_ms=100, max_fail_ratio=0.01, min_rps=50, min_requests=200)


def stats(**total: Any) -> dict[str, Any]:
    base = {"name": "Aggregated", "method": "", "requests": 1000, "failures": 0, "fail_ratio": 0.0,
            "rps": 90.0, "p50_ms": 4, "p95_ms": 9, "p99_ms": 15}  # fmt: skip
    base.update(total)
    return {"endpoints": [], "total": base, "exceptions": 0, "cpu_warning": False}


def test_a_healthy_run_passes() -> None:
    verdict = evaluate(stats(), LIMITS)
    assert verdict.passed
    assert verdict.failures() == []


@pytest.mark.parametrize(
    ("change", "name"),
    [({"p95_ms": 101}, "p95"), ({"fail_ratio": 0.02}, "fail-ratio"), ({"rps": 49.9}, "rps")],
)
def test_each_breach_is_named(change: dict[str, Any], name: str) -> None:
    verdict = evaluate(stats(**change), LIMITS)
    assert not verdict.passed
    assert [c.name for c in verdict.checks if not c.passed] == [name]
    assert verdict.failures()[0].startswith(f"threshold {name} breached")


def test_task_exceptions_fail() -> None:
    data = stats()
    data["exceptions"] = 3
    assert "threshold task-exceptions breached: 3 (limit = 0)" in evaluate(data, LIMITS).failures()


def test_a_saturated_load_generator_makes_the_run_invalid() -> None:
    data = stats()
    data["cpu_warning"] = True
    verdict = evaluate(data, LIMITS)
    assert not verdict.passed
    assert "CPU warning" in verdict.invalid[0]


def test_too_few_requests_make_the_run_invalid() -> None:
    verdict = evaluate(stats(requests=10), LIMITS)
    assert verdict.invalid == ["only 10 requests were made; at least 200 are needed"]


def test_summary_shows_endpoints_thresholds_and_the_change() -> None:
    result = {
        "stats": {**stats(), "endpoints": [{**stats()["total"], "name": "/v1/articles", "method": "GET"}]},
        "checks": [{"name": "p95", "limit": "<= 100 ms", "actual": "9 ms", "passed": True}],
        "invalid": [],
    }
    previous = {"stats": stats(rps=100.0, p95_ms=12)}
    text = render_summary(result, previous)
    assert "GET /v1/articles" in text
    assert "PASS  p95" in text
    assert "rps 90.0 (-10.0, -10%)" in text
    assert "p95 9 ms (-3.0 ms, -25%)" in text
    assert "no previous run" in render_summary(result, None)


def test_perf_config_refuses_unknown_keys(tmp_path: Any) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.harness.perf]\np95 = 3\n")
    with pytest.raises(HarnessError, match=r"unknown key\(s\) in \[tool.harness.perf\]: p95"):
        load_settings(tmp_path)


def test_overrides_replace_only_what_was_given() -> None:
    cfg = PerfConfig().override(p95_ms=1.0, users=None)
    assert cfg.p95_ms == 1.0
    assert cfg.users == PerfConfig().users


def test_cli_and_locust_flags_are_generated_from_the_one_declaration() -> None:
    args = build_parser().parse_args(["perf", "--p95-ms", "5", "--users", "3"])
    assert (args.p95_ms, args.users, args.min_rps) == (5.0, 3, None)

    class _Parser(argparse.ArgumentParser):
        def add_argument(self, *a: Any, include_in_web_ui: bool = True, **k: Any) -> Any:
            return super().add_argument(*a, **k)

    class _Hook:
        def __init__(self) -> None:
            self.listeners: list[Any] = []

        def add_listener(self, fn: Any) -> None:
            self.listeners.append(fn)

    class _Events:
        init_command_line_parser = _Hook()
        quitting = _Hook()

    events = _Events()
    install(events)
    parser = _Parser()
    events.init_command_line_parser.listeners[0](parser)
    locust_defaults = vars(parser.parse_args([]))
    for option in PERF_OPTIONS:
        if option.gate:
            assert locust_defaults[option.attr] == option.default
