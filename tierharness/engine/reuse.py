"""Kept containers for the inner loop (`--harness-reuse`): a worker's Postgres and Redis
survive the run, and the next run of the same checkout takes them back in milliseconds.

They are keyed by the checkout, the worker, the images' digests and a digest of the
migrations, so a changed key means fresh containers. A worker holds the key's lock for
its whole run: a second run at the same time gets fresh containers, never shared ones.
Kept containers carry no owner pid (the dead-run sweep leaves them alone) but their owner's
uid: the key holds it too, so two users' runs of the same checkout path never share
containers. They expire after an idle time (HARNESS_REUSE_IDLE) and `python -m tierharness
clean` removes them: each user's own only, unless asked for every user's (`--all-users`).
CI never keeps anything.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

__all__ = [
    "LABEL_REUSE",
    "LABEL_REUSE_IDLE",
    "LABEL_REUSE_OWNER",
    "LABEL_STATE_DIR",
    "ReuseSlot",
    "expire_idle",
    "kept_containers",
    "migrations_digest",
    "owner_of",
    "remove_kept",
    "reuse_key",
]

LABEL_REUSE = "harness.reuse-key"
# On each kept container, so any sweep (a reaper's, a worker's, `clean`) can expire it
# without knowing the run that made it.
LABEL_REUSE_IDLE = "harness.reuse-idle"
LABEL_STATE_DIR = "harness.state-dir"
LABEL_REUSE_OWNER = "harness.reuse-owner"  # the uid of the user whose run kept it
_SKIP = {".git", ".venv", ".nox", "node_modules", "build", ".harness", "__pycache__", ".mypy_cache"}
_MIGRATION_DIRS = {"migrations", "alembic", "versions"}


def migrations_digest(rootdir: Path, *commands: str | None) -> str:
    """A digest of the commands, of the files they name (`python seed.py`, `manage.py`) and of
    every file under a folder named migrations, alembic or versions: a change to the schema's
    history or to the seed means fresh containers."""
    digest = hashlib.sha256("\0".join(c or "" for c in commands).encode())
    for path in sorted(set(_migration_files(rootdir)) | _named_files(rootdir, commands)):
        digest.update(str(path.relative_to(rootdir)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _named_files(rootdir: Path, commands: tuple[str | None, ...]) -> set[Path]:
    """The files inside `rootdir` that the commands' words name."""
    named: set[Path] = set()
    for word in (w for c in commands for w in shlex.split(c or "")):
        with contextlib.suppress(OSError, ValueError):
            path = (rootdir / word).resolve()
            if path.is_file() and path.is_relative_to(rootdir.resolve()):
                named.add(rootdir / path.relative_to(rootdir.resolve()))
    return named


def _migration_files(folder: Path, inside: bool = False) -> list[Path]:
    found: list[Path] = []
    for entry in folder.iterdir():
        if entry.is_dir() and entry.name not in _SKIP and not entry.is_symlink():
            found += _migration_files(entry, inside or entry.name in _MIGRATION_DIRS)
        elif inside and entry.is_file() and entry.suffix != ".pyc":
            found.append(entry)
    return found


def reuse_key(rootdir: Path, worker: str, images: Mapping[str, str], migrations: str) -> str:
    # The uid first: another user's run of the same checkout path keeps containers of its own.
    images_part = (f"{k}={v}" for k, v in sorted(images.items()))
    parts = [str(os.getuid()), str(rootdir.resolve()), worker, *images_part, migrations]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:20]


@dataclass
class ReuseSlot:
    """One key's lock and its last-use record, under `<state-dir>/reuse/`."""

    state_dir: Path
    key: str
    idle_seconds: float = 4 * 3600.0

    def labels(self) -> dict[str, str]:
        return {
            LABEL_REUSE: self.key,
            LABEL_REUSE_IDLE: str(int(self.idle_seconds)),
            LABEL_STATE_DIR: str(self.state_dir.resolve()),
            LABEL_REUSE_OWNER: str(os.getuid()),
        }

    def __post_init__(self) -> None:
        folder = self.state_dir / "reuse"
        folder.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(folder / f"{self.key}.lock"))
        self.record = folder / f"{self.key}.json"

    def acquire(self) -> bool:
        """The key for this run, or False when another run holds it (it then gets fresh ones)."""
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            return False
        return True

    def release(self, *, used: bool = True) -> None:
        if used:
            self.record.write_text(json.dumps({"last_used": time.time()}), encoding="utf-8")
        self._lock.release()


def owner_of(labels: Mapping[str, str]) -> int | None:
    """The uid of the user a kept container is for: its owner label; for one kept before that
    label existed, the owner of the state folder it names, which that user's run made. None
    when neither tells (that folder gone, or not visible to this user)."""
    owner = labels.get(LABEL_REUSE_OWNER, "")
    if owner.isdigit():
        return int(owner)
    with contextlib.suppress(OSError):
        if labels.get(LABEL_STATE_DIR):
            return Path(labels[LABEL_STATE_DIR]).stat().st_uid
    return None


def kept_containers(client: Any, key: str | None = None, *, all_users: bool = False) -> list[Any]:
    """Kept containers (all of them, or one key's): the invoking user's, or every user's."""
    flt = {"label": [f"{LABEL_REUSE}={key}" if key else LABEL_REUSE]}
    found = list(client.containers.list(all=True, ignore_removed=True, filters=flt))
    return found if all_users else [c for c in found if owner_of(c.labels) == os.getuid()]


def remove_kept(client: Any, key: str | None = None, *, all_users: bool = False) -> int:
    """Remove kept containers (all of them, or one key's; the invoking user's, or with
    `all_users` every user's); returns how many."""
    removed = 0
    for container in kept_containers(client, key, all_users=all_users):
        with contextlib.suppress(Exception):  # gone already
            container.remove(force=True, v=True)
            removed += 1
    return removed


def expire_idle(client: Any, *, now: float | None = None) -> int:
    """Remove the invoking user's kept containers unused for longer than their idle time
    (labelled on them, with the state folder that records their last use); a key locked by a
    running worker, or whose state folder is gone from this machine's view, is left alone.
    Another user's are theirs to expire: their state folder and its locks are theirs too."""
    now = time.time() if now is None else now
    removed = 0
    by_key: dict[str, dict[str, str]] = {}
    for container in kept_containers(client):
        if container.labels.get(LABEL_REUSE):
            by_key.setdefault(container.labels[LABEL_REUSE], container.labels)
    for key, labels in sorted(by_key.items()):
        state_dir = Path(labels.get(LABEL_STATE_DIR, ""))
        if not labels.get(LABEL_STATE_DIR) or not state_dir.is_dir():
            continue
        slot = ReuseSlot(state_dir, key)
        if not slot.acquire():
            continue  # in use right now
        try:
            last = json.loads(slot.record.read_text())["last_used"] if slot.record.exists() else 0.0
            if now - float(last) > float(labels.get(LABEL_REUSE_IDLE, "14400")):
                removed += remove_kept(client, key)
                slot.record.unlink(missing_ok=True)
        finally:
            slot.release(used=False)
    return removed
