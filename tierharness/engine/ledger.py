"""What the harness made in an engine, written down by the run that made it.

`clean --prune` removes only what is written here: a name or a build cache record that merely
looks like the harness's (another project's `localhost:5000/app`, another user's build cache)
is not proof, and an engine is shared by every project and user of the machine.

One ledger per user (it lives in the machine's cache, HARNESS_CACHE_DIR), per engine (the
engine's own id: a DOCKER_HOST naming another engine reads another ledger) and per kind:

- `pulls`: references pulled into the engine from a run's own loopback registry;
- `builds`: the project image's per-commit tags, each with the image id it was given (a tag
  moved by hand to another image is no longer the harness's);
- `build-cache`: the BuildKit records that appeared while a harness build ran;
- `clean-build-cache`: those that appeared while a clean (`--no-cache`) harness build ran.

An entry is a line; entries of what is gone from the engine are forgotten by whoever finds
them gone. Appends and rewrites hold the ledger's lock, so concurrent runs lose nothing.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from tierharness.config import machine_cache

__all__ = ["Ledger"]


def _engine_id(client: Any) -> str:
    return str(client.info()["ID"]).replace(":", "-").replace("/", "-")


@dataclass(frozen=True)
class Ledger:
    """One kind of what the harness made in one engine, for one user: `<folder>/<kind>.txt`."""

    folder: Path
    kind: str

    @classmethod
    def of(cls, client: Any, kind: str) -> Ledger:
        """The invoking user's ledger of `kind` for the engine `client` talks to."""
        return cls(machine_cache("made") / _engine_id(client), kind)

    @property
    def path(self) -> Path:
        return self.folder / f"{self.kind}.txt"

    def _lock(self) -> FileLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.folder / f"{self.kind}.lock"))

    def add(self, entries: Iterable[str]) -> None:
        lines = [f"{entry}\n" for entry in entries if entry]
        if not lines:
            return
        with self._lock(), self.path.open("a", encoding="utf-8") as out:
            out.writelines(lines)

    def entries(self) -> list[str]:
        """Every entry once, oldest first."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return list(dict.fromkeys(line for line in text.splitlines() if line))

    def forget(self, entries: Iterable[str]) -> None:
        gone = set(entries)
        if not gone or not self.path.exists():
            return
        with self._lock():
            kept = [entry for entry in self.entries() if entry not in gone]
            # Whole or not at all: a reader never sees half a ledger.
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=f".{self.kind}-")
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.writelines(f"{entry}\n" for entry in kept)
            os.replace(tmp, self.path)
