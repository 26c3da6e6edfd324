"""Temporary folders that a killed run does not leave behind.

A folder the harness makes for a while (a build's trees, a registry's credentials, an export)
carries its owner in its name, in the temporary folder (TMPDIR):

    harness-registry@<pid>.<start time>.<pid namespace>-XXXXXXXX

A run killed with SIGKILL runs no `finally`, so `sweep_scratch` removes the invoking user's
folders whose owner is gone. The run's reaper sweeps once its run is gone; `clean` sweeps, and
so does every new folder's making, for runs that had no reaper. A folder filled beside its
destination and renamed into place (an entry of the machine's wheel cache) is made in that
destination's parent instead, and swept there when the next one is made.

A folder is removed only when all of these hold: it is a folder (not a link), the invoking
user's, named in this pid namespace (a container sharing the temporary folder has pids of its
own), and no process has its owner's pid and start time. Another user's folder, or a live
run's, is never touched.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tierharness.owners import pid_alive, pid_namespace, process_start_time

__all__ = ["make_scratch", "scratch_folder", "sweep_scratch"]

_OWNED = re.compile(r"harness-[a-z0-9-]+@(\d+)\.(\d+)\.(\d+)-")


def _namespace() -> str | None:
    """The digits of this pid namespace's name ("pid:[4026531836]"), or None where pids cannot
    be judged here: off Linux, or where /proc is another pid namespace's (`unshare --pid`
    without a /proc of its own), so that /proc/<pid> would describe some other process."""
    try:
        if os.readlink("/proc/self") != str(os.getpid()):
            return None
    except OSError:
        return None
    found = re.search(r"\d+", pid_namespace() or "")
    return found.group() if found else None


def _owner() -> str | None:
    """`<pid>.<start time>.<pid namespace>` of this process, or None where they are unknown."""
    pid = os.getpid()
    start, namespace = process_start_time(pid), _namespace()
    return f"{pid}.{start}.{namespace}" if start and namespace else None


def make_scratch(what: str, parent: Path | None = None) -> Path:
    """A new private folder (mode 0700) named for `what` and this process, in `parent` (else
    the temporary folder); the caller removes it. Dead owners' folders there are swept first."""
    sweep_scratch(parent)
    what = re.sub(r"[^a-z0-9-]+", "-", what.lower()).strip("-") or "scratch"
    owner = _owner()
    # Where the owner cannot be named (off Linux), the folder is never swept, only removed by
    # its maker.
    prefix = f"harness-{what}@{owner}-" if owner else f"harness-{what}-"
    return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))


@contextlib.contextmanager
def scratch_folder(what: str) -> Iterator[Path]:
    """`make_scratch(what)`, removed when the block ends, however it ends."""
    folder = make_scratch(what)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def sweep_scratch(parent: Path | None = None) -> list[Path]:
    """Remove the invoking user's scratch folders in `parent` (else the temporary folder) whose
    owner is gone; return those removed."""
    namespace, uid = _namespace(), os.geteuid()  # the effective uid: it owns what mkdtemp made
    removed: list[Path] = []
    if namespace is None:
        return removed  # no owner can be judged here, and no folder names one
    try:
        entries = list(os.scandir(parent or tempfile.gettempdir()))
    except OSError:
        return []
    for entry in entries:
        found = _OWNED.match(entry.name)
        if not found or found.group(3) != namespace:
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue  # removed meanwhile
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid:
            continue
        if pid_alive(int(found.group(1)), found.group(2)):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        if not os.path.lexists(entry.path):
            removed.append(Path(entry.path))
    return removed
