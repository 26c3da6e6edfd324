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


def test_missing_tls_files_name_docker_host_and_the_fix(
    tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:1")
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    monkeypatch.setenv("DOCKER_CERT_PATH", f"{tmp_path}/no-such-certs")
    engine.engine_client.cache_clear()
    try:
        with pytest.raises(EngineUnavailableError) as err:
            engine.engine_client()
    finally:
        engine.engine_client.cache_clear()
    message = str(err.value)
    assert "tcp://127.0.0.1:1" in message
    assert "DOCKER_CERT_PATH" in message


def test_a_remote_engine_that_does_not_answer_names_docker_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:1")
    monkeypatch.delenv("DOCKER_TLS_VERIFY", raising=False)
    monkeypatch.setenv("HARNESS_ENGINE_TIMEOUT", "2")
    engine.engine_client.cache_clear()
    try:
        with pytest.raises(EngineUnavailableError, match=r"check DOCKER_HOST \(tcp://127.0.0.1:1\)"):
            engine.engine_client()
    finally:
        engine.engine_client.cache_clear()
