from __future__ import annotations

import contextlib
import shutil
import subprocess
import subprocess as sp
from pathlib import Path

import pytest

from tierharness.config import load_settings
from tierharness.errors import LockfileError
from tierharness.imaging import buildx
from tierharness.imaging.project_image import build_image, context_digest
from tierharness.imaging.wheelhouse import fill_wheelhouse, manylinux_platforms


@pytest.fixture
def project(tmp_path: Path, project_root: Path) -> Path:
    shutil.copy2(project_root / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(project_root / "requirements", tmp_path / "requirements")
    return tmp_path


def _strip_hashes_of(lock: Path, package: str) -> None:
    lines = lock.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{package}=="))
    end = next(i for i in range(start + 1, len(lines)) if not lines[i].strip().startswith("--hash"))
    lines[start:end] = [lines[start].split(" ")[0]]
    lock.write_text("\n".join(lines) + "\n")


def test_a_lockfile_line_without_hash_is_refused_before_building(project: Path) -> None:
    _strip_hashes_of(project / "requirements" / "app.txt", "uvicorn")
    with pytest.raises(LockfileError, match=r"pins without a hash: uvicorn=="):
        build_image(load_settings(project), log=lambda _m: None)


def test_the_wheelhouse_refuses_unhashed_lockfiles_too(project: Path) -> None:
    _strip_hashes_of(project / "requirements" / "test.txt", "pytest")
    with pytest.raises(LockfileError, match=r"pytest=="):
        fill_wheelhouse([project / "requirements" / "test.txt"], project / "wh")
    assert not (project / "wh").exists()


def test_build_config_comes_from_pyproject(project_root: Path) -> None:
    config = load_settings(project_root).build
    assert config.dockerfile == "Dockerfile.enterprise"
    assert config.target == "production"
    assert config.lockfiles == ("app", "test")


def test_manylinux_platforms_cover_every_older_glibc() -> None:
    tags = manylinux_platforms((2, 41), "x86_64")
    assert tags[0] == "manylinux_2_41_x86_64"
    assert "manylinux_2_17_x86_64" in tags
    assert "manylinux2014_x86_64" in tags
    assert tags[-1] == "manylinux1_x86_64"


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git (not in the image's test stage)")
def test_context_digest_changes_with_content_only(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "services").mkdir()
    (tmp_path / "services" / "a.py").write_text("x = 1\n")
    first = context_digest(tmp_path, ["services"])
    (tmp_path / "services" / "a.py").touch()
    assert context_digest(tmp_path, ["services"]) == first
    (tmp_path / "services" / "a.py").write_text("x = 2\n")
    assert context_digest(tmp_path, ["services"]) != first


def test_buildkit_cache_locations_reach_buildx_only_when_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[list[str]] = []

    def fake_run(argv: list[str], **_kw: object) -> sp.CompletedProcess[str]:
        seen.append(list(argv))
        return sp.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(buildx, "run", fake_run)
    monkeypatch.setattr(buildx, "require_buildx", lambda: "buildx v0.13")
    monkeypatch.setattr(buildx, "docker_cli", lambda: "docker")
    buildx.buildx_build(tmp_path, cache_from="type=gha", cache_to="type=gha,mode=max")
    buildx.buildx_build(tmp_path)
    assert seen[0][seen[0].index("--cache-from") : seen[0].index("--cache-from") + 2] == [
        "--cache-from",
        "type=gha",
    ]
    assert "--cache-to" in seen[0]
    assert "--cache-from" not in seen[1]  # off by default: nothing is sent anywhere


def test_a_clean_build_records_its_cache_apart_for_the_next_prune(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded: list[bool] = []

    def recording(*, clean: bool = False) -> contextlib.AbstractContextManager[None]:
        recorded.append(clean)
        return contextlib.nullcontext()

    monkeypatch.setattr(buildx, "recording_build_cache", recording)
    monkeypatch.setattr(buildx, "run", lambda argv, **_kw: sp.CompletedProcess(argv, 0, "", ""))
    monkeypatch.setattr(buildx, "require_buildx", lambda: "buildx v0.13")
    monkeypatch.setattr(buildx, "docker_cli", lambda: "docker")
    monkeypatch.delenv("HARNESS_BUILDER", raising=False)
    buildx.buildx_build(tmp_path, no_cache=True)
    buildx.buildx_build(tmp_path)
    assert recorded == [True, False]
