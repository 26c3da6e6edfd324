"""`harness doctor` on this repository, against the real engine and against none."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tierharness.__main__ import main
from tierharness.engine import client as engine


@pytest.fixture
def fresh_engine_client() -> Iterator[None]:
    """The cached client is dropped before and after, so DOCKER_HOST is read anew both times."""
    engine.engine_client.cache_clear()
    yield
    engine.engine_client.cache_clear()


def _rows(out: str) -> dict[str, str]:
    """CHECK -> STATUS, from the table's rows (fix lines start with blanks)."""
    rows = {}
    for line in out.splitlines()[1:]:
        if line[:4] in ("PASS", "WARN", "FAIL"):
            status, rest = line.split(None, 1)
            rows[rest.split("  ")[0].strip()] = status
    return rows


def test_doctor_on_this_repository_reports_nothing_failing(
    project_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HARNESS_PROJECT_ROOT", str(project_root))
    assert main(["doctor"]) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    rows = _rows(out)
    assert "FAIL" not in rows.values(), out
    for check in ("engine", "engine version", "image store", "buildx", "disk space", "migrate command"):
        assert rows[check] == "PASS", out
    assert {"image base", "image postgres", "image redis"} <= rows.keys()
    assert out.splitlines()[-1].endswith(" 0 FAIL")


def test_doctor_without_an_engine_fails_it_and_names_the_fix(
    project_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    fresh_engine_client: None,
) -> None:
    monkeypatch.setenv("HARNESS_PROJECT_ROOT", str(project_root))
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    engine.engine_client.cache_clear()
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    rows = _rows(out)
    assert rows["engine"] == "FAIL", out
    assert "no answer at unix:///nonexistent.sock" in out
    assert "DOCKER_HOST=unix:///nonexistent.sock" in out
    assert "bash scripts/provision-docker.sh" in out
    # What needs no engine is still checked.
    assert rows["migrate command"] == "PASS", out
