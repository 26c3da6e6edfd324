"""The perf tier's history, `build/perf/history.jsonl`: one JSON record a run, appended by
`locust_run`, read by the run's comparison with the previous one, the gates page and the report.
A line that is not a run's record (a torn write, an edit by hand) is left out, never fatal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["last_fixed_load", "read_history"]


def read_history(path: Path) -> list[dict[str, Any]]:
    """Every run's record, oldest first; [] when there is no history yet."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def last_fixed_load(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest fixed-load run: a capacity run (with a "knee") is judged by its steps, and
    its totals span every step, so it compares with no threshold and no earlier run."""
    fixed = [record for record in records if "knee" not in record]
    return fixed[-1] if fixed else None
