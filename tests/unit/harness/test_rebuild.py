"""`repro-check --independent` without root: the second engine would be a container, but the
base's rootfs is still made by mmdebstrap --mode=root, so it stops before starting anything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tierharness.config import load_settings
from tierharness.errors import HarnessError
from tierharness.supply import rebuild


def test_without_root_it_names_mmdebstrap_and_the_fix_before_starting_an_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.harness]\n")
    settings = load_settings(tmp_path)
    settings.image_record.parent.mkdir(parents=True)
    settings.image_record.write_text(json.dumps({"digest": "sha256:" + "a" * 64}))
    monkeypatch.setattr(rebuild.os, "geteuid", lambda: 1001)

    def no_engine(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a second engine was started")

    monkeypatch.setattr(rebuild, "second_engine", no_engine)
    with pytest.raises(HarnessError) as err:
        rebuild.independent_rebuild(settings, log=lambda _m: None)
    message = str(err.value)
    assert "mmdebstrap --mode=root" in message
    assert "euid 1001" in message
    assert "sudo .venv/bin/nox -s repro-check -- --independent" in message
