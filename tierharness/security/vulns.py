"""Dependencies: every lockfile pin carries a hash, and pip-audit over the lockfiles.

pip-audit asks PyPI's advisory service about each pin. Where that service cannot be
reached it still exits 0 and prints "No known vulnerabilities found", having skipped
every package: that is reported as UNCHECKED, never as passed. `strict` (the CI
workflow, which can reach the service) turns UNCHECKED into a failure.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tierharness.config import pip_child_env
from tierharness.errors import HarnessError
from tierharness.imaging.lockfiles import parse_lockfile
from tierharness.security.findings import CheckResult, Finding
from tierharness.security.tools import run_tool

__all__ = ["lockfile_hashes", "pip_audit"]


def lockfile_hashes(root: Path, lockfiles: Sequence[Path]) -> CheckResult:
    result = CheckResult("lockfile-hashes", note=f"{len(lockfiles)} lockfiles")
    for path in lockfiles:
        shown = path.relative_to(root) if path.is_relative_to(root) else path
        try:
            pins = parse_lockfile(path)
        except (OSError, HarnessError) as exc:
            result.findings.append(
                Finding(
                    "lockfile-hashes",
                    "unreadable",
                    "high",
                    str(shown),
                    str(exc).splitlines()[0],
                    "regenerate it with `nox -s lock`",
                )
            )
            continue
        for pin in pins:
            if not pin.hashes:
                result.findings.append(
                    Finding(
                        "lockfile-hashes",
                        "no-hash",
                        "high",
                        f"{shown}:{pin.line}",
                        f"{pin.name}=={pin.version} is pinned without a hash: pip would install any file",
                        "regenerate the lockfile with `nox -s lock` (pip-compile --generate-hashes)",
                    )
                )
    return result


def pip_audit(root: Path, lockfiles: Sequence[Path], *, strict: bool, timeout: float = 5) -> CheckResult:
    result = CheckResult("pip-audit", note=f"{len(lockfiles)} lockfiles")
    if not lockfiles:
        return result
    args = ["--require-hashes", "--disable-pip", "--progress-spinner", "off", "--timeout", f"{timeout:g}"]
    args += ["-f", "json", *(a for path in lockfiles for a in ("-r", str(path)))]
    data = run_tool("pip-audit", args, cwd=root, env=pip_child_env())
    deps = data.get("dependencies", []) if isinstance(data, dict) else []
    skipped = [d for d in deps if d.get("skip_reason")]
    for dep in deps:
        for vuln in dep.get("vulns", []):
            fixed = ", ".join(vuln.get("fix_versions") or []) or "none yet"
            result.findings.append(
                Finding(
                    "pip-audit",
                    vuln.get("id", "?"),
                    # The advisory service gives no severity: every known vulnerability gates.
                    "high",
                    f"{dep['name']}=={dep.get('version', '?')}",
                    (vuln.get("description") or "known vulnerability")[:200],
                    f"upgrade to a fixed version ({fixed}): `nox -s lock -- --upgrade`",
                )
            )
    if skipped or not deps:
        # pip-audit words an unreachable service as "not found on PyPI": say what it means.
        looked_up = (
            f"{len(skipped)} of {len(deps)} packages could not be looked up" if deps else "nothing audited"
        )
        result.unchecked = f"the advisory service was not reached ({looked_up})"
        if strict:
            result.findings.append(
                Finding(
                    "pip-audit",
                    "unchecked",
                    "high",
                    ", ".join(p.name for p in lockfiles),
                    result.unchecked,
                    "make the advisory service reachable, or run without --strict-vulns",
                )
            )
    result.note = f"{len(deps) - len(skipped)} of {len(deps)} pins audited"
    return result
