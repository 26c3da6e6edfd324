"""The record a benchmark leaves beside its printed figures: docs/figures/<name>.json.

Each script that prints figures also calls `write_record` once, at its end, with what it
measured. The record says when (date), on what (the commit, and the machine: cores, their model
and speed, kernel, the engine's version) and by which command; the docs render it as a table, so
no figure is typed into a page. Importable as `record` because a script's own folder is on sys.path.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ROOT / "docs" / "figures"
_LOOP = 2_000_000  # `_loop_seconds`'s iterations: a fraction of a second


def figure(what: str, value: float | int | str, unit: str = "", goal: str = "") -> dict[str, Any]:
    """One row of a record: what was measured, its value (rounded for reading) and its goal."""
    shown = round(value, 3) if isinstance(value, float) else value
    return {"what": what, "value": shown, "unit": unit, "goal": goal}


def _output(*cmd: str) -> str:
    if shutil.which(cmd[0]) is None:
        return "unknown"
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False, timeout=30)
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else "unknown"


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or "unknown"


def _loop_seconds() -> float:
    """A fixed loop of Python arithmetic on one core, best of three: how fast this machine's cores
    are. The machines records are made on may differ in speed, so a record's times compare with
    another's only beside this."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(_LOOP):
            total += i * i % 7
        best = min(best, time.perf_counter() - started)
    return round(best, 3)


def machine() -> dict[str, Any]:
    """What the figures depend on, beyond the code: cores, their model and speed, kernel, the
    engine's version."""
    return {
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "loop_s": _loop_seconds(),
        "python": platform.python_version(),  # the loop's interpreter: its speed is part of the time
        "kernel": platform.release(),
        "engine": _output("docker", "version", "--format", "{{.Server.Version}}"),
    }


def write_record(
    name: str, figures: list[dict[str, Any]], *, argv: list[str] | None = None, command: str | None = None
) -> Path:
    """Write docs/figures/<name>.json and say so; returns its path. `command`: how to make the
    record again, where it is not this benchmark script with its arguments."""
    # The records themselves are left out: one benchmark's fresh record, not yet committed,
    # changes nothing the next one measures.
    changes = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)docs/figures"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    args = sys.argv[1:] if argv is None else argv
    record = {
        "name": name,
        "command": command or " ".join(["python", f"benchmarks/{Path(sys.argv[0]).name}", *args]),
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
