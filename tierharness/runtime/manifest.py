"""The run manifest: per worker, which containers it had and how long each took to be ready.

Workers write one file each under `<state-dir>/runs/<run-id>/`; the controller
merges them into `<state-dir>/last-run.json` at the end and prints one line.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
from pathlib import Path
from typing import Any

__all__ = ["merge_run", "summary_line", "write_worker"]


def _run_dir(state_dir: Path, run_id: str) -> Path:
    return state_dir / "runs" / run_id


def write_worker(state_dir: Path, run_id: str, worker: str, data: dict[str, Any]) -> Path:
    folder = _run_dir(state_dir, run_id)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{worker}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)  # atomic: the controller never reads half a file
    return path


def merge_run(state_dir: Path, run_id: str, extra: dict[str, Any] | None = None) -> dict[str, Any] | None:
    folder = _run_dir(state_dir, run_id)
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not files:
        return None
    workers = {f.stem: json.loads(f.read_text(encoding="utf-8")) for f in files}
    manifest = {"run_id": run_id, **(extra or {}), "workers": workers}
    target = state_dir / "last-run.json"
    target.write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
    shutil.copy2(target, folder.parent / f"{run_id}.json")
    shutil.rmtree(folder, ignore_errors=True)
    return manifest


def summary_line(manifest: dict[str, Any], path: Path) -> str:
    workers = manifest["workers"]
    parts = []
    for name, w in sorted(workers.items()):
        iso = w.get("isolation", {})
        resets = (
            f"reset median {iso['median_ms']:.1f}ms x{iso['resets']}" if iso.get("resets") else "no resets"
        )
        redis = w.get("redis")
        parts.append(
            f"{name}: pg {w['postgres']['container_id'][:12]} ({w['postgres']['ready_seconds']:.2f}s), "
            + (f"redis {redis['container_id'][:12]} ({redis['ready_seconds']:.2f}s), " if redis else "")
            + ("reused, " if w.get("reused") else "")
            + ("started migrated, " if w.get("migrated_image") else "")
            + (
                f"migrated image committed in {w['commit_seconds']:.2f}s, "
                if w.get("migrated_image_committed")
                else ""
            )
            + f"ready+migrated {w['provision_seconds']:.2f}s, {resets}"
        )
    provision = statistics.median(w["provision_seconds"] for w in workers.values())
    return (
        f"harness run {manifest['run_id']}: {len(workers)} worker(s), median provisioning {provision:.2f}s; "
        + "; ".join(parts)
        + f"; manifest {path}"
    )
