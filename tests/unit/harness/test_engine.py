from __future__ import annotations

import contextlib
import socket
import time
from types import SimpleNamespace

import pytest
from docker.errors import APIError

from tierharness.engine import client as engine
from tierharness.engine import naming
from tierharness.errors import EngineUnavailableError


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
    assert "DOCKER_HOST=tcp://127.0.0.1:1" in message
    assert "missing or unusable" in message
    assert "fix: point DOCKER_CERT_PATH" in message


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


def test_an_engine_that_accepts_but_never_answers_names_docker_host_and_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A listener that never replies (a hung daemon, a port forwarded into the void): the ping
    times out after HARNESS_ENGINE_TIMEOUT, and the error says where it looked and what to do."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # connections complete in the kernel; nothing ever reads or answers
        host = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
        monkeypatch.setenv("DOCKER_HOST", host)
        monkeypatch.delenv("DOCKER_TLS_VERIFY", raising=False)
        monkeypatch.delenv("DOCKER_CERT_PATH", raising=False)
        monkeypatch.setenv("HARNESS_ENGINE_TIMEOUT", "1")
        engine.engine_client.cache_clear()
        started = time.monotonic()
        try:
            with pytest.raises(EngineUnavailableError) as err:
                engine.engine_client()
        finally:
            engine.engine_client.cache_clear()
    assert time.monotonic() - started < 10
    message = str(err.value)
    assert f"unreachable at DOCKER_HOST={host}" in message
    assert "timeout 1s" in message
    assert f"fix: check DOCKER_HOST ({host})" in message
    assert "HARNESS_ENGINE_TIMEOUT" in message


@pytest.mark.parametrize(
    ("errors", "calls", "named"),
    [
        # Another run named the tag in between, twice: the third attempt names it.
        (["image ...: already exists", "image ...: already exists", ""], 3, True),
        # Any other failure is the engine's answer: raised at once, with what it said.
        (["No such image: sha256:abc"], 1, False),
    ],
)
def test_naming_an_image_outlasts_a_concurrent_naming_only(
    monkeypatch: pytest.MonkeyPatch, errors: list[str], calls: int, named: bool
) -> None:
    answers = iter(errors)
    seen: list[tuple[str, str]] = []

    class Image:
        id = "sha256:abc"

        def tag(self, repo: str, tag: str) -> None:
            seen.append((repo, tag))
            error = next(answers)
            if error:
                raise APIError(error)

    client = SimpleNamespace(images=SimpleNamespace(get=lambda _ref: Image()))
    monkeypatch.setattr(naming, "engine_client", lambda: client)
    monkeypatch.setattr(naming, "local_image_id", lambda _ref: None)  # the tag named nothing before
    with contextlib.nullcontext() if named else pytest.raises(APIError, match="No such image: sha256:abc"):
        naming.tag_image("sha256:abc", "harness/x:1")
    assert seen == [("harness/x", "1")] * calls
