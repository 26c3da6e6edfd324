"""A harness setup failure shown in full once: every other test it stopped says "same error"
in one line, instead of the same 5 KB again, and the summary counts them."""

from __future__ import annotations

import pytest

from tierharness.errors import HarnessError
from tierharness.plugin.session import FAILURES

__all__ = ["repeat_lines", "shorten_repeat"]

_SAME = "harness: same error as "


def shorten_repeat(item: pytest.Item, call: pytest.CallInfo[None], report: pytest.TestReport) -> None:
    """A setup error this process has shown before becomes one line naming the first test."""
    error = call.excinfo.value if call.excinfo is not None else None
    if report.when == "setup" and report.failed and isinstance(error, HarnessError):
        failures = item.config.stash.setdefault(FAILURES, {})
        key = error.what.splitlines()[0]
        if key in failures:
            report.longrepr = f"{_SAME}{failures[key][0]} ({key})"
        failures.setdefault(key, []).append(item.nodeid)


def repeat_lines(terminalreporter: pytest.TerminalReporter) -> list[str]:
    """One summary line per repeated error, counted from the reports, which xdist brings back
    from every worker."""
    repeats: dict[str, int] = {}
    for report in terminalreporter.stats.get("error", []):
        text = str(getattr(report, "longrepr", ""))
        if text.startswith(_SAME):
            key = text.split(" (", 1)[1].rstrip(")") if " (" in text else text
            repeats[key] = repeats.get(key, 0) + 1
    return [
        f"harness: same error for {count + 1} tests (shown once per worker): {key}"
        for key, count in repeats.items()
    ]
