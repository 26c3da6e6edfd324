"""The harness's own distribution: its wheel and its sdist, byte for byte the same at every build
of the same commit.

`python -m tierharness dist` (`nox -s dist`) builds both into `build/dist/` from an export of the
committed tree (`git archive`: nothing untracked, ignored or uncommitted gets in), with pypa's
`build` frontend and the setuptools backend pinned in requirements/dist.txt. The build runs with
`--no-isolation`: an isolated one would fetch the backend from the index, unpinned and
unhashed. The sdist is built first and the wheel from the unpacked sdist, as `build` does by
default, so a file the sdist leaves out is missing from the wheel too and the contents check
below names it.

What the tools leave to the machine, and what is done about it here:

- timestamps: setuptools' wheel writer takes SOURCE_DATE_EPOCH (the last commit's time) for its
  zip entries; its sdist does not, stamping the build's own time on its generated files and on
  the gzip header. The export's files get that time, and the sdist is rewritten with it.
- modes: files are 0644, or 0755 where git says executable; the builds run under umask 022 (the
  wheel's generated files take their mode from it), and the sdist's members are rewritten so.
- owners: the sdist's members belong to 0:0, without names (setuptools records the builder's).
- order: the sdist's members sorted by name; setuptools' wheel writer sorts its own.

`build_twice` builds a second time, over two seconds later (past a zip entry's and a gzip
header's resolution), under another umask and time zone, in another folder, from files with
other mtimes, and `compare` names every difference. Deflate's output depends on the zlib that
Python uses, so two machines agree when their Pythons' zlib does.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tierharness.config import Settings, child_env, environment
from tierharness.errors import BuildError
from tierharness.gitrepo import export_commit, extract_tar, git_output, source_date_epoch
from tierharness.process import run
from tierharness.scratch import scratch_folder

__all__ = [
    "FIRST",
    "SECOND",
    "Artifact",
    "Dist",
    "Surroundings",
    "TwoBuilds",
    "build_dists",
    "build_twice",
    "check_contents",
    "compare",
    "make_dist",
    "normalise_sdist",
]

# The conventional umask: files 0644, executables 0755, as they are in git.
BUILD_UMASK = 0o022
# Shown in a difference: the first few members per attribute, then a count.
EXAMPLES = 3
_FIX_FRONTEND = (
    "run it through `nox -s dist`, which installs pypa's build and setuptools from "
    "requirements/dist.txt (--require-hashes)"
)


@dataclass(frozen=True)
class Artifact:
    path: Path
    sha256: str

    @classmethod
    def of(cls, path: Path) -> Artifact:
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        return cls(path, digest.hexdigest())


@dataclass(frozen=True)
class Surroundings:
    """What a build must not depend on; the check's second build changes each of them."""

    umask: int = BUILD_UMASK  # the umask of whoever starts the build
    tz: str = "UTC"
    # The export's files keep git archive's mtimes (the commit's time), or get the time of the
    # export, as the files of a fresh clone do.
    touched: bool = False


FIRST = Surroundings()
# UTC+05:45: a zip writer that used local time would shift every entry.
SECOND = Surroundings(umask=0o077, tz="Asia/Kathmandu", touched=True)
# How much later the second build starts than the first ends, in seconds (`build_twice`).
_LATER_SECONDS = 2.1


def _normalise_tree(top: Path, mtime: int) -> None:
    """Modes and mtimes of an exported tree that depend on nothing but git's executable bit."""
    for path in [top, *top.rglob("*")]:
        if path.is_symlink():  # git archive's links: their targets are normalised themselves
            continue
        executable = path.is_dir() or path.stat().st_mode & 0o100
        path.chmod(0o755 if executable else 0o644)
        os.utime(path, (mtime, mtime))


def normalise_sdist(path: Path, mtime: int) -> None:
    """Rewrite a .tar.gz so that it depends on its members' names, contents and executable
    bits alone: sorted, every mtime and the gzip header's `mtime`, owners 0:0 without names."""
    with tarfile.open(path, "r:gz") as src:
        members: list[tuple[tarfile.TarInfo, bytes | None]] = []
        for member in src.getmembers():
            if not (member.isfile() or member.isdir()):
                raise BuildError(
                    f"{path.name} holds {member.name!r}, neither a file nor a folder",
                    checked=f"the members of {path}",
                    fix="keep links and special files out of the package (the sdist ships copies)",
                )
            handle = src.extractfile(member) if member.isfile() else None
            members.append((member, handle.read() if handle is not None else None))
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.PAX_FORMAT) as dst:
        for member, data in sorted(members, key=lambda item: item[0].name):
            info = tarfile.TarInfo(member.name)
            info.type = member.type
            info.mode = 0o755 if member.isdir() or member.mode & 0o100 else 0o644
            info.mtime = mtime
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.size = len(data) if data is not None else 0
            dst.addfile(info, io.BytesIO(data) if data is not None else None)
    # No file name in the header (GzipFile would record one), the commit's time as its mtime.
    with path.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=mtime) as gz:
        gz.write(tar_bytes.getvalue())


@contextlib.contextmanager
def _caller_umask(umask: int) -> Iterator[None]:
    old = os.umask(umask)
    try:
        yield
    finally:
        os.umask(old)


def _frontend(
    python: str, what: str, source: Path, out: Path, *, env: dict[str, str], umask: int | None
) -> Path:
    before = set(out.glob("*")) if out.is_dir() else set()
    run(
        [python, "-m", "build", f"--{what}", "--no-isolation", "--outdir", str(out), str(source)],
        env=env, umask=umask, what=f"building the {what} of {source.name}", fix=_FIX_FRONTEND,
        error=BuildError,
    )  # fmt: skip
    made = sorted(set(out.glob("*")) - before)
    if len(made) != 1:
        raise BuildError(
            f"building the {what} left {len(made)} new files in {out}, not one",
            checked=f"python -m build --{what} --outdir {out}",
            fix="build from a clean export (python -m tierharness dist makes one)",
        )
    return made[0]


def build_dists(
    root: Path,
    work: Path,
    *,
    revision: str,
    source_date_epoch: int | None,
    surroundings: Surroundings = FIRST,
    python: str = sys.executable,
) -> tuple[Artifact, Artifact]:
    """The wheel and the sdist of `revision`, built in `work` (which should be new or empty).

    With `source_date_epoch` None the build is left as the tools make it by themselves:
    SOURCE_DATE_EPOCH unset, the caller's umask, nothing rewritten (the canary of the check)."""
    pinned = source_date_epoch is not None
    env = child_env({"TZ": surroundings.tz}, drop=("SOURCE_DATE_EPOCH",))
    if pinned:
        # Set iteration in the backend then cannot reorder a generated file between builds.
        env |= {"SOURCE_DATE_EPOCH": str(source_date_epoch), "PYTHONHASHSEED": "0"}
    with _caller_umask(surroundings.umask):
        source = export_commit(root, work / "source", revision)
        if surroundings.touched:
            for path in source.rglob("*"):
                os.utime(path)
        if source_date_epoch is not None:
            _normalise_tree(source, source_date_epoch)
        out = work / "out"
        umask = BUILD_UMASK if pinned else None
        sdist = _frontend(python, "sdist", source, out, env=env, umask=umask)
        if source_date_epoch is not None:
            normalise_sdist(sdist, source_date_epoch)
        unpacked = work / "unpacked"
        extract_tar(sdist, unpacked)
        (tree,) = unpacked.iterdir()
        wheel = _frontend(python, "wheel", tree, out, env=env, umask=umask)
    return Artifact.of(wheel), Artifact.of(sdist)


# --------------------------------------------------------------------------- comparing


def _zip_members(path: Path) -> tuple[dict[str, str], list[tuple[str, dict[str, Any]]]]:
    with zipfile.ZipFile(path) as zf:
        members = [
            (
                info.filename,
                {
                    "time": "-".join(map(str, info.date_time)),
                    "mode": oct(info.external_attr >> 16),
                    "content": f"crc {info.CRC:08x}, {info.file_size} bytes",
                    "compression": info.compress_type,
                },
            )
            for info in zf.infolist()
        ]
        return {"comment": zf.comment.decode(errors="replace")}, members


def _tar_members(path: Path) -> tuple[dict[str, str], list[tuple[str, dict[str, Any]]]]:
    raw = path.read_bytes()
    header = {
        "gzip header mtime": str(int.from_bytes(raw[4:8], "little")) if raw[:2] == b"\x1f\x8b" else "",
        "gzip header flags": str(raw[3]) if raw[:2] == b"\x1f\x8b" else "",
    }
    members = []
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        for member in tar.getmembers():
            handle = tar.extractfile(member) if member.isfile() else None
            content = hashlib.sha256(handle.read()).hexdigest()[:12] if handle is not None else ""
            members.append(
                (
                    member.name,
                    {
                        "mtime": member.mtime,
                        "mode": oct(member.mode),
                        "owner": f"{member.uid}:{member.gid} {member.uname}:{member.gname}",
                        "type": member.type.decode(errors="replace"),
                        "content": content,
                        "pax headers": sorted(member.pax_headers),
                    },
                )
            )
    return header, members


def _explain(first: Path, second: Path) -> list[str]:
    """What differs between two archives of the same name, by attribute, with examples."""
    read = _zip_members if first.name.endswith(".whl") else _tar_members
    try:
        (head_a, members_a), (head_b, members_b) = read(first), read(second)
    except (OSError, tarfile.TarError, zipfile.BadZipFile) as exc:
        return [f"cannot be read as an archive: {exc}"]
    lines = [f"{key}: {head_a[key]} != {head_b[key]}" for key in head_a if head_a[key] != head_b.get(key)]
    names_a, names_b = [n for n, _ in members_a], [n for n, _ in members_b]
    for label, only in (("only in the first", set(names_a) - set(names_b)),
                        ("only in the second", set(names_b) - set(names_a))):  # fmt: skip
        if only:
            lines.append(f"{label}: {', '.join(sorted(only)[:EXAMPLES])} ({len(only)} member(s))")
    common = set(names_a) & set(names_b)
    if [n for n in names_a if n in common] != [n for n in names_b if n in common]:
        lines.append("members in another order")
    attrs_b = dict(members_b)
    by_attribute: dict[str, list[str]] = {}
    for name, attrs in members_a:
        if name not in common:
            continue
        for key, value in attrs.items():
            if value != attrs_b[name][key]:
                by_attribute.setdefault(key, []).append(f"{name}: {value} != {attrs_b[name][key]}")
    for key, examples in by_attribute.items():
        lines.append(f"{key} differs in {len(examples)} member(s), e.g. {'; '.join(examples[:EXAMPLES])}")
    return lines or ["the same members and attributes, yet other bytes (compression?)"]


def compare(first: Sequence[Artifact], second: Sequence[Artifact]) -> list[str]:
    """Every difference between two builds' artifacts, matched by file name; empty when each
    has the same sha256 in both."""
    theirs = {a.path.name: a for a in second}
    lines: list[str] = []
    for ours in first:
        other = theirs.pop(ours.path.name, None)
        if other is None:
            lines.append(f"{ours.path.name}: only in the first build")
        elif ours.sha256 != other.sha256:
            lines.append(f"{ours.path.name}: sha256 {ours.sha256} != {other.sha256}")
            lines.extend(f"  {line}" for line in _explain(ours.path, other.path))
    lines.extend(f"{name}: only in the second build" for name in sorted(theirs))
    return lines


@dataclass(frozen=True)
class TwoBuilds:
    first: tuple[Artifact, Artifact]
    second: tuple[Artifact, Artifact]
    differences: list[str] = field(default_factory=list)

    @property
    def reproducible(self) -> bool:
        return not self.differences


def build_twice(
    root: Path, work: Path, *, revision: str, source_date_epoch: int | None, python: str = sys.executable
) -> TwoBuilds:
    """Two builds of `revision`: the second one later, in a deeper folder, under SECOND's
    umask, time zone and mtimes. `source_date_epoch` None: the tools' own behaviour (the canary)."""
    first = build_dists(
        root, work / "first", revision=revision, source_date_epoch=source_date_epoch, python=python
    )
    # Later by more than any stamp's resolution (a gzip header's second, a zip entry's two): a
    # build of a small package can take under a second, and two builds within one would stamp
    # the same time and hide it. The canary once passed a build's time to both sdists so.
    time.sleep(_LATER_SECONDS)
    second = build_dists(
        root, work / "second" / "somewhere" / "else", revision=revision,
        source_date_epoch=source_date_epoch, surroundings=SECOND, python=python,
    )  # fmt: skip
    return TwoBuilds(first, second, compare(first, second))


# --------------------------------------------------------------------------- contents


def check_contents(wheel: Path, sdist: Path, source: Path, package: str = "tierharness") -> list[str]:
    """What the artifacts lack of the committed package (modules, py.typed, the image recipes)
    or carry beyond it; empty when both ship exactly the package's files."""
    expected = {p.relative_to(source).as_posix() for p in (source / package).rglob("*") if p.is_file()}
    with zipfile.ZipFile(wheel) as zf:
        shipped = {n for n in zf.namelist() if not n.split("/", 1)[0].endswith(".dist-info")}
    with tarfile.open(sdist) as tar:
        names = [m.name for m in tar.getmembers() if m.isfile()]
    top = sdist.name.removesuffix(".tar.gz") + "/"
    in_sdist = {n.removeprefix(top) for n in names}
    problems = []
    if missing := sorted(expected - shipped):
        problems.append(f"{wheel.name} lacks {', '.join(missing)}")
    if extra := sorted(shipped - expected):
        problems.append(f"{wheel.name} carries what the package does not hold: {', '.join(extra)}")
    if missing := sorted((expected | {"pyproject.toml", "README.md"}) - in_sdist):
        problems.append(f"{sdist.name} lacks {', '.join(missing)}")
    return problems


# --------------------------------------------------------------------------- the command


@dataclass(frozen=True)
class Dist:
    wheel: Artifact
    sdist: Artifact
    revision: str
    source_date_epoch: int
    record: Path
    check: TwoBuilds | None = None


def make_dist(settings: Settings, *, check: bool = False, log: Callable[[str], None] = print) -> Dist:
    """Build the wheel and the sdist of HEAD into build/dist/ with their sha256 in dist.json;
    with `check`, build a second time, varied, and record whether the two agree."""
    root = settings.root
    revision = git_output(root, "rev-parse", "HEAD")
    if not revision:
        raise BuildError(
            "no commit to build",
            checked=f"git rev-parse HEAD in {root}",
            fix="build from a git checkout with at least one commit",
        )
    sde = environment().source_date_epoch or source_date_epoch(root)
    if git_output(root, "status", "--porcelain", "--untracked-files=no"):
        log(f"uncommitted changes are not in the build: it is of {revision[:12]} (commit them to ship them)")
    out = settings.build_dir / "dist"
    with scratch_folder("dist") as tmp:
        work = Path(tmp)
        if check:
            twice = build_twice(root, work, revision=revision, source_date_epoch=sde)
            wheel, sdist = twice.first
        else:
            twice = None
            wheel, sdist = build_dists(root, work / "first", revision=revision, source_date_epoch=sde)
        problems = check_contents(wheel.path, sdist.path, work / "first" / "source")
        if problems:
            raise BuildError(
                "; ".join(problems),
                checked="every file of the committed tierharness/ against the wheel and the sdist",
                fix="list the missing files in [tool.setuptools.package-data] of pyproject.toml "
                "(or drop the stray ones from the package)",
            )
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        shipped = tuple(Artifact(Path(shutil.copy2(a.path, out)), a.sha256) for a in (wheel, sdist))
        record: dict[str, Any] = {
            "revision": revision,
            "source_date_epoch": sde,
            "artifacts": {a.path.name: {"sha256": a.sha256, "size": a.path.stat().st_size} for a in shipped},
        }
        if twice is not None:
            record["check"] = {
                "reproducible": twice.reproducible,
                "second": {a.path.name: a.sha256 for a in twice.second},
                "differences": twice.differences,
            }
            if not twice.reproducible:  # kept beside the first build's, for diffoscope
                (out / "second").mkdir()
                for artifact in twice.second:
                    shutil.copy2(artifact.path, out / "second")
    path = out / "dist.json"
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return Dist(shipped[0], shipped[1], revision, sde, path, twice)
