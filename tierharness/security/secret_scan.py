"""Secrets in the tree (detect-secrets) and the patterns the image scan looks for.

detect-secrets' findings are kept per file in the machine's cache (`secrets_cache()`), keyed by
the file's path and bytes and detect-secrets' version: a rerun scans only the files that
changed (a clean clone of the last commit: none; all 240 files take 12 CPU-seconds).

The image patterns are the unambiguous ones (cloud keys, tokens with a vendor prefix,
private key blocks): a library's docstring full of `user:pass@host` examples is not a
leak, while the same shape in an image's labels or build history is (see `CONFIG_RULES`).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tierharness.config import machine_cache
from tierharness.gitrepo import working_files
from tierharness.security.findings import CheckResult, Finding
from tierharness.security.kept import keep, read_kept
from tierharness.security.tools import run_tool, tool

__all__ = ["CONFIG_RULES", "FILE_RULES", "detect_secrets", "match_rules", "secrets_cache"]

# Part of every cache key: a change to what is kept, or how, makes new keys by itself.
_CACHE_VERSION = "1"
_HIT = {"type", "line_number"}  # what is kept of each finding

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
    found = _scan(root, files)
    for path, hits in sorted(found.items()):
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


def secrets_cache() -> Path:
    """detect-secrets' findings per file, in the machine's cache (every checkout shares it)."""
    return machine_cache("detect-secrets")


def _version() -> str | None:
    """detect-secrets' version, when the one that runs is this interpreter's (a nox session's);
    else None, and nothing is cached: the key would not know which version found what."""
    if Path(tool("detect-secrets")).parent != Path(sys.executable).parent:
        return None
    try:
        return importlib.metadata.version("detect-secrets")
    except importlib.metadata.PackageNotFoundError:
        return None


def _scan(root: Path, files: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """{path: [{type, line_number}, ...]} for `files`; only the ones not cached are scanned."""
    version = _version()
    cache = secrets_cache() if version else None
    kept_at: dict[str, Path] = {}
    found: dict[str, list[dict[str, Any]]] = {}
    if cache is not None:
        for name in files:
            digest = hashlib.sha256(f"{_CACHE_VERSION}\0{version}\0{name}\0".encode())
            digest.update((root / name).read_bytes())
            kept_at[name] = cache / f"{digest.hexdigest()}.json"
            kept = read_kept(kept_at[name])
            if isinstance(kept, list) and all(isinstance(h, dict) and h.keys() >= _HIT for h in kept):
                found[name] = kept  # else absent, or not what this version writes: scanned again
    missing = [name for name in files if name not in found]
    if missing:
        data = run_tool("detect-secrets", ["scan", *missing], cwd=root, ok_codes=(0,))
        scanned = (data or {}).get("results", {})
        for name in missing:
            # Only what a finding shows: no hashed secrets in the cache.
            found[name] = [{key: h[key] for key in _HIT} for h in scanned.get(name, [])]
            if name in kept_at:
                keep(kept_at[name], found[name])
    return found
