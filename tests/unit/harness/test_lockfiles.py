from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tierharness.errors import LockfileError
from tierharness.imaging.lockfiles import find_stale, parse_input, parse_lockfile, require_hashes

LOCKS = ["nox", "app", "test", "harness", "lint"]


@pytest.fixture
def reqdir(tmp_path: Path, project_root: Path) -> Path:
    target = tmp_path / "requirements"
    shutil.copytree(project_root / "requirements", target)
    return target


@pytest.mark.parametrize("name", LOCKS)
def test_committed_lockfiles_pin_every_package_with_a_hash(project_root: Path, name: str) -> None:
    pins = require_hashes(project_root / "requirements" / f"{name}.txt")
    assert pins
    assert all(p.hashes and all(len(h) == 64 for h in p.hashes) for p in pins)


@pytest.mark.parametrize("name", LOCKS)
def test_committed_lockfiles_are_current(project_root: Path, name: str) -> None:
    req = project_root / "requirements"
    assert find_stale(req / f"{name}.in", req / f"{name}.txt") == []


def test_the_harness_lockfile_has_what_the_commands_run(project_root: Path) -> None:
    """The sessions of the harness's commands install `harness`, not `test`: it must pin the harness's
    dependencies, its pytest plugin's, Locust (perf, the rehearsal's load), pip (the wheelhouse)
    and setuptools (the harness's own editable install)."""
    project = tomllib.loads((project_root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["pytest"]]
    wanted += [*project["optional-dependencies"]["perf"], "pip", "setuptools"]
    pinned = {pin.name for pin in parse_lockfile(project_root / "requirements" / "harness.txt")}
    missing = sorted({canonicalize_name(Requirement(spec).name) for spec in wanted} - pinned)
    assert not missing, f"requirements/harness.in lacks {missing}: add them, then `nox -s lock -- harness`"


def test_a_pin_without_hash_is_refused_naming_the_package(reqdir: Path) -> None:
    lock = reqdir / "app.txt"
    text = lock.read_text()
    start = text.index("\nredis==")
    end = text.index("\n    # via", start)
    version_line = text[start + 1 : text.index(" \\", start)]
    lock.write_text(text[: start + 1] + version_line + text[end:])
    with pytest.raises(LockfileError) as err:
        require_hashes(lock)
    assert "redis==" in str(err.value)
    assert "nox -s lock" in str(err.value)


def test_added_package_makes_lockfile_stale(reqdir: Path) -> None:
    (reqdir / "app.in").write_text((reqdir / "app.in").read_text() + "orjson\n")
    problems = find_stale(reqdir / "app.in", reqdir / "app.txt")
    assert problems == ["orjson is required by app.in but not pinned"]


def test_added_package_in_an_included_input_makes_the_includer_stale(reqdir: Path) -> None:
    (reqdir / "app.in").write_text((reqdir / "app.in").read_text() + "orjson\n")
    assert any("orjson" in p for p in find_stale(reqdir / "test.in", reqdir / "test.txt"))


def test_removed_package_makes_lockfile_stale(reqdir: Path) -> None:
    source = reqdir / "app.in"
    source.write_text(source.read_text().replace("prometheus-client\n", ""))
    problems = find_stale(source, reqdir / "app.txt")
    assert problems == ["prometheus-client is pinned via app.in but no longer required there"]


def test_specifier_the_pin_does_not_satisfy_makes_lockfile_stale(reqdir: Path) -> None:
    source = reqdir / "app.in"
    source.write_text(source.read_text().replace("redis\n", "redis<5\n"))
    (problem,) = find_stale(source, reqdir / "app.txt")
    assert problem.startswith("redis==")
    assert "<5" in problem


def test_missing_lockfile_is_stale(reqdir: Path) -> None:
    (reqdir / "app.txt").unlink()
    assert find_stale(reqdir / "app.in", reqdir / "app.txt") == ["app.txt does not exist"]


def test_parse_input_follows_includes_and_collects_constraints(project_root: Path) -> None:
    requirements, constraints = parse_input(project_root / "requirements" / "test.in")
    names = {r.name for r in requirements}
    assert {"fastapi", "pytest", "testcontainers"} <= names
    assert [c.name for c in constraints] == ["app.txt"]


def test_an_unparseable_line_is_reported_with_its_number(tmp_path: Path) -> None:
    bad = tmp_path / "x.in"
    bad.write_text("fastapi\nnot a requirement!!\n")
    with pytest.raises(LockfileError, match=r"x.in:2"):
        parse_input(bad)


def test_a_lockfile_line_that_is_not_an_exact_pin_is_refused(tmp_path: Path) -> None:
    lock = tmp_path / "x.txt"
    lock.write_text("fastapi>=1.0 \\\n    --hash=sha256:" + "0" * 64 + "\n")
    with pytest.raises(LockfileError, match="not an exact pin"):
        parse_lockfile(lock)
