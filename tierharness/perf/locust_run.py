"""`perf`: Locust, headless, against the built image running beside its own Postgres and
Redis (or against a URL), gated by thresholds; a summary table, the HTML report and CSV
stats under build/perf/, and a history with the change against the previous run. With
`capacity`, the users step up instead (`perf.capacity_shape`) and the knee is gated
(`perf.capacity_run`).
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tierharness.config import PERF_OPTIONS, PerfConfig, Settings, child_env
from tierharness.engine.labels import RunIdentity
from tierharness.engine.reaper import reaped
from tierharness.engine.run_ids import new_run_id
from tierharness.errors import HarnessError
from tierharness.gitrepo import git_output
from tierharness.imaging.project_image import build_image
from tierharness.perf.capacity_run import check_plan, gate_knee, render_steps
from tierharness.perf.gate import GATE_FAILED, Verdict
from tierharness.perf.history import last_fixed_load, read_history
from tierharness.process import run
from tierharness.runtime.stack import running_stack
from tierharness.supply.stack_image import image_to_run

__all__ = ["render_summary", "run_perf"]

# Loaded by Locust beside the locustfile on capacity runs; never imported (Locust patches the
# standard library when imported).
_CAPACITY_SHAPE = Path(__file__).parent / "locustfiles" / "capacity.py"


@contextmanager
def _stack_for_perf(
    settings: Settings, users: int, log: Callable[[str], None]
) -> Iterator[tuple[str, list[str]]]:
    """The e2e stack, with one API key per simulated user, under this process's reaper."""
    built = build_image(settings, log=log)
    run_id = new_run_id("perf-")
    base = settings.stack
    names = tuple(f"perf-user-{n}" for n in range(1, users + 1))
    config = replace(base, api_key_names=(*base.api_key_names, *names))
    identity = RunIdentity(run_id, "perf", os.getpid())
    pg, rd = settings.image("postgres").local, settings.image("redis").local
    with reaped(run_id, settings.state_dir):
        image = image_to_run(settings, built.image, identity, log)  # a failed verification starts nothing
        with running_stack(image, pg, rd, identity, config) as stack:
            log(f"stack up: {image} healthy after {stack.health_seconds:.1f}s at {stack.base_url}")
            yield stack.base_url, [stack.api_keys[n] for n in names]


def _load_args(cfg: PerfConfig, capacity: bool) -> list[str]:
    """A fixed load, or (capacity) the step shape's options instead: Locust ignores --users with a shape."""
    passed = [o for o in PERF_OPTIONS if o.gate or (capacity and o.shape)]
    options = [arg for o in passed for arg in (f"--{o.name}", str(getattr(cfg, o.attr)))]
    if capacity:
        return options
    return [
        "--users",
        str(cfg.users),
        "--spawn-rate",
        str(cfg.spawn_rate),
        "--run-time",
        cfg.duration,
        *options,
    ]


def _locust(
    settings: Settings, cfg: PerfConfig, url: str, keys: list[str], out: Path, *, capacity: bool
) -> tuple[int, dict[str, Any]]:
    results = out / "results.json"
    results.unlink(missing_ok=True)
    files = [str(settings.root / cfg.locustfile), *([str(_CAPACITY_SHAPE)] if capacity else [])]
    cmd = [
        sys.executable, "-m", "locust", "-f", ",".join(files), "--headless", "--host", url,
        "--stop-timeout", "5", "--only-summary", "--loglevel", "WARNING",
        "--csv", str(out / "stats"), "--html", str(out / "report.html"),
        # Request failures are judged by the fail-ratio threshold, not by Locust's default exit code.
        "--exit-code-on-error", "0",
        *_load_args(cfg, capacity), "--harness-results", str(results),
    ]  # fmt: skip
    # Locust's own output goes to the terminal; the verdict is read from the gate's results.
    proc = run(
        cmd,
        env=child_env({"HARNESS_PERF_API_KEYS": ",".join(keys)}),
        what="Locust",
        fix="read Locust's output above (a broken locustfile, or the target unreachable)",
        check=False,
        capture=False,
        shown=[*cmd[:6], "..."],
    )
    if not results.exists():
        raise HarnessError(
            f"Locust exited {proc.returncode} without results",
            checked=" ".join(cmd[:6]) + " ...",
            fix="read Locust's output above (a broken locustfile, or the target unreachable)",
        )
    return proc.returncode, json.loads(results.read_text())


def _commit(root: Path) -> str | None:
    """The checkout's commit, when git can tell (not in an exported tree, nor without git)."""
    try:
        return git_output(root, "rev-parse", "HEAD") or None
    except HarnessError:
        return None


def _delta(now: float, before: float | None, unit: str) -> str:
    if before is None:
        return ""
    change = now - before
    pct = f", {change / before:+.0%}" if before else ""
    return f" ({change:+.1f}{unit}{pct})"


def render_summary(result: dict[str, Any], previous: dict[str, Any] | None) -> str:
    stats = result["stats"]
    header = f"{'endpoint':<34} {'reqs':>7} {'rps':>7} {'p50':>6} {'p95':>6} {'p99':>6} {'fail':>7}"
    lines = [header, "-" * len(header)]
    for e in [*stats["endpoints"], stats["total"]]:
        label = f"{e['method']} {e['name']}".strip()[:34]
        lines.append(
            f"{label:<34} {e['requests']:>7} {e['rps']:>7.1f} {e['p50_ms']:>6.0f} {e['p95_ms']:>6.0f} "
            f"{e['p99_ms']:>6.0f} {e['fail_ratio']:>7.2%}"
        )
    lines.append("(times in ms)")
    total, before = stats["total"], (previous or {}).get("stats", {}).get("total")
    if before:
        lines.append(
            "change against the previous run: "
            f"rps {total['rps']:.1f}{_delta(total['rps'], before['rps'], '')}, "
            f"p95 {total['p95_ms']:.0f} ms{_delta(total['p95_ms'], before['p95_ms'], ' ms')}, "
            f"fail {total['fail_ratio']:.2%} (was {before['fail_ratio']:.2%})"
        )
    else:
        lines.append("no previous run to compare with")
    lines.append("thresholds:")
    for check in result["checks"]:
        mark = "PASS" if check["passed"] else "FAIL"
        lines.append(f"  {mark}  {check['name']:<16} {check['actual']:>12}  limit {check['limit']}")
    for reason in result["invalid"]:
        lines.append(f"  INVALID RUN: {reason}")
    if stats.get("exception_messages"):
        lines.append("task exceptions: " + "; ".join(stats["exception_messages"]))
    return "\n".join(lines)


def _report(
    settings: Settings,
    cfg: PerfConfig,
    result: dict[str, Any],
    history: Path,
    *,
    capacity: bool,
    accept: bool,
) -> tuple[bool, dict[str, Any]]:
    """Print the run's table and verdict; whether it passed, and what the history records of it."""
    commit = _commit(settings.root)
    record: dict[str, Any] = {"commit": commit}
    if not capacity:
        print(render_summary(result, last_fixed_load(read_history(history))))
        verdict = Verdict.from_results(result)
        for line in verdict.failures():
            print(f"perf: {line}")
        return verdict.passed, record
    print(render_steps(result))
    step = result["knee"]
    knee = {"users": step["users"], "rps": step["rps"], "p95_ms": step["p95_ms"]} if step else None
    record |= {"knee": knee, "steps": result["steps"], "stopped": result["stopped"]}
    valid = result["passed"]  # decided in Locust: a knee, no task exceptions, a trustworthy generator
    gated = gate_knee(knee if valid else None, cfg, settings.root, commit, accept=accept, log=print)
    return valid and gated, record


def run_perf(
    settings: Settings,
    cfg: PerfConfig,
    *,
    target_url: str | None = None,
    capacity: bool = False,
    accept_knee: bool = False,
    log: Callable[[str], None] = print,
) -> int:
    """Run the tier; returns the exit code (non-zero when a threshold is breached or the run is invalid)."""
    if capacity:
        check_plan(cfg)
    out = settings.build_dir / "perf"
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    users = cfg.capacity_max_users if capacity else cfg.users
    if target_url:
        keys = [secrets.token_hex(16) for _ in range(users)]
        code, result = _locust(settings, cfg, target_url, keys, out, capacity=capacity)
    else:
        with _stack_for_perf(settings, users, log) as (url, keys):
            code, result = _locust(settings, cfg, url, keys, out, capacity=capacity)
    history = out / "history.jsonl"
    passed, extra = _report(settings, cfg, result, history, capacity=capacity, accept=accept_knee)
    record = {
        "id": uuid.uuid4().hex[:12],
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "target": target_url or "stack",
        "config": asdict(cfg),
        "passed": passed,
        "stats": {"total": result["stats"]["total"], "endpoints": result["stats"]["endpoints"]},
        "seconds": round(time.monotonic() - started, 1),
        **extra,
    }
    with history.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")
    print(
        f"perf {'PASSED' if passed and code == 0 else 'FAILED'}; report {out / 'report.html'}, "
        f"stats {out / 'stats_stats.csv'}, history {history}"
    )
    if passed and code != 0:
        print(f"(Locust itself exited {code})")
        return code
    return 0 if passed else GATE_FAILED
