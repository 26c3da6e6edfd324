"""Copies of the working tree: for builds from another path, and for tests that change it."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from tierharness.config import child_env
from tierharness.process import run

__all__ = ["commit_all", "git_output", "snapshot", "working_files"]

_GIT = ["git", "-c", "user.name=harness", "-c", "user.email=harness@example.invalid"]
_GIT_FIX = "check that git is installed and that the folder is a readable checkout"


def git_output(root: Path, *args: str) -> str:
    """What `git ARGS` prints in `root`, stripped; empty when git fails (no remote, no commit)."""
    proc = run(["git", *args], cwd=root, what=f"git {args[0]}", fix=_GIT_FIX, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def working_files(root: Path, paths: Sequence[str] = ()) -> list[str]:
    """The files of a working tree as git sees it (tracked, and untracked but not ignored),
    sorted, relative to `root`; every file of a plain folder. `paths` narrows the listing."""
    if not (root / ".git").exists():
        tops = [root / p for p in paths] if paths else [root]
        found = [f for top in tops for f in ([top] if top.is_file() else top.rglob("*")) if f.is_file()]
        return sorted({str(f.relative_to(root)) for f in found})
    listing = run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", *paths],
        cwd=root, what=f"listing the files of {root}", fix=_GIT_FIX,
    ).stdout.split("\0")  # fmt: skip
    return sorted({name for name in listing if name and (root / name).is_file()})


def snapshot(root: Path, dest: Path, *, commit_time: int | None = None) -> Path:
    """The working tree as git sees it, committed in a fresh repository at `dest`. With
    `commit_time`, the commit carries that time, so a snapshot of the same tree gets the
    same SOURCE_DATE_EPOCH."""
    for name in working_files(root):
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, dest / name)
    return commit_all(dest, commit_time=commit_time)


def commit_all(path: Path, *, commit_time: int | None = None) -> Path:
    """`git init` (if needed) and commit everything under `path`, at `commit_time` if given."""
    env = None
    if commit_time is not None:
        stamp = f"{commit_time} +0000"
        env = child_env({"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp})
    what = f"committing the snapshot at {path}"
    if not (path / ".git").exists():
        run([*_GIT, "init", "--quiet"], cwd=path, what=what, fix=_GIT_FIX)
    run([*_GIT, "add", "--all"], cwd=path, what=what, fix=_GIT_FIX)
    run([*_GIT, "commit", "--quiet", "--message", "snapshot"], cwd=path, env=env, what=what, fix=_GIT_FIX)
    return path
