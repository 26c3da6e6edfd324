"""A file lock in the state folder, held for a block: what keeps two rehearsals (or two
rotations) of one checkout from running over each other."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from tierharness.errors import HarnessError

__all__ = ["state_lock"]


@contextlib.contextmanager
def state_lock(
    path: Path,
    busy: HarnessError,
    *,
    wait: float = 0.0,
    waiting: str = "",
    log: Callable[[str], None] = print,
) -> Iterator[None]:
    """`path` (a file lock in the state folder) held for the block. Held by another process:
    with `wait`, say `waiting` and wait up to that many seconds; then (or at once) raise `busy`.
    A killed holder releases it with its process."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if not wait:
            raise busy from None
        log(waiting)
        try:
            lock.acquire(timeout=wait)
        except Timeout:
            raise busy from None
    try:
        yield
    finally:
        lock.release()
