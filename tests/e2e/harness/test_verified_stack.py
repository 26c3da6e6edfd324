"""With verify-before-run on (`HARNESS_VERIFY=1`, or [tool.harness.supply] verify), the stack
runs the published image by digest from the registry, not the local tag."""

from __future__ import annotations

import json

import pytest

from tierharness.config import load_settings


def test_the_stack_runs_the_verified_image_by_digest(request: pytest.FixtureRequest) -> None:
    settings = load_settings()
    if not settings.verify_before_run:
        pytest.skip("verify-before-run is off (HARNESS_VERIFY=1 turns it on)")
    stack = request.getfixturevalue("harness_stack")
    digest = json.loads(settings.image_record.read_text())["digest"]
    repository = json.loads((settings.build_dir / "publish.json").read_text())["repository"]
    assert stack.image.startswith("127.0.0.1:")
    assert stack.image.endswith(f"/{repository}@{digest}")
    running = stack.app.get_wrapped_container()
    running.reload()
    assert running.image.id == digest  # the containerd store names images by manifest digest
