"""`build/security/report.json` and `report.md`: one row per finding (check, severity,
where, what, fix), each check's status, and the verdict; plus the console summary."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tierharness.security.findings import SEVERITIES, CheckResult

__all__ = ["SecurityReport", "write_report"]


@dataclass
class SecurityReport:
    fail_on: str
    results: list[CheckResult]
    image: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)  # sbom path, component counts, ...

    @property
    def gating(self) -> int:
        return sum(len(r.gating(self.fail_on)) for r in self.results)

    @property
    def unchecked(self) -> list[str]:
        return [r.name for r in self.results if r.status(self.fail_on) == "unchecked"]

    @property
    def verdict(self) -> str:
        """FAIL on any gating finding; else UNCHECKED when a check could not look; else PASS."""
        if self.gating:
            return "FAIL"
        return "UNCHECKED" if self.unchecked else "PASS"

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "fail_on": self.fail_on,
            "image": self.image,
            "gating_findings": self.gating,
            "unchecked": self.unchecked,
            **self.extras,
            "checks": [
                {
                    "name": r.name,
                    "status": r.status(self.fail_on),
                    "note": r.note,
                    "unchecked": r.unchecked,
                    "seconds": round(r.seconds, 2),
                    "findings": len(r.findings),
                }
                for r in self.results
            ],
            "findings": [
                {**f.to_json(), "gating": f.accepted is None and f in r.gating(self.fail_on)}
                for r in self.results
                for f in sorted(r.findings, key=lambda f: -SEVERITIES.index(f.severity))
            ],
        }

    def summary(self) -> list[str]:
        lines = []
        for r in self.results:
            status = r.status(self.fail_on)
            counts = {s: sum(1 for f in r.findings if f.severity == s) for s in SEVERITIES}
            found = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no findings"
            accepted = sum(1 for f in r.findings if f.accepted)
            extra = f"; {accepted} accepted by the baseline" if accepted else ""
            lines.append(f"{status.upper():9} {r.name:18} {found}{extra} ({r.note}; {r.seconds:.1f}s)")
            if r.unchecked:
                lines.append(f"{'':9} {'':18} !!! UNCHECKED: {r.unchecked}")
            for f in r.gating(self.fail_on):
                lines.append(f"{'':9} - {f.severity} {f.rule} at {f.where}: {f.what}")
                lines.append(f"{'':9}   fix: {f.fix}")
        if self.verdict == "FAIL":
            tail = f"security FAILED: {self.gating} finding(s) at or above {self.fail_on} not in the baseline"
        elif self.verdict == "UNCHECKED":
            tail = f"security passed what it could check; UNCHECKED, not passed: {', '.join(self.unchecked)}"
        else:
            tail = "security passed"
        return [*lines, tail]

    def to_markdown(self) -> str:
        out = [
            f"# Security report: {self.verdict}",
            "",
            f"Gate: findings at or above **{self.fail_on}**, not in the baseline.",
            "",
        ]
        if self.unchecked:
            out += [f"**UNCHECKED (never counted as passed): {', '.join(self.unchecked)}**", ""]
        out += ["| check | status | note |", "|---|---|---|"]
        for r in self.results:
            note = r.note + (f"; UNCHECKED: {r.unchecked}" if r.unchecked else "")
            out.append(f"| {r.name} | {r.status(self.fail_on).upper()} | {_cell(note)} |")
        out += ["", "| check | severity | where | what | fix | accepted |", "|---|---|---|---|---|---|"]
        for f in self.to_json()["findings"]:
            out.append(
                "| "
                + " | ".join(
                    _cell(str(f[k] or "")) for k in ("check", "severity", "where", "what", "fix", "accepted")
                )
                + " |"
            )
        return "\n".join(out) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def write_report(report: SecurityReport, folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / "report.json", folder / "report.md"
    json_path.write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
    md_path.write_text(report.to_markdown(), encoding="utf-8")
    return json_path, md_path
