"""The licence policy (`[tool.harness.security.licences]`) checked against the SBOM's
Python components: each licence must be allowed, or the package an exception with a
reason. Debian packages are listed in the SBOM with their licences but not gated: the
distribution's own policy (DFSG) already admits only free licences."""

from __future__ import annotations

import re
from collections.abc import Sequence

from tierharness.config import LicencePolicy
from tierharness.security.findings import CheckResult, Finding
from tierharness.security.sbom_document import Component

__all__ = ["check_licences", "expression_allowed"]


def expression_allowed(expression: str, allowed: set[str]) -> bool:
    """An SPDX expression under the allow-list: every AND term allowed, any OR alternative
    enough. Parentheses are flattened, which is strict (never more permissive)."""
    flat = re.sub(r"[()]", " ", expression)
    for alternative in re.split(r"\s+OR\s+", flat):
        terms = [t.strip() for t in re.split(r"\s+AND\s+", alternative) if t.strip()]
        if terms and all(t in allowed or t.split(" WITH ")[0].strip() in allowed for t in terms):
            return True
    return False


def check_licences(comps: Sequence[Component], policy: LicencePolicy) -> CheckResult:
    allowed = set(policy.allow)
    python = [c for c in comps if c.kind == "python"]
    result = CheckResult(
        "licences", note=f"{len(python)} Python packages against {len(allowed)} allowed licences"
    )
    names = {c.name.lower().replace("_", "-") for c in python}
    for comp in python:
        key = comp.name.lower().replace("_", "-")
        if key in policy.exceptions:
            continue
        stated = comp.licence_names()
        if stated and any(expression_allowed(s, allowed) for s in stated):
            continue
        what = f"{comp.name} {comp.version}: " + (
            f"licence {' / '.join(stated)} is not allowed" if stated else "no licence stated"
        )
        result.findings.append(
            Finding(
                "licences",
                "not-allowed" if stated else "unknown",
                "high",
                f"sbom {comp.purl}",
                what,
                "add the licence to [tool.harness.security.licences] allow, or the package to its "
                "exceptions with the reason it is acceptable",
            )
        )
    for stale in sorted(set(policy.exceptions) - names):
        result.findings.append(
            Finding(
                "licences",
                "stale-exception",
                "medium",
                f"[tool.harness.security.licences.exceptions] {stale}",
                f"the exception for {stale} matches no package in the image",
                "remove it",
            )
        )
    return result
