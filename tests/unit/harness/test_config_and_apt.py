from __future__ import annotations

from pathlib import Path

import pytest

from tierharness.config import load_settings
from tierharness.errors import HarnessError, ImageError
from tierharness.imaging.apt import debian_mirror
from tierharness.imaging.buildx import failed_step


def test_project_settings_declare_the_harness_own_logical_images(project_root: Path) -> None:
    settings = load_settings(project_root)
    assert set(settings.images) == {
        "base",
        "postgres",
        "redis",
        "registry",
        "engine",
        "haproxy",
        "prometheus",
    }
    assert settings.image("postgres").depends_on == "base"
    assert settings.image("base").source_date_epoch > 0


def test_registry_reference_can_be_pinned_from_the_environment(
    project_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_IMAGE_POSTGRES_REF", "postgres:17@sha256:" + "a" * 64)
    assert load_settings(project_root).image("postgres").ref.endswith("a" * 64)


def test_an_image_of_unknown_kind_is_refused(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.harness.images.x]\nref = "x"\nlocal = "x"\nrecipe = "x"\nkind = "magic"\n'
    )
    with pytest.raises(HarnessError, match='kind = "rootfs"'):
        load_settings(tmp_path)


def test_mirror_comes_from_deb822_sources_skipping_security(tmp_path: Path) -> None:
    d = tmp_path / "sources.list.d"
    d.mkdir()
    (d / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
    )
    assert debian_mirror(tmp_path) == "http://mirror.example/debian"


def test_mirror_comes_from_one_line_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text("deb [arch=amd64] http://m.example/debian bookworm main\n")
    assert debian_mirror(tmp_path) == "http://m.example/debian"


def test_no_mirror_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HARNESS_DEBIAN_MIRROR", raising=False)
    (tmp_path / "sources.list.d").mkdir()
    with pytest.raises(ImageError, match="HARNESS_DEBIAN_MIRROR"):
        debian_mirror(tmp_path)


BUILD_LOG = """\
#5 [deps 1/3] RUN python3 -m venv /opt/venv
#5 DONE 1.2s

#6 [deps 2/3] RUN pip install --require-hashes -r app.txt
#6 0.512 ERROR: THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE.
#6 ERROR: process "/bin/sh -c pip install" did not complete successfully: exit code: 1
"""


def test_failed_step_names_stage_position_and_instruction() -> None:
    assert failed_step(BUILD_LOG) == ("deps", "2/3", "RUN pip install --require-hashes -r app.txt")


def test_failed_step_is_none_when_no_step_failed() -> None:
    assert failed_step("#5 [deps 1/3] RUN true\n#5 DONE 0.1s\n") is None
