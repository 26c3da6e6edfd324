"""`--harness-keep-failed`: when a test of a worker whose services are up fails, its database
and Redis are copied into kept containers before the next reset (runtime.postmortem), and the
failure report says how to connect. Bounded per run (harness_keep_failed_max); with CI set,
only the command-line flag keeps anything: a project's ini setting must not leave containers
on a shared runner."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tierharness.config import environment
from tierharness.errors import HarnessError
from tierharness.plugin.identity import identity
from tierharness.plugin.session import EARLY, LAZY, options_of

if TYPE_CHECKING:
    from tierharness.runtime.worker import Worker

__all__ = ["KEPT", "NOT_KEPT", "keep_failed_limit", "keep_if_failed", "summary_lines"]

KEPT = "harness: kept for a post-mortem"
NOT_KEPT = "harness: not kept for a post-mortem"


def keep_failed_limit(raw: str | None) -> int:
    """harness_keep_failed_max, checked."""
    value = (raw or "").strip()
    if not value.isdigit() or int(value) < 1:
        raise HarnessError(
            f"harness_keep_failed_max = {raw!r} is not a positive whole number",
            checked="--harness-keep-failed-max / ini harness_keep_failed_max",
            fix="give how many failed tests a run may keep, e.g. 3",
        )
    return int(value)


def _worker(config: pytest.Config) -> Worker | None:
    early = config.stash.get(EARLY, None)
    if early is not None and not isinstance(early, HarnessError):
        return early
    return config.stash.get(LAZY, None)


def keep_if_failed(item: pytest.Item, report: pytest.TestReport) -> None:
    """Copy the worker's state for a failed test, and say so in its report."""
    if report.when != "call" or not report.failed:
        return
    config = item.config
    options = options_of(config)
    if not options.keep_failed:
        return
    worker = _worker(config)
    if worker is None:  # the test used no harness services in this process
        return
    if environment().ci and not options.keep_failed_given:
        report.sections.append((NOT_KEPT, "CI is set: only --harness-keep-failed on the command line keeps"))
        return
    from tierharness.plugin.plans import state_dir  # noqa: PLC0415  lazy: plugin start-up time (only on a failure)
    from tierharness.runtime.postmortem import FailedWorker, keep_failed  # noqa: PLC0415  lazy: plugin start-up time (docker)

    limit = keep_failed_limit(options.keep_failed_max)
    failed = FailedWorker(
        run_id=identity(config).run_id,
        worker=worker.identity.worker,
        source=worker._containers[0],
        postgres=worker.postgres,
        redis=worker.redis,
        images=(worker.record["postgres"]["image"], (worker.record.get("redis") or {}).get("image")),
        on_host=bool(worker.record.get("host_network")),
        state_dir=state_dir(options, config.rootpath),
    )
    try:
        kept = keep_failed(failed, item.nodeid, idle_seconds=environment().reuse_idle, limit=limit)
    except Exception as exc:  # a post-mortem never turns one failure into two
        report.sections.append((NOT_KEPT, f"the copy failed: {_reason(exc)}"))
        return
    if kept is None:
        report.sections.append(
            (NOT_KEPT, f"this run has kept {limit} failed test(s), its bound (--harness-keep-failed-max)")
        )
        return
    hours = kept.idle_seconds / 3600
    text = [
        f"this test's database and Redis, as it left them, are in kept containers: they expire "
        f"{hours:g} h after the failure (HARNESS_REUSE_IDLE); `python -m tierharness clean` removes them",
        *kept.commands(),
    ]
    report.sections.append((KEPT, "\n".join(text)))


def _reason(exc: BaseException) -> str:
    """The error and, when it wraps another (testcontainers wraps a readiness failure), the
    innermost one: the one that says what happened."""
    inner = exc
    while inner.__cause__ is not None or inner.__context__ is not None:
        inner = inner.__cause__ or inner.__context__  # type: ignore[assignment]
    said = f"{type(exc).__name__}: {exc}"
    return said if inner is exc else f"{said}\n  because {type(inner).__name__}: {inner}"


def summary_lines(reporter: pytest.TerminalReporter) -> list[str]:
    """One line for the run: how many failures were kept, and how many the bound turned away."""
    kept = not_kept = 0
    for report in reporter.stats.get("failed", []):
        titles = [title for title, _ in getattr(report, "sections", [])]
        kept += KEPT in titles
        not_kept += NOT_KEPT in titles
    if not (kept or not_kept):
        return []
    line = f"harness: kept {kept} failed test(s) for a post-mortem (python -m tierharness connect <test id>)"
    if not_kept:
        line += f"; {not_kept} not kept (their reports say why)"
    return [line]
