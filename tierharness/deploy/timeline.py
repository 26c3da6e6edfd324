"""The rehearsal's timeline: each step with its time, the switch instant, and the requests
Locust made before, during and after the switch (from its per-second history)."""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["Event", "Timeline", "load_summary", "locust_history", "requests_between"]


@dataclass(frozen=True)
class Event:
    seconds: float  # since the rehearsal started
    step: str
    detail: str = ""


@dataclass
class Timeline:
    started_wall: float = field(default_factory=time.time)
    started: float = field(default_factory=time.monotonic)
    events: list[Event] = field(default_factory=list)
    marks: dict[str, float] = field(default_factory=dict)  # named instants (wall clock)
    summary: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)  # the report's numbers, for the gates page

    def now(self) -> float:
        return time.monotonic() - self.started

    def mark(self, step: str, detail: str = "", *, name: str | None = None, echo: bool = True) -> float:
        """Record a step now; with `name`, also remember its wall-clock instant."""
        event = Event(round(self.now(), 3), step, detail)
        self.events.append(event)
        if name:
            self.marks[name] = self.started_wall + event.seconds
        if echo:
            print(f"deploy: t+{event.seconds:7.2f}s  {step}{f'  ({detail})' if detail else ''}", flush=True)
        return event.seconds

    def render(self) -> str:
        lines = [
            f"deploy rehearsal started {datetime.fromtimestamp(self.started_wall, UTC):%Y-%m-%d %H:%M:%S} UTC"
        ]
        lines += [
            f"  t+{e.seconds:7.2f}s  {e.step}{f'  ({e.detail})' if e.detail else ''}" for e in self.events
        ]
        for key, value in self.summary.items():
            lines.append(f"{key}: {value}")
        return "\n".join(lines)

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "timeline.txt").write_text(self.render() + "\n", encoding="utf-8")
        data = {
            "started": self.started_wall,
            "events": [asdict(e) for e in self.events],
            "marks": self.marks,
            "summary": self.summary,
            "figures": self.figures,
        }
        path = folder / "timeline.json"
        path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
        return path


def locust_history(path: Path) -> list[tuple[float, int, int]]:
    """(unix time, requests so far, failures so far) per second, from Locust's stats_history.csv."""
    rows: list[tuple[float, int, int]] = []
    if not path.exists():
        return rows
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row.get("Name") == "Aggregated":
                rows.append(
                    (
                        float(row["Timestamp"]),
                        int(row["Total Request Count"]),
                        int(row["Total Failure Count"]),
                    )
                )
    return rows


def _at(rows: list[tuple[float, int, int]], when: float) -> tuple[int, int]:
    """Requests and failures counted up to `when` (the last row at or before it)."""
    best = (0, 0)
    for stamp, requests, failures in rows:
        if stamp <= when:
            best = (requests, failures)
    return best


def requests_between(history: Path, start: float | None, end: float | None) -> dict[str, dict[str, int]]:
    """Requests and failures before `start`, between `start` and `end`, and after `end`
    (wall-clock instants; one-second resolution, as Locust writes its history)."""
    rows = locust_history(history)
    if not rows:
        return {}
    total = rows[-1][1:]
    first = _at(rows, start) if start else total
    second = _at(rows, end) if end else total
    spans = {"before": ((0, 0), first), "during": (first, second), "after": (second, total)}
    return {name: {"requests": b[0] - a[0], "failures": b[1] - a[1]} for name, (a, b) in spans.items()}


def load_summary(total: Mapping[str, Any]) -> str:
    """The timeline's `requests` line, from the Locust gate's aggregated stats."""
    return (
        f"{total['requests']} made, {total['failures']} failed, p95 {total['p95_ms']:g} ms, "
        f"{total['rps']:.1f} rps"
    )
