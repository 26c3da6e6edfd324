"""A project folder with what the sessions and the plugin leave behind, for the report's tests."""

from __future__ import annotations

import json
from pathlib import Path

# A manifest's connection details must never reach the page: this stands for a password.
MANIFEST_SECRET = "manifest-password-never-shown"  # pragma: allowlist secret


def _manifest(run_id: str, seconds: list[float]) -> dict[str, object]:
    workers = {
        f"gw{n}": {
            "provision_seconds": s,
            "migrated_image": n == 0,
            "postgres": {"ready_seconds": s / 2, "password": MANIFEST_SECRET, "port": 5432},
            "redis": {"ready_seconds": 0.01, "password": MANIFEST_SECRET},
        }
        for n, s in enumerate(seconds)
    }
    return {"run_id": run_id, "started": "", "workers": workers}


def _perf_record(n: int, *, knee: bool, commit: bool) -> dict[str, object]:
    record: dict[str, object] = {
        "at": f"2026-12-0{n + 1}T10:00:00+00:00",
        "passed": n != 1,
        "stats": {
            "total": {"p95_ms": 40.0 + 30 * n, "rps": 120.0 - 10 * n, "fail_ratio": 0, "requests": 900}
        },
    }
    if commit:
        record["commit"] = f"{n:x}" * 40
    if knee:
        record["knee"] = {"users": 40 + 10 * n, "rps": 300.0 + n, "p95_ms": 95.0}
    return record


def write_sample_project(root: Path, *, knees: bool = True) -> Path:
    """pyproject.toml, three perf runs (the last two with a commit and, with `knees`, a knee),
    two test runs' manifests, a repro-check report, a JUnit file and a benchmark record."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text("[tool.harness]\n[tool.coverage.report]\nfail_under = 80\n")
    build = root / "build"
    (build / "perf").mkdir(parents=True)
    lines = [json.dumps(_perf_record(n, knee=knees and n > 0, commit=n > 0)) for n in range(3)]
    # A line that is not a run's record is left out of the trend.
    (build / "perf" / "history.jsonl").write_text("\n".join([lines[0], "not a record", *lines[1:]]) + "\n")
    (build / "perf" / "report.html").write_text("<html></html>")
    runs = root / ".harness" / "runs"
    runs.mkdir(parents=True)
    (runs / "1204100000-aaaaaa.json").write_text(json.dumps(_manifest("1204100000-aaaaaa", [0.9, 1.1])))
    last = _manifest("1204110000-bbbbbb", [0.5, 0.7])
    (runs / "1204110000-bbbbbb.json").write_text(json.dumps(last))
    (root / ".harness" / "last-run.json").write_text(json.dumps(last))
    (build / "repro").mkdir()
    repro = {"reproducible": True, "a_digest": "sha256:" + "a" * 64, "b_digest": "sha256:" + "a" * 64}
    (build / "repro" / "report.json").write_text(json.dumps({**repro, "config": [], "layers": []}))
    (build / "junit").mkdir()
    (build / "junit" / "tests.xml").write_text(
        '<testsuites><testsuite tests="3" failures="0" errors="0" skipped="0"/></testsuites>'
    )
    figures = root / "docs" / "figures"
    figures.mkdir(parents=True)
    figure = {"what": "cold worker ready, median", "value": 0.852, "unit": "s", "goal": "<= 1.0 s"}
    bench = {"name": "worker_provisioning", "date": "2026-12-04", "commit": "c" * 40, "figures": [figure]}
    (figures / "worker_provisioning.json").write_text(json.dumps(bench))
    return root
