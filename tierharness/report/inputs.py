"""What the report shows, read from the files the sessions and the plugin left. Nothing is
run here, and a missing or unreadable file is None (shown as "not run"), never an error."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tierharness.config import Settings
from tierharness.perf.history import read_history

__all__ = [
    "Benchmark",
    "Knee",
    "PerfRun",
    "ProvisioningRun",
    "Repro",
    "WorkerRow",
    "benchmarks",
    "last_run_workers",
    "links",
    "perf_history",
    "provisioning_runs",
    "repro",
]

# Where benchmarks/record.py keeps its records (one JSON file per benchmark).
FIGURES_DIR = Path("docs") / "figures"


@dataclass(frozen=True)
class Knee:
    users: float
    rps: float
    p95_ms: float


@dataclass(frozen=True)
class PerfRun:
    label: str  # the commit when the record carries one, else its date
    p95_ms: float
    rps: float
    passed: bool
    knee: Knee | None


@dataclass(frozen=True)
class ProvisioningRun:
    run_id: str
    workers: int
    median_seconds: float


@dataclass(frozen=True)
class WorkerRow:
    worker: str
    provision_seconds: float
    postgres_ready_seconds: float | None
    redis_ready_seconds: float | None
    how: str  # reused, started migrated, or cold


@dataclass(frozen=True)
class Benchmark:
    name: str
    date: str
    commit: str
    figures: list[tuple[str, str, str]]  # what, value with its unit, goal


@dataclass(frozen=True)
class Repro:
    reproducible: bool
    a_digest: str
    b_digest: str
    differences: int


def _json_file(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _knee(raw: Any) -> Knee | None:
    if not isinstance(raw, dict):
        return None
    try:
        return Knee(float(raw["users"]), float(raw["rps"]), float(raw["p95_ms"]))
    except (KeyError, TypeError, ValueError):
        return None


def perf_history(settings: Settings) -> list[PerfRun]:
    """The perf tier's runs, oldest first; lines that are not a run's record are left out."""
    runs = []
    for record in read_history(settings.build_dir / "perf" / "history.jsonl"):
        try:
            total = record["stats"]["total"]
            p95, rps = float(total["p95_ms"]), float(total["rps"])
        except (ValueError, KeyError, TypeError):
            continue
        commit = record.get("commit")
        label = str(commit)[:10] if commit else str(record.get("at", ""))[:16].replace("T", " ")
        runs.append(PerfRun(label or "?", p95, rps, bool(record.get("passed")), _knee(record.get("knee"))))
    return runs


def _manifests(state_dir: Path) -> list[dict[str, Any]]:
    """The merged manifests the plugin kept (runs/<run-id>.json, last-run.json among them)."""
    found: dict[str, dict[str, Any]] = {}
    for path in [*sorted((state_dir / "runs").glob("*.json")), state_dir / "last-run.json"]:
        data = _json_file(path)
        if isinstance(data, dict) and isinstance(data.get("workers"), dict) and data["workers"]:
            found[str(data.get("run_id", path.stem))] = data
    return [found[k] for k in sorted(found)]  # run ids begin with the time they started


def provisioning_runs(settings: Settings) -> list[ProvisioningRun]:
    runs = []
    for manifest in _manifests(settings.state_dir):
        seconds = [
            float(w["provision_seconds"]) for w in manifest["workers"].values() if "provision_seconds" in w
        ]
        if seconds:
            runs.append(ProvisioningRun(str(manifest["run_id"]), len(seconds), statistics.median(seconds)))
    return runs


def _ready(worker: dict[str, Any], service: str) -> float | None:
    value = (worker.get(service) or {}).get("ready_seconds")
    return None if value is None else float(value)


def last_run_workers(settings: Settings) -> tuple[str, list[WorkerRow]] | None:
    """The last run's workers: how long each took, and how. Only figures are read: the
    manifest's connection details (masked passwords included) stay out of the page."""
    manifests = _manifests(settings.state_dir)
    if not manifests:
        return None
    last = manifests[-1]
    rows = []
    for name, w in sorted(last["workers"].items()):
        how = "reused" if w.get("reused") else "started migrated" if w.get("migrated_image") else "cold"
        rows.append(
            WorkerRow(
                name, float(w.get("provision_seconds", 0)), _ready(w, "postgres"), _ready(w, "redis"), how
            )
        )
    return str(last["run_id"]), rows


def benchmarks(settings: Settings) -> list[Benchmark]:
    """The benchmarks' committed records, each figure as recorded (never retyped)."""
    found = []
    for path in sorted((settings.root / FIGURES_DIR).glob("*.json")):
        data = _json_file(path)
        if not isinstance(data, dict) or not isinstance(data.get("figures"), list):
            continue
        figures = [
            (
                str(f.get("what", "")),
                f"{f.get('value', '')} {f.get('unit', '')}".strip(),
                str(f.get("goal", "")),
            )
            for f in data["figures"]
            if isinstance(f, dict)
        ]
        found.append(
            Benchmark(
                str(data.get("name", path.stem)),
                str(data.get("date", "")),
                str(data.get("commit", ""))[:10],
                figures,
            )
        )
    return found


def repro(settings: Settings) -> Repro | None:
    data = _json_file(settings.build_dir / "repro" / "report.json")
    if not isinstance(data, dict) or "reproducible" not in data:
        return None
    layers = [layer for layer in data.get("layers", []) if isinstance(layer, dict)]
    differences = len(data.get("config", [])) + sum(
        len(layer.get("changed", [])) + len(layer.get("added", [])) + len(layer.get("removed", []))
        for layer in layers
    )
    return Repro(
        bool(data["reproducible"]), str(data.get("a_digest", "")), str(data.get("b_digest", "")), differences
    )


# The other sessions' reports, relative to the build folder: (label, path).
_REPORTS = (
    ("gates (Markdown)", "gates.md"),
    ("coverage (Cobertura XML)", "coverage/coverage.xml"),
    ("Locust report", "perf/report.html"),
    ("Locust stats (CSV)", "perf/stats_stats.csv"),
    ("security report", "security/report.md"),
    ("security report (JSON)", "security/report.json"),
    ("SBOM (CycloneDX)", "security/sbom.cdx.json"),
    ("reproducibility report", "repro/report.md"),
    ("deploy rehearsal timeline", "deploy/timeline.txt"),
)


def links(settings: Settings) -> list[tuple[str, str]]:
    """(label, path relative to build/) for each report that exists: the JUnit files, then the rest."""
    build = settings.build_dir
    found = [(f"JUnit: {p.name}", f"junit/{p.name}") for p in sorted((build / "junit").glob("*.xml"))]
    found += [(label, rel) for label, rel in _REPORTS if (build / rel).is_file()]
    return found
