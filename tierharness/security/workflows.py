"""GitHub workflows: zizmor's audits (offline) and validation against the workflow schema
that check-jsonschema ships."""

from __future__ import annotations

from pathlib import Path

from tierharness.security.findings import CheckResult, Finding, Severity
from tierharness.security.tools import run_tool

__all__ = ["workflow_schema", "zizmor"]

_SEVERITY: dict[str, Severity] = {
    "Unknown": "medium",
    "Informational": "low",
    "Low": "low",
    "Medium": "medium",
    "High": "high",
}


def _workflows(root: Path, folder: str) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in (root / folder).glob("*.y*ml") if p.is_file())


def zizmor(root: Path, folder: str) -> CheckResult:
    files = _workflows(root, folder)
    result = CheckResult("zizmor", note=f"{len(files)} workflows, offline audits")
    if not files:
        return result
    # Exit codes 10-14 mean "findings of some severity": the verdict is ours.
    args = ["--offline", "--format", "json", *files]
    data = run_tool("zizmor", args, cwd=root, ok_codes=(0, 1, *range(10, 15)))
    for item in data or []:
        location = item["locations"][0]
        local = location["symbolic"]["key"].get("Local") or {}
        path = local.get("verbatim_path") or local.get("given_path") or folder
        row = location["concrete"]["location"]["start_point"]["row"] + 1
        result.findings.append(
            Finding(
                check="zizmor",
                rule=item["ident"],
                severity=_SEVERITY.get(item["determinations"]["severity"], "medium"),
                where=f"{path}:{row}",
                what=item["desc"],
                fix=f"see {item.get('url') or 'zizmor audit ' + item['ident']}",
            )
        )
    return result


def workflow_schema(root: Path, folder: str) -> CheckResult:
    files = _workflows(root, folder)
    result = CheckResult("workflow-schema", note=f"{len(files)} workflows")
    if not files:
        return result
    data = run_tool(
        "check-jsonschema", ["--builtin-schema", "vendor.github-workflows", "-o", "json", *files], cwd=root
    )
    for error in [*data.get("errors", []), *data.get("parse_errors", [])]:
        best = error.get("best_deep_match") or error
        name = Path(error.get("filename", folder))
        shown = name.relative_to(root) if name.is_absolute() and name.is_relative_to(root) else name
        result.findings.append(
            Finding(
                check="workflow-schema",
                rule="schema",
                severity="high",
                where=f"{shown} {best.get('path', '')}".strip(),
                what=str(best.get("message", error))[:300],
                fix="fix the workflow so GitHub accepts it",
            )
        )
    return result
