"""What every check returns: findings (check, severity, where, what, fix) and a status."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["SEVERITIES", "CheckResult", "Finding", "Severity", "Status", "at_least"]

Severity = Literal["low", "medium", "high", "critical"]
SEVERITIES: tuple[Severity, ...] = ("low", "medium", "high", "critical")
# passed: ran and found nothing that gates; failed: a gating finding; unchecked: could not
# look (an advisory service out of reach), which is never reported as passed.
Status = Literal["passed", "failed", "unchecked"]


def at_least(severity: str, threshold: str) -> bool:
    return SEVERITIES.index(severity) >= SEVERITIES.index(threshold)


@dataclass(frozen=True)
class Finding:
    check: str  # "bandit", "image-secrets", ...
    rule: str  # the tool's own id (B602, DL3008, unpinned-uses) or ours
    severity: Severity
    where: str  # "path:line", "image layer 3 /etc/x", "image config Labels[...]"
    what: str
    fix: str
    accepted: str | None = None  # the baseline's reason, when it accepts this finding

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CheckResult:
    name: str
    findings: list[Finding] = field(default_factory=list)
    unchecked: str | None = None  # why the check could not look, when it could not
    note: str = ""  # one line for the summary (counts, versions)
    seconds: float = 0.0

    def gating(self, threshold: str) -> list[Finding]:
        return [f for f in self.findings if f.accepted is None and at_least(f.severity, threshold)]

    def status(self, threshold: str) -> Status:
        if self.gating(threshold):
            return "failed"
        return "unchecked" if self.unchecked else "passed"
