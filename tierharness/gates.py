"""`nox -s gates`: every quality gate on one page, from what the other sessions wrote.

One row per gate: its value, its threshold and PASS / FAIL / UNCHECKED / NOT RUN. Nothing
is re-run here; a missing report is NOT RUN, never PASS, and a check that could not look
(vulnerabilities without the advisory service) is UNCHECKED, never PASS.
"""

from __future__ import annotations

import json
import time
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tierharness.config import Settings
from tierharness.perf.history import last_fixed_load, read_history

__all__ = ["Gate", "collect_gates", "render_gates", "write_gates"]

PASS, FAIL, UNCHECKED, NOT_RUN = "PASS", "FAIL", "UNCHECKED", "NOT RUN"
# How a test that truly needs root says so when skipped ("needs root: WHAT; fix: FIX"): each
# distinct WHAT becomes a NOT RUN row of its own, with the fix, not a number among the skips.
NEEDS_ROOT = "needs root:"


@dataclass(frozen=True)
class Gate:
    name: str
    value: str
    threshold: str
    status: str
    source: str  # the file it was read from, and how old it is


def _age(path: Path) -> str:
    minutes = int((time.time() - path.stat().st_mtime) // 60)
    return f"{path.name}, {minutes} min ago" if minutes < 120 else f"{path.name}, {minutes // 60} h ago"


def _xml_root(path: Path) -> ET.Element:
    return ET.parse(path).getroot()  # noqa: S314  # nosec B314


def _junit(path: Path, name: str) -> list[Gate]:
    if not path.is_file():
        return [Gate(name, "-", "0 failed", NOT_RUN, f"{path.name} missing")]
    root = _xml_root(path)
    suites = [root] if root.tag == "testsuite" else list(root)
    counts = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    bad = counts["failures"] + counts["errors"]
    value = f"{counts['tests']} tests, {bad} failed, {counts['skipped']} skipped"
    gate = Gate(name, value, "0 failed", PASS if bad == 0 and counts["tests"] else FAIL, _age(path))
    return [gate, *_needs_root(root, path)]


def _needs_root(root: ET.Element, path: Path) -> list[Gate]:
    """One NOT RUN row per distinct reason among the tests skipped for want of root."""
    skipped: dict[str, int] = {}
    for element in root.iter("skipped"):
        message = element.get("message", "")
        # pytest writes "path:line: reason" for a skip raised in the test body.
        at = message.find(NEEDS_ROOT)
        if at >= 0:
            reason = message[at:]
            skipped[reason] = skipped.get(reason, 0) + 1
    return [
        Gate(reason.split(";", 1)[0], f"{count} test(s) skipped; {reason.partition(';')[2].strip()}",
             "run", NOT_RUN, _age(path))
        for reason, count in sorted(skipped.items())
    ]  # fmt: skip


def _coverage(settings: Settings) -> Gate:
    path = settings.build_dir / "coverage" / "coverage.xml"
    pyproject = tomllib.loads((settings.root / "pyproject.toml").read_text(encoding="utf-8"))
    floor = float(pyproject.get("tool", {}).get("coverage", {}).get("report", {}).get("fail_under", 0))
    if not path.is_file():
        return Gate("coverage", "-", f">= {floor:g} %", NOT_RUN, "coverage.xml missing")
    rate = float(_xml_root(path).get("line-rate", 0)) * 100
    return Gate("coverage", f"{rate:.1f} %", f">= {floor:g} %", PASS if rate >= floor else FAIL, _age(path))


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _security(settings: Settings) -> list[Gate]:
    path = settings.build_dir / "security" / "report.json"
    if not path.is_file():
        return [
            Gate(n, "-", t, NOT_RUN, "report.json missing")
            for n, t in (("security findings", "0 gating"), ("vulnerabilities", "0 high/critical"))
        ]
    report = _json(path)
    checks = {c["name"]: c for c in report.get("checks", [])}
    gating = int(report.get("gating_findings", 0))
    gates = [
        Gate(
            "security findings",
            f"{gating} gating, {len(report.get('findings', []))} reported",
            f"0 at or above {report.get('fail_on')} outside the baseline",
            PASS if gating == 0 else FAIL,
            _age(path),
        )
    ]
    audit = checks.get("pip-audit")
    if audit is None:
        gates.append(Gate("vulnerabilities", "-", "0 high/critical", NOT_RUN, _age(path)))
    else:
        status = {"passed": PASS, "failed": FAIL}.get(audit["status"], UNCHECKED)
        value = audit["note"] + (f"; {audit['unchecked']}" if audit.get("unchecked") else "")
        gates.append(Gate("vulnerabilities", value, "0 high/critical", status, _age(path)))
    counts = report.get("components") or {}
    if counts:
        status = PASS if checks.get("licences", {}).get("status") == "passed" else FAIL
        value = f"{counts.get('python', 0)} Python, {counts.get('debian', 0)} Debian components"
        gates.append(Gate("SBOM and licences", value, "policy in pyproject", status, _age(path)))
    return gates


def _perf(settings: Settings) -> Gate:
    path = settings.build_dir / "perf" / "history.jsonl"
    threshold = f"p95 <= {settings.perf.p95_ms:g} ms, >= {settings.perf.min_rps:g} RPS"
    last = last_fixed_load(read_history(path))
    if last is None:
        why = "no fixed-load run" if path.is_file() else "history.jsonl missing"
        return Gate("performance", "-", threshold, NOT_RUN, why)
    total = last.get("stats", {}).get("total", {})
    value = ", ".join(
        f"{k} {v}" for k, v in total.items() if k in ("p95_ms", "rps", "fail_ratio", "requests")
    )
    return Gate(
        "performance", value or "see report", threshold, PASS if last.get("passed") else FAIL, _age(path)
    )


def _repro(settings: Settings) -> Gate:
    path = settings.build_dir / "repro" / "report.json"
    if not path.is_file():
        return Gate("reproducible image", "-", "same digest twice", NOT_RUN, "report.json missing")
    ok = bool(_json(path).get("reproducible"))
    value = "identical digests" if ok else "digests differ"
    return Gate("reproducible image", value, "same digest twice", PASS if ok else FAIL, _age(path))


def _deploy(settings: Settings) -> Gate:
    """The last blue-green rehearsal (`nox -s deploy`): its verdict, the proxy's retries, and each
    rollback timed from the first bad request, as rehearsed (gated) and with the shipped rules
    (computed); see tierharness/deploy/report.py."""
    path = settings.build_dir / "deploy" / "timeline.json"
    limit = settings.deploy.rollback_limit
    threshold = (
        f"0 failed, 0 retried; rollback <= {limit:g} s from the first bad request (rules as rehearsed)"
    )
    if not path.is_file():
        return Gate("deploy rehearsal", "-", threshold, NOT_RUN, "timeline.json missing")
    data = _json(path)
    figures = data.get("figures", {})
    parts = [f"proxy retries {figures.get('retries', '-')}"]
    for c in figures.get("rollback", {}).get("candidates", []):
        if c.get("rehearsed_seconds") is not None:
            shipped = c.get("shipped_seconds")
            parts.append(
                f"{c['candidate']}: rolled back {c['rehearsed_seconds']:g} s after the first bad request "
                + (
                    "(no shipped rules)"
                    if shipped is None
                    else f"(about {shipped:.0f} s with the shipped rules, computed)"
                )
            )
        else:
            parts.append(f"{c['candidate']}: rolled back before any client request reached it")
    verdict = str(data.get("summary", {}).get("verdict", "no verdict"))
    value = "; ".join([verdict if len(verdict) < 200 else verdict[:200] + "...", *parts])
    return Gate("deploy rehearsal", value, threshold, PASS if verdict == "PASSED" else FAIL, _age(path))


def _tiers(junit: Path) -> list[Gate]:
    """The tiers' run, and beside it the root-only tests that a non-root run skips: once those
    passed as root (`nox -s root-tests`), the skips are no longer NOT RUN."""
    tiers = _junit(junit / "tests.xml", "unit + integration tests")
    root = junit / "root-tests.xml"
    if not root.is_file():
        return tiers
    as_root = _junit(root, "root-only tests (as root)")
    if as_root[0].status == PASS:
        tiers = [g for g in tiers if not g.name.startswith(NEEDS_ROOT)]
    return [*tiers, *as_root]


def collect_gates(settings: Settings) -> list[Gate]:
    junit = settings.build_dir / "junit"
    readers: list[Callable[[], list[Gate]]] = [
        lambda: _tiers(junit),
        lambda: [_coverage(settings)],
        lambda: _security(settings),
        lambda: _junit(junit / "e2e.xml", "e2e (image over HTTP, fuzzing)"),
        lambda: [_repro(settings)],
        lambda: [_perf(settings)],
        lambda: [_deploy(settings)],
        lambda: _junit(junit / "perf-gate.xml", "perf gate can fail"),
    ]
    gates: list[Gate] = []
    for read in readers:
        try:
            gates.extend(read())
        except (OSError, ValueError, KeyError, ET.ParseError) as exc:
            gates.append(Gate(getattr(read, "__name__", "gate"), f"unreadable: {exc}", "-", FAIL, "-"))
    return gates


def render_gates(gates: list[Gate]) -> str:
    worst = FAIL if any(g.status == FAIL for g in gates) else None
    lines = [
        "# Quality gates",
        "",
        "| gate | value | threshold | status | from |",
        "|---|---|---|---|---|",
        *(f"| {g.name} | {g.value} | {g.threshold} | **{g.status}** | {g.source} |" for g in gates),
        "",
    ]
    unchecked = [g.name for g in gates if g.status == UNCHECKED]
    not_run = [g.name for g in gates if g.status == NOT_RUN]
    if unchecked:
        lines.append(f"UNCHECKED (could not be checked here; not passed): {', '.join(unchecked)}")
    if not_run:
        lines.append(f"NOT RUN: {', '.join(not_run)}")
    lines.append("Verdict: FAIL" if worst else "Verdict: no gate failed")
    return "\n".join(lines) + "\n"


def write_gates(settings: Settings, gates: list[Gate] | None = None) -> tuple[str, int]:
    """build/gates.md from `gates` (collected here when None); the text and the exit code."""
    gates = collect_gates(settings) if gates is None else gates
    text = render_gates(gates)
    out = settings.build_dir / "gates.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return text, 1 if any(g.status == FAIL for g in gates) else 0
