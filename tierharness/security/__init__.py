"""Security gates: source, dependencies, Dockerfiles, shell, workflows and the built image.

Each module does one job and returns `Finding` records; `scan_all` runs them all, applies the
baseline and writes the report (`findings_report`).
"""

from __future__ import annotations

from tierharness.security.findings import CheckResult, Finding, Severity

__all__ = ["CheckResult", "Finding", "Severity"]
