"""The distribution, built for real from the checkout's HEAD with pypa's build and setuptools
(requirements/dist.txt): two varied builds agree byte for byte, the artifacts ship the whole
package, dist.json records what was built, and the check catches a build left to the tools."""

from __future__ import annotations

import hashlib
import json
import tarfile
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from tierharness.config import load_settings
from tierharness.distribution import build_twice, make_dist
from tierharness.gitrepo import git_output, source_date_epoch

# The builds run setuptools and pypa's build, not the harness: not measured (4 builds: 12.7 s traced).
pytestmark = pytest.mark.usefixtures("untraced_children")


def test_the_check_catches_a_build_left_to_the_tools(project_root: Path, tmp_path: Path) -> None:
    """The canary: SOURCE_DATE_EPOCH unset, the caller's umask, the sdist as setuptools writes
    it. The same two varied builds that `dist --check` makes must then differ, and say where."""
    twice = build_twice(project_root, tmp_path, revision="HEAD", source_date_epoch=None)
    assert not twice.reproducible
    text = "\n".join(twice.differences)
    wheel, sdist = (a.path.name for a in twice.first)
    assert f"{wheel}: sha256 " in text
    assert f"{sdist}: sha256 " in text
    assert "gzip header mtime: " in text  # setuptools stamps the build's time on the sdist
    assert "mode differs in" in text  # umask 077 in the second build
    assert "time differs in" in text  # the wheel's zip entries take the files' mtimes


def test_dist_check_builds_twice_identically_and_records_the_hashes(
    project_root: Path, tmp_path: Path
) -> None:
    settings = replace(load_settings(project_root), build_dir=tmp_path / "build")
    (tmp_path / "build" / "dist").mkdir(parents=True)
    (tmp_path / "build" / "dist" / "stale-0.0.1.tar.gz").write_bytes(b"an old build")
    dist = make_dist(settings, check=True, log=lambda _m: None)
    assert dist.check is not None
    assert dist.check.reproducible, "\n".join(dist.check.differences)
    assert [a.sha256 for a in dist.check.second] == [dist.wheel.sha256, dist.sdist.sha256]
    assert dist.source_date_epoch == source_date_epoch(project_root)

    out = tmp_path / "build" / "dist"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["dist.json", dist.wheel.path.name, dist.sdist.path.name]
    ), "an old build's artifacts are left beside the new ones"
    record = json.loads((out / "dist.json").read_text())
    assert record["revision"] == git_output(project_root, "rev-parse", "HEAD")
    for artifact in (dist.wheel, dist.sdist):
        assert (
            record["artifacts"][artifact.path.name]["sha256"]
            == hashlib.sha256(artifact.path.read_bytes()).hexdigest()
        )
    assert record["check"]["reproducible"] is True

    with zipfile.ZipFile(dist.wheel.path) as zf:
        names = set(zf.namelist())
    recipes = set(git_output(project_root, "ls-files", "tierharness/recipes").splitlines())
    assert len(recipes) > 5
    assert {"tierharness/py.typed", "tierharness/__main__.py", *recipes} <= names
    with tarfile.open(dist.sdist.path) as tar:
        top = dist.sdist.path.name.removesuffix(".tar.gz")
        assert f"{top}/tierharness/recipes/postgres/Dockerfile" in tar.getnames()
        assert {(m.uid, m.gid, m.uname, m.mtime) for m in tar.getmembers()} == {
            (0, 0, "", record["source_date_epoch"])
        }
