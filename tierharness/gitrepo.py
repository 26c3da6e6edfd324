"""Copies of the working tree (for builds from another path, and for tests that change it),
exports of a commit, and what git says about them."""

from __future__ import annotations

import shutil
import tarfile
from collections.abc import Sequence
from pathlib import Path

from tierharness.config import child_env
from tierharness.errors import HarnessError
from tierharness.process import run
from tierharness.scratch import scratch_folder

__all__ = [
    "commit_all",
    "export_commit",
    "extract_tar",
    "git_output",
    "snapshot",
    "source_date_epoch",
    "working_files",
]

_GIT = ["git", "-c", "user.name=harness", "-c", "user.email=harness@example.invalid"]
_GIT_FIX = "check that git is installed and that the folder is a readable checkout"


def git_output(root: Path, *args: str) -> str:
    """What `git ARGS` prints in `root`, stripped; empty when git fails (no remote, no commit)."""
    proc = run(["git", *args], cwd=root, what=f"git {args[0]}", fix=_GIT_FIX, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def source_date_epoch(root: Path) -> int:
    """The last commit's time: the same source always gets the same timestamps."""
    value = git_output(root, "log", "-1", "--format=%ct")
    if not value:
        raise HarnessError(
            "cannot tell the last commit's time",
            checked=f"`git log -1 --format=%ct` in {root}",
            fix="build from a git checkout with at least one commit (or set SOURCE_DATE_EPOCH)",
        )
    return int(value)


def export_commit(root: Path, dest: Path, revision: str = "HEAD") -> Path:
    """The tree of `revision` (committed files only: nothing untracked, ignored or changed
    since) extracted into `dest`, through `git archive`."""
    dest.mkdir(parents=True, exist_ok=True)
    with scratch_folder("export") as tmp:
        archive = Path(tmp) / "tree.tar"
        run(
            ["git", "archive", "--format=tar", f"--output={archive}", revision],
            cwd=root, what=f"exporting {revision} of {root}", fix=_GIT_FIX,
        )  # fmt: skip
        extract_tar(archive, dest)
    return dest


def extract_tar(archive: Path, dest: Path) -> None:
    """Unpack a tarball (a .tar.gz too) into `dest`, refusing members that would land outside
    it, links and device files: through tarfile's "data" filter, which also drops owners and
    setuid bits, where Python has it (3.11.4 on; Debian 12's 3.11.2 has not), else by hand."""
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
            return
        for member in tar.getmembers():
            parts = Path(member.name).parts
            if member.name.startswith("/") or ".." in parts or not (member.isfile() or member.isdir()):
                raise HarnessError(
                    f"{archive.name}: refusing member {member.name!r}",
                    checked=f"every member of {archive} is a file or folder inside it",
                    fix="rebuild the archive without links, devices or escaping paths",
                )
        tar.extractall(dest)  # noqa: S202  # nosec B202 - every member checked above


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
