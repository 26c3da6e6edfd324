"""Every shell script of the tree through shellcheck."""

from __future__ import annotations

from pathlib import Path

from tierharness.gitrepo import working_files
from tierharness.security.findings import CheckResult, Finding, Severity
from tierharness.security.tools import run_tool

__all__ = ["find_shell_scripts", "shellcheck"]

_SEVERITY: dict[str, Severity] = {"error": "high", "warning": "medium", "info": "low", "style": "low"}


def find_shell_scripts(root: Path) -> list[str]:
    """`*.sh` files and files whose shebang names sh or bash (`.ci/run`, say)."""
    found = []
    for name in working_files(root):
        path = root / name
        if name.endswith((".sh", ".bash")):
            found.append(name)
            continue
        with path.open("rb") as fh:
            first = fh.readline(200)
        if first.startswith(b"#!") and first.rstrip().split(b"/")[-1].split()[-1] in (b"sh", b"bash"):
            found.append(name)
    return found


def shellcheck(root: Path) -> CheckResult:
    scripts = find_shell_scripts(root)
    result = CheckResult("shellcheck", note=f"{len(scripts)} scripts")
    if not scripts:
        return result
    data = run_tool("shellcheck", ["-f", "json1", "-x", *scripts], cwd=root)
    for item in data.get("comments", []):
        code = f"SC{item['code']}"
        result.findings.append(
            Finding(
                check="shellcheck",
                rule=code,
                severity=_SEVERITY.get(item["level"], "medium"),
                where=f"{item['file']}:{item['line']}",
                what=item["message"],
                fix=f"see shellcheck's {code}",
            )
        )
    return result
