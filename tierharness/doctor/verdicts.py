"""The doctor's verdicts: a `Check` per row (PASS, WARN or FAIL, with the fix for anything not
PASS), the report that prints them, the exit code they make."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["CLEAN", "PROVISION", "Check", "Status", "dotted", "exit_code", "render", "version_of"]

Status = Literal["PASS", "WARN", "FAIL"]

PROVISION = "`bash scripts/provision-docker.sh`"
CLEAN = "python -m tierharness clean"


@dataclass(frozen=True)
class Check:
    """One row of the report: what was checked, its verdict, and the fix when not PASS."""

    name: str
    status: Status
    detail: str
    fix: str | None = None


def exit_code(checks: Iterable[Check]) -> int:
    return 1 if any(c.status == "FAIL" for c in checks) else 0


def render(checks: Sequence[Check]) -> str:
    """The report: one row per check, the fix on the line below anything not PASS."""
    width = max([len("CHECK"), *(len(c.name) for c in checks)])
    lines = [f"{'STATUS':<6}  {'CHECK':<{width}}  DETAIL"]
    for check in checks:
        lines.append(f"{check.status:<6}  {check.name:<{width}}  {check.detail}")
        if check.fix and check.status != "PASS":
            lines.append(f"{'':<6}  {'':<{width}}  fix: {check.fix}")
    counts = {s: sum(c.status == s for c in checks) for s in ("PASS", "WARN", "FAIL")}
    lines.append(f"doctor: {counts['PASS']} PASS, {counts['WARN']} WARN, {counts['FAIL']} FAIL")
    return "\n".join(lines)


def version_of(text: str) -> tuple[int, ...] | None:
    """The leading numbers of a version ("26.1.5+dfsg1" -> (26, 1, 5), "v0.13.1" -> (0, 13, 1))."""
    found = re.match(r"v?(\d+(?:\.\d+)*)", text.strip())
    return tuple(int(p) for p in found.group(1).split(".")) if found else None


def dotted(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))
