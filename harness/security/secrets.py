"""Secrets in the tree (detect-secrets) and the patterns the image scan looks for.

The image patterns are the unambiguous ones (cloud keys, tokens with a vendor prefix,
private key blocks): a library's docstring full of `user:pass@host` examples is not a
leak, while the same shape in an image's labels or build history is (see `CONFIG_RULES`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from harness.build.checkout import working_files
from harness.security.findings import CheckResult, Finding
from harness.security.tools import run_tool

__all__ = ["CONFIG_RULES", "FILE_RULES", "detect_secrets", "match_rules"]

FILE_RULES: tuple[tuple[str, re.Pattern[bytes]], ...] = (
    ("aws-access-key", re.compile(rb"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])")),
    ("private-key", re.compile(rb"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY(?: BLOCK)?-----")),
    ("github-token", re.compile(rb"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{50,})")),
    ("gitlab-token", re.compile(rb"\bglpat-[A-Za-z0-9_-]{20,}")),
    ("slack-token", re.compile(rb"\bxox[abprs]-[A-Za-z0-9-]{10,}")),
)
# In Env, labels and build history, credentials in a URL and `secret=value` are leaks too.
CONFIG_RULES: tuple[tuple[str, re.Pattern[bytes]], ...] = (
    *FILE_RULES,
    ("url-credentials", re.compile(rb"[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@'\"]+:[^/\s@'\"]+@")),
    (
        "secret-assignment",
        re.compile(
            rb"(?i)[A-Z0-9_]*(?:password|passwd|secret|token|api[_-]?key|private[_-]?key|access[_-]?key)"
            rb"[A-Z0-9_]*\s*[=:]\s*[^\s'\"]{8,}"
        ),
    ),
)


def match_rules(data: bytes, rules: Sequence[tuple[str, re.Pattern[bytes]]]) -> Iterator[tuple[str, str]]:
    """(rule, redacted excerpt) for every rule that matches `data`, once per rule."""
    for name, pattern in rules:
        found = pattern.search(data)
        if found:
            yield name, redact(found.group().decode(errors="replace"))


def redact(text: str) -> str:
    """Enough of a secret to find it, not enough to use it."""
    return text if len(text) <= 8 else f"{text[:6]}...({len(text)} chars)"


def detect_secrets(root: Path, exclude: Sequence[str] = ()) -> CheckResult:
    """detect-secrets over the files git sees (tracked, or untracked and not ignored)."""
    excluded = [re.compile(p) for p in exclude]
    files = [f for f in working_files(root) if not any(p.search(f) for p in excluded)]
    result = CheckResult("detect-secrets", note=f"{len(files)} files")
    if not files:
        return result
    data = run_tool("detect-secrets", ["scan", *files], cwd=root, ok_codes=(0,))
    for path, hits in sorted((data or {}).get("results", {}).items()):
        for hit in hits:
            result.findings.append(
                Finding(
                    check="detect-secrets",
                    rule=hit["type"],
                    severity="high",
                    where=f"{path}:{hit['line_number']}",
                    what=f"{hit['type']} in a file of the tree",
                    fix="remove it and rotate it; read secrets from the environment or a *_FILE; "
                    "a test value that only looks secret gets `# pragma: allowlist secret`",
                )
            )
    return result
