"""`security-baseline.toml`: findings accepted for a while, each with a reason and an expiry.

An expired entry fails the gate, and so does an entry that matches nothing (the finding
was fixed: the acceptance must go too). Entries match on check, rule and `where`: one file
by its exact path, and `:*` for any of its lines, so line numbers may move without breaking
them. A pattern over files is refused: it would accept the same finding in a file added
later, one nobody gave a reason for.

    [[accept]]
    check = "hadolint"
    rule = "DL3008"
    where = "tierharness/recipes/postgres/Dockerfile:*"
    reason = "why it is acceptable, for now"
    expires = 2027-01-31
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

from tierharness.errors import HarnessError
from tierharness.security.findings import CheckResult, Finding

__all__ = ["Accepted", "apply_baseline", "load_baseline"]

_KEYS = {"check", "rule", "where", "reason", "expires"}
_GLOB = frozenset("*?[")


def _names_many_files(where: str) -> bool:
    """`where` is a pattern over paths, not one file (`:*`, any line of it, is allowed)."""
    path, sep, line = where.rpartition(":")
    named = path if sep and line == "*" else where
    return bool(_GLOB & set(named))


@dataclass(frozen=True)
class Accepted:
    check: str
    rule: str
    where: str
    reason: str
    expires: dt.date
    index: int  # 1-based position in the file, for messages

    def matches(self, finding: Finding) -> bool:
        return (
            finding.check == self.check
            and fnmatch.fnmatchcase(finding.rule, self.rule)
            and fnmatch.fnmatchcase(finding.where, self.where)
        )


def load_baseline(path: Path) -> list[Accepted]:
    if not path.is_file():
        return []
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise HarnessError(
            f"cannot read {path}: {exc}", checked=str(path), fix="fix the TOML syntax"
        ) from exc
    stray = sorted(set(data) - {"accept"})
    entries = data.get("accept", [])
    if stray or not isinstance(entries, list):
        raise HarnessError(
            f"{path.name} holds {', '.join(stray) or 'a malformed accept'}",
            checked=f"{path}: only [[accept]] tables",
            fix="write each accepted finding as an [[accept]] table",
        )
    accepted = []
    for n, entry in enumerate(entries, start=1):
        keys = set(entry) if isinstance(entry, dict) else set()
        if keys != _KEYS or not isinstance(entry.get("expires"), dt.date):
            missing, unknown = sorted(_KEYS - keys), sorted(keys - _KEYS)
            raise HarnessError(
                f"{path.name}: [[accept]] number {n} is malformed"
                + (f"; missing {', '.join(missing)}" if missing else "")
                + (f"; unknown {', '.join(unknown)}" if unknown else ""),
                checked=f"{path}: each entry has check, rule, where, reason and expires (a TOML date)",
                fix='add the missing keys, e.g. expires = 2027-01-31 and reason = "why"',
            )
        if not str(entry["reason"]).strip():
            raise HarnessError(
                f"{path.name}: [[accept]] number {n} gives no reason",
                checked=str(path),
                fix="say why the finding is acceptable, for now",
            )
        if _names_many_files(str(entry["where"])):
            raise HarnessError(
                f"{path.name}: [[accept]] number {n} has where = {entry['where']!r}, a pattern over files",
                checked=f"{path}: each where names one file (`path`, or `path:*` for any of its lines)",
                fix="fix the findings, or accept each file on its own entry with its exact path and "
                "the reason that holds for it",
            )
        accepted.append(
            Accepted(entry["check"], entry["rule"], entry["where"], entry["reason"], entry["expires"], n)
        )
    return accepted


def apply_baseline(
    results: list[CheckResult], entries: list[Accepted], path: Path, today: dt.date | None = None
) -> CheckResult:
    """Mark accepted findings in `results` (in place); return the baseline's own check,
    whose findings are its expired and unused entries."""
    today = today or dt.date.today()
    used: set[int] = set()
    live = [e for e in entries if e.expires >= today]
    for result in results:
        for i, finding in enumerate(result.findings):
            entry = next((e for e in live if e.matches(finding)), None)
            if entry is not None:
                used.add(entry.index)
                result.findings[i] = replace(finding, accepted=f"{entry.reason} (until {entry.expires})")
    own = CheckResult("baseline", note=f"{len(entries)} accepted, {len(used)} in use")
    for entry in entries:
        where = f"{path.name} [[accept]] {entry.index} ({entry.check} {entry.rule} {entry.where})"
        if entry.expires < today:
            own.findings.append(
                Finding(
                    "baseline",
                    "expired",
                    "high",
                    where,
                    f"expired on {entry.expires}: {entry.reason}",
                    "fix the finding and delete the entry (or, with a new reason, a new date)",
                )
            )
        elif entry.index not in used:
            own.findings.append(
                Finding(
                    "baseline",
                    "unused",
                    "high",
                    where,
                    "matches no finding any more",
                    "delete the entry: what it accepted is gone",
                )
            )
    return own
