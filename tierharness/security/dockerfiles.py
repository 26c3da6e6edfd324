"""Dockerfiles: hadolint, plus two rules of ours that hadolint does not make errors of:
the final stage must not run as root, and nothing is fetched with `ADD <url>` (unpinned,
unverified bytes in the image)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from tierharness.security.findings import CheckResult, Finding, Severity
from tierharness.security.tools import run_tool

__all__ = ["dockerfile_policy", "find_dockerfiles", "hadolint"]

_SEVERITY: dict[str, Severity] = {"error": "high", "warning": "medium", "info": "low", "style": "low"}
_ROOT = {"root", "0"}


def find_dockerfiles(root: Path, patterns: Sequence[str]) -> list[str]:
    return sorted(
        {str(p.relative_to(root)) for pattern in patterns for p in root.glob(pattern) if p.is_file()}
    )


def hadolint(root: Path, dockerfiles: Sequence[str]) -> CheckResult:
    result = CheckResult("hadolint", note=f"{len(dockerfiles)} Dockerfiles")
    if not dockerfiles:
        return result
    # --no-fail: the verdict is ours (severity and baseline), not the tool's exit code.
    for item in run_tool("hadolint", ["--no-fail", "-f", "json", *dockerfiles], cwd=root):
        result.findings.append(
            Finding(
                check="hadolint",
                rule=item["code"],
                severity=_SEVERITY.get(item["level"], "medium"),
                where=f"{item['file']}:{item['line']}",
                what=item["message"],
                fix=f"see hadolint's {item['code']}",
            )
        )
    return result


def _instructions(text: str) -> list[tuple[int, str, str]]:
    """(line, INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[int, str, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, rest = full.partition(" ")
        out.append((start, keyword.upper(), rest.strip()))
    return out


def dockerfile_policy(root: Path, dockerfiles: Sequence[str]) -> CheckResult:
    result = CheckResult("dockerfile-policy", note="final USER not root; no ADD <url>")
    for name in dockerfiles:
        user: tuple[int, str] | None = None
        for line, keyword, args in _instructions((root / name).read_text(encoding="utf-8")):
            if keyword == "FROM":
                user = None  # each stage starts as its base's user; only the last stage ships
            elif keyword == "USER":
                user = (line, args.split(":", 1)[0].strip())
            elif keyword == "ADD" and re.search(r"(?:^|\s)(?:https?|ftp)://", args):
                result.findings.append(
                    Finding(
                        "dockerfile-policy",
                        "add-url",
                        "high",
                        f"{name}:{line}",
                        f"ADD fetches a URL at build time: {args[:120]}",
                        "download on the host with a pinned hash and COPY it (or ADD --checksum=sha256:...)",
                    )
                )
        if user is None or user[1] in _ROOT:
            where = f"{name}:{user[0]}" if user else name
            result.findings.append(
                Finding(
                    "dockerfile-policy",
                    "final-user-root",
                    "high",
                    where,
                    "the final stage runs as root" + ("" if user else " (no USER after its FROM)"),
                    "end the final stage with a numeric non-root USER, e.g. USER 10001:10001",
                )
            )
    return result
