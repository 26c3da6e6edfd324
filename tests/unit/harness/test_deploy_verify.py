"""With verify-before-run, the deploy rehearsal runs the published image only once it is
verified; a failed verification refuses before anything starts."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest

from tierharness.config import load_settings
from tierharness.deploy import rehearse
from tierharness.errors import HarnessError
from tierharness.supply import stack_image as supply_run


def test_a_failed_verification_refuses_the_deploy_before_anything_starts(
    project_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_VERIFY", "1")
    monkeypatch.setenv("HARNESS_KEY_DIR", str(tmp_path))
    for name in ("cosign.key", "cosign.pub"):  # on, verification needs the pair (a stand-in here)
        (tmp_path / name).write_text("")
    started: list[str] = []

    class Built:
        image = "knowledge-hub/api-gateway:under-test"

    def refuse(*_a: Any, **_k: Any) -> str:
        raise HarnessError(
            "sha256:abc: the signature does not verify", checked="cosign verify", fix="publish"
        )

    def rehearsal(*_a: Any, **_k: Any) -> Any:
        started.append("rehearsal")
        raise AssertionError("the rehearsal started although verification failed")

    monkeypatch.setattr(rehearse, "build_image", lambda *_a, **_k: Built())
    monkeypatch.setattr(supply_run, "verified_image", refuse)
    monkeypatch.setattr(rehearse, "rehearsal", rehearsal)
    monkeypatch.setattr(rehearse, "check_port_free", lambda _port: None)
    monkeypatch.setattr(rehearse, "reaped", lambda *_a, **_k: contextlib.nullcontext())
    settings = load_settings(project_root)
    assert settings.verify_before_run
    with pytest.raises(HarnessError, match="signature does not verify"):
        rehearse.run_rehearsal(settings, ["current"], log=lambda _m: None)
    assert started == []
