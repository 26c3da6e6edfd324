"""Static analysis of the Python source with bandit."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tierharness.security.findings import CheckResult, Finding, Severity
from tierharness.security.tools import run_tool

__all__ = ["bandit"]

_SEVERITY: dict[str, Severity] = {"LOW": "low", "MEDIUM": "medium", "HIGH": "high"}


def bandit(root: Path, paths: Sequence[str]) -> CheckResult:
    present = [p for p in paths if (root / p).exists()]
    data = run_tool("bandit", ["-r", *present, "-f", "json", "-q"], cwd=root)
    result = CheckResult("bandit", note=f"over {', '.join(present)}")
    for item in data.get("results", []):
        result.findings.append(
            Finding(
                check="bandit",
                rule=item["test_id"],
                severity=_SEVERITY.get(item["issue_severity"], "medium"),
                where=f"{item['filename']}:{item['line_number']}",
                what=item["issue_text"],
                fix=f"see {item.get('more_info', 'the bandit docs')}; if it is a false positive, "
                f"say why beside `# nosec {item['test_id']}`",
            )
        )
    return result
