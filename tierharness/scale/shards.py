"""Shards: `K/N` is the K-th of N balanced slices of the suite, chosen by pytest-split from
durations committed in the repository (`tests/durations.json`, refreshed by `nox -s
durations`). Each shard is its own pytest run: its own containers, JUnit and coverage data,
named by the shard, merged later by `tierharness.scale.reports`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tierharness.errors import HarnessError

__all__ = ["DURATIONS", "Shard", "stale_durations"]

DURATIONS = Path("tests/durations.json")


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based
    count: int

    @classmethod
    def parse(cls, spec: str) -> Shard:
        """`K/N` with 1 <= K <= N, or an error that says so."""
        index, sep, count = spec.partition("/")
        if not sep or not index.isdigit() or not count.isdigit():
            raise HarnessError(
                f"--shard {spec!r} is not K/N",
                checked="the value of --shard",
                fix="give the shard as K/N, e.g. --shard 1/2 for the first of two",
            )
        shard = cls(int(index), int(count))
        if not 1 <= shard.index <= shard.count:
            raise HarnessError(
                f"--shard {spec}: shard {shard.index} of {shard.count} does not exist",
                checked="1 <= K <= N in K/N",
                fix=f"use a K from 1 to {shard.count}" if shard.count else "use N >= 1",
            )
        return shard

    @property
    def name(self) -> str:
        return f"shard-{self.index}-of-{self.count}"

    def pytest_args(self, durations: Path = DURATIONS) -> list[str]:
        """What pytest-split needs for this slice."""
        return [
            "--splits", str(self.count), "--group", str(self.index),
            "--durations-path", str(durations), "--splitting-algorithm", "least_duration",
        ]  # fmt: skip


def stale_durations(durations: Path, collected: set[str]) -> list[str]:
    """Tests the durations file names that the suite no longer has (a warning, not an error:
    their time is only missing from the balance)."""
    if not durations.is_file():
        return []
    known = json.loads(durations.read_text(encoding="utf-8"))
    return sorted(name for name in known if name not in collected)
