"""`harness rotate-secrets` end to end: both rotations under load, 0 failed requests, the old
key refused and the old database password refused (each checked by the command itself)."""

from __future__ import annotations

import json

import pytest

from tierharness.config import load_settings
from tierharness.deploy.rotate import run_rotation


def test_rotation_under_load_fails_no_request(capsys: pytest.CaptureFixture[str]) -> None:
    settings = load_settings()
    code = run_rotation(settings, log=lambda _m: None)
    output = capsys.readouterr().out
    assert code == 0, output
    timeline = json.loads((settings.build_dir / "rotate" / "timeline.json").read_text())
    steps = [e["step"] for e in timeline["events"]]
    for step in (
        "api keys: new keys accepted beside the old",
        "api keys: old keys removed and refused (403)",
        "database: the service's pool reconnected with the new password",
        "database: the old password is refused",
    ):
        assert step in steps, output
    assert ", 0 failed," in timeline["summary"]["requests"]
