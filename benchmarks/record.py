"""The record a benchmark leaves beside its printed figures: docs/figures/<name>.json.

Each script that prints figures also calls `write_record` once, at its end, with what it
measured. The record says when (date), on what (the commit, and the machine: cores, kernel,
the engine's version) and by which command; the docs render it as a table, so no figure is
typed into a page. Importable as `record` because a script's own folder is on sys.path.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ROOT / "docs" / "figures"


def figure(what: str, value: float | int | str, unit: str = "", goal: str = "") -> dict[str, Any]:
    """One row of a record: what was measured, its value (rounded for reading) and its goal."""
    shown = round(value, 3) if isinstance(value, float) else value
    return {"what": what, "value": shown, "unit": unit, "goal": goal}


def _output(*cmd: str) -> str:
    if shutil.which(cmd[0]) is None:
        return "unknown"
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False, timeout=30)
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else "unknown"


def machine() -> dict[str, Any]:
    """What the figures depend on, beyond the code: cores, kernel, the engine's version."""
    return {
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "engine": _output("docker", "version", "--format", "{{.Server.Version}}"),
    }


def write_record(name: str, figures: list[dict[str, Any]], *, argv: list[str] | None = None) -> Path:
    """Write docs/figures/<name>.json and say so; returns its path."""
    changes = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    args = sys.argv[1:] if argv is None else argv
    record = {
        "name": name,
        "command": " ".join(["python", f"benchmarks/{Path(sys.argv[0]).name}", *args]),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d"),
        "commit": _output("git", "rev-parse", "HEAD"),
        "uncommitted_changes": bool(changes),  # measured on a tree that differs from the commit
        "machine": machine(),
        "figures": figures,
    }
    FIGURES.mkdir(parents=True, exist_ok=True)
    path = FIGURES / f"{name}.json"
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"recorded in {path}", flush=True)
    return path
