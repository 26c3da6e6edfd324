"""Bad build inputs: a wheel whose bytes do not match its hash never becomes an image, and the
error names the wheel and the fix before anything is built."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tierharness.config import StackConfig, load_settings
from tierharness.engine.client import engine_client
from tierharness.engine.image_list import image_summaries
from tierharness.engine.labels import RunIdentity
from tierharness.errors import BuildError, ReadinessError
from tierharness.gitrepo import snapshot
from tierharness.imaging.project_image import build_image
from tierharness.runtime.stack import start_stack


def test_a_tampered_wheel_is_named_before_the_build_and_no_image_is_made(
    tmp_path: Path, project_root: Path
) -> None:
    clone = snapshot(project_root, tmp_path / "clone")
    pyproject = clone / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            'image = "knowledge-hub/api-gateway"', 'image = "harness-test/tampered"'
        )
    )
    # The real wheelhouse (built by the session), with one wheel's bytes changed.
    source = load_settings(project_root).build_dir / "wheelhouse"
    if not (source / ".stamp.json").exists():
        pytest.skip("needs the wheelhouse of a previous `nox -s build`")
    wheelhouse = clone / "build" / "wheelhouse"
    shutil.copytree(source, wheelhouse)
    victim = next(wheelhouse.glob("redis-*.whl"))
    victim.write_bytes(victim.read_bytes() + b"tampered")

    with pytest.raises(BuildError) as err:
        build_image(load_settings(clone), force=True, log=lambda _m: None)

    message = str(err.value)
    assert f"{victim.name} matches no hash in app.txt, test.txt" in message
    assert "delete it" in message
    assert "image build" not in message  # refused before BuildKit ran
    assert not (clone / "build" / "image.json").exists()
    assert image_summaries(engine_client(), name="harness-test/tampered") == []


def test_a_service_that_never_becomes_healthy_fails_with_its_logs(harness_stack: Any) -> None:
    """Same image, an environment without API keys: the service refuses to start."""
    settings = load_settings()
    broken = settings.stack
    broken = StackConfig(
        port=broken.port,
        health_timeout=30,
        env={k: v for k, v in broken.env.items() if k != "API_KEYS"},
        api_key_names=broken.api_key_names,
    )
    identity = RunIdentity(harness_stack.identity.run_id, "broken", harness_stack.identity.owner_pid)
    with pytest.raises(ReadinessError) as err:
        start_stack(
            harness_stack.image,
            settings.image("postgres").local,
            settings.image("redis").local,
            identity,
            broken,
        )
    message = str(err.value)
    assert "did not become healthy" in message
    assert "API_KEYS (or API_KEYS_FILE) is required" in message  # the service's own words, from its log
    leftovers = engine_client().containers.list(
        all=True, ignore_removed=True, filters={"label": ["harness.worker=broken"]}
    )
    assert [c for c in leftovers if c.labels.get("harness.run-id") == identity.run_id] == []
