"""The distribution's comparer, sdist rewrite and contents check on small archives made here
(no build): each difference a real build can carry is named, and the rewrite removes exactly
what the builder's machine leaves in an sdist. Real builds: tests/integration/harness/test_dist.py."""

from __future__ import annotations

import gzip
import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from tierharness import distribution as dist
from tierharness.__main__ import main
from tierharness.distribution import Artifact, Dist, TwoBuilds, check_contents, compare, normalise_sdist
from tierharness.errors import BuildError

SDE = 1_700_000_000


ZipTime = tuple[int, int, int, int, int, int]


def _wheel(
    path: Path, files: dict[str, bytes], *, when: ZipTime = (2023, 11, 14, 22, 13, 20), mode: int = 0o644
) -> Artifact:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=when)
            info.external_attr = (0o100000 | mode) << 16
            zf.writestr(info, data)
    return Artifact.of(path)


def _sdist(path: Path, files: dict[str, bytes], *, mtime: float = SDE, owner: str = "root",
           mode: int = 0o644, gzip_mtime: int = SDE, reverse: bool = False) -> Artifact:  # fmt: skip
    """A .tar.gz as setuptools writes one: folders, then files, the builder's owner and times."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        names = sorted({str(Path(n).parent) for n in files} - {"."}) + sorted(files)
        for name in reversed(names) if reverse else names:
            info = tarfile.TarInfo(name)
            info.mtime, info.uname, info.gname, info.uid, info.gid = mtime, owner, owner, 1000, 1000
            if name in files:
                info.size, info.mode = len(files[name]), (0o755 if name.endswith(".sh") else mode)
                tar.addfile(info, io.BytesIO(files[name]))
            else:
                info.type, info.mode = tarfile.DIRTYPE, 0o755 if mode == 0o644 else 0o700
                tar.addfile(info)
    with (
        path.open("wb") as raw,
        gzip.GzipFile(filename=path.name, mode="wb", fileobj=raw, mtime=gzip_mtime) as gz,
    ):
        gz.write(buf.getvalue())
    return Artifact.of(path)


FILES = {"pkg-1.0/pkg/__init__.py": b"x = 1\n", "pkg-1.0/pkg/run.sh": b"#!/bin/sh\n"}


def test_identical_builds_compare_equal(tmp_path: Path) -> None:
    first = [_wheel(tmp_path / "a/pkg-1.0-py3-none-any.whl", {"pkg/__init__.py": b"x"}),
             _sdist(tmp_path / "a/pkg-1.0.tar.gz", FILES)]  # fmt: skip
    second = [_wheel(tmp_path / "b/pkg-1.0-py3-none-any.whl", {"pkg/__init__.py": b"x"}),
              _sdist(tmp_path / "b/pkg-1.0.tar.gz", FILES)]  # fmt: skip
    assert compare(first, second) == []


def test_the_comparer_names_a_wheels_times_modes_and_contents(tmp_path: Path) -> None:
    files = {"pkg/__init__.py": b"x", "pkg/py.typed": b""}
    first = _wheel(tmp_path / "a/pkg-1.0-py3-none-any.whl", files)
    later = _wheel(tmp_path / "b/pkg-1.0-py3-none-any.whl", files, when=(2024, 1, 1, 0, 0, 0), mode=0o600)
    lines = compare([first], [later])
    assert lines[0] == f"pkg-1.0-py3-none-any.whl: sha256 {first.sha256} != {later.sha256}"
    assert any(line.startswith("  time differs in 2 member(s), e.g. pkg/__init__.py") for line in lines)
    assert any("mode differs in 2 member(s)" in line and "0o100644 != 0o100600" in line for line in lines)
    changed = _wheel(tmp_path / "c/pkg-1.0-py3-none-any.whl", {"pkg/__init__.py": b"y", "pkg/py.typed": b""})
    assert any(
        "content differs in 1 member(s), e.g. pkg/__init__.py" in line for line in compare([first], [changed])
    )
    lacking = _wheel(tmp_path / "d/pkg-1.0-py3-none-any.whl", {"pkg/__init__.py": b"x"})
    assert "  only in the first: pkg/py.typed (1 member(s))" in compare([first], [lacking])


def test_the_comparer_names_an_sdists_gzip_header_owners_and_order(tmp_path: Path) -> None:
    first = _sdist(tmp_path / "a/pkg-1.0.tar.gz", FILES)
    second = _sdist(tmp_path / "b/pkg-1.0.tar.gz", FILES, owner="dev", gzip_mtime=SDE + 60, reverse=True)
    text = "\n".join(compare([first], [second]))
    assert f"gzip header mtime: {SDE} != {SDE + 60}" in text
    assert "owner differs" in text
    assert "root:root != 1000:1000 dev:dev" in text
    assert "members in another order" in text


def test_an_artifact_of_one_build_only_is_named(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path / "pkg-1.0-py3-none-any.whl", {"pkg/__init__.py": b"x"})
    sdist = _sdist(tmp_path / "pkg-1.0.tar.gz", FILES)
    assert compare([wheel, sdist], [wheel]) == ["pkg-1.0.tar.gz: only in the first build"]
    assert compare([wheel], [wheel, sdist]) == ["pkg-1.0.tar.gz: only in the second build"]


def test_the_rewrite_leaves_only_names_contents_and_executable_bits(tmp_path: Path) -> None:
    """Two sdists that differ in what setuptools takes from the machine (times with
    fractions, owner, umask, the gzip header's time and name, member order) become one."""
    first = _sdist(tmp_path / "a/pkg-1.0.tar.gz", FILES, mtime=SDE + 0.25, owner="root", gzip_mtime=SDE + 5)
    second = _sdist(tmp_path / "b/pkg-1.0.tar.gz", FILES, mtime=SDE + 9.5, owner="dev", mode=0o600,
                    gzip_mtime=SDE + 9, reverse=True)  # fmt: skip
    assert compare([first], [second]) != []
    for artifact in (first, second):
        normalise_sdist(artifact.path, SDE)
    assert compare([Artifact.of(first.path)], [Artifact.of(second.path)]) == []
    raw = first.path.read_bytes()
    assert int.from_bytes(raw[4:8], "little") == SDE
    assert raw[3] & 0x08 == 0, "the gzip header still records a file name"
    with tarfile.open(first.path) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert list(members) == sorted(members)
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members.values()} == {(SDE, 0, 0, "", "")}
    assert members["pkg-1.0/pkg/run.sh"].mode == 0o755  # git's executable bit survives
    assert members["pkg-1.0/pkg/__init__.py"].mode == 0o644
    assert members["pkg-1.0/pkg"].mode == 0o755


def test_the_rewrite_refuses_a_link(tmp_path: Path) -> None:
    path = tmp_path / "pkg-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        link = tarfile.TarInfo("pkg-1.0/link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    with pytest.raises(BuildError, match=r"'pkg-1\.0/link', neither a file nor a folder"):
        normalise_sdist(path, SDE)


def test_the_contents_check_names_a_recipe_the_wheel_left_out(tmp_path: Path) -> None:
    source = tmp_path / "source"
    for name in ("tierharness/__init__.py", "tierharness/py.typed", "tierharness/recipes/base/Dockerfile",
                 "pyproject.toml", "README.md"):  # fmt: skip
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text("x")
    package = {"tierharness/__init__.py": b"x", "tierharness/py.typed": b""}
    wheel = _wheel(tmp_path / "tierharness-0.1.0-py3-none-any.whl", {
        **package, "tierharness-0.1.0.dist-info/RECORD": b""})  # fmt: skip
    everything = ("tierharness/recipes/base/Dockerfile", "pyproject.toml", "README.md")
    sdist = _sdist(tmp_path / "tierharness-0.1.0.tar.gz",
                   {f"tierharness-0.1.0/{n}": b"x" for n in (*package, *everything)})  # fmt: skip
    assert check_contents(wheel.path, sdist.path, source) == [
        "tierharness-0.1.0-py3-none-any.whl lacks tierharness/recipes/base/Dockerfile"
    ]
    stray = _wheel(tmp_path / "stray/tierharness-0.1.0-py3-none-any.whl", {
        **package, "tierharness/recipes/base/Dockerfile": b"x", "tierharness/notes.txt": b""})  # fmt: skip
    bare = _sdist(tmp_path / "bare/tierharness-0.1.0.tar.gz",
                  {f"tierharness-0.1.0/{n}": b"x" for n in (*package, *everything[:2])})  # fmt: skip
    assert check_contents(stray.path, bare.path, source) == [
        "tierharness-0.1.0-py3-none-any.whl carries what the package does not hold: tierharness/notes.txt",
        "tierharness-0.1.0.tar.gz lacks README.md",
    ]


def test_dist_check_exits_1_and_shows_the_differences(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What makes `nox -s dist -- --check` fail: the command's exit code when the builds differ."""
    (tmp_path / "pyproject.toml").write_text("[tool.harness]\n")
    monkeypatch.setenv("HARNESS_PROJECT_ROOT", str(tmp_path))
    wheel = _wheel(tmp_path / "build/dist/pkg-1.0-py3-none-any.whl", {"pkg/__init__.py": b"x"})
    other = _wheel(tmp_path / "other/pkg-1.0-py3-none-any.whl", {"pkg/__init__.py": b"y"})
    sdist = _sdist(tmp_path / "build/dist/pkg-1.0.tar.gz", FILES)
    differing = TwoBuilds((wheel, sdist), (other, sdist), compare([wheel, sdist], [other, sdist]))
    made = Dist(wheel, sdist, "abc", SDE, tmp_path / "build/dist/dist.json", differing)
    monkeypatch.setattr(dist, "make_dist", lambda *_a, **_k: made)
    assert main(["dist", "--check"]) == 1
    out = capsys.readouterr().out
    assert f"{wheel.sha256}  build/dist/pkg-1.0-py3-none-any.whl" in out
    assert "NOT reproducible" in out
    assert "content differs in 1 member(s)" in out
    agreeing = TwoBuilds((wheel, sdist), (wheel, sdist), [])
    monkeypatch.setattr(
        dist, "make_dist", lambda *_a, **_k: Dist(wheel, sdist, "abc", SDE, made.record, agreeing)
    )
    assert main(["dist", "--check"]) == 0
