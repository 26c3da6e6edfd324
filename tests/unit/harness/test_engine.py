from __future__ import annotations

import time

import pytest

from harness import engine
from harness.errors import EngineUnavailableError


def test_an_unreachable_daemon_fails_fast_and_says_how_to_start_it(
    tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such.sock")
    engine.engine_client.cache_clear()
    started = time.monotonic()
    with pytest.raises(EngineUnavailableError) as err:
        engine.engine_client()
    engine.engine_client.cache_clear()
    assert time.monotonic() - started < 10
    message = str(err.value)
    assert "unreachable" in message
    assert "no-such.sock" in message
    assert "provision-docker.sh" in message
