"""How the engine and the builder are chosen: a docker context stands for DOCKER_HOST and its
TLS files, HARNESS_BUILDER names a buildx builder, and bad values say what to fix; a forked
process gets a client of its own. Real docker CLI and buildx, on a private DOCKER_CONFIG; no
engine is started."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from tests.second_engine import certificates
from tierharness.engine import client as engine
from tierharness.errors import EngineUnavailableError

_ENGINE_VARIABLES = ("DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_TLS", "DOCKER_CERT_PATH", "DOCKER_CONTEXT")


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private DOCKER_CONFIG, no engine variables; the harness's caches and the context it
    exported are forgotten before and after. The engine variables are restored by hand:
    monkeypatch forgets a variable that was unset when it deleted it, and the harness's export
    of a context would outlive the test (and send later tests to its engine)."""
    saved = {name: os.environ.get(name) for name in _ENGINE_VARIABLES}
    folder = tmp_path / "docker-config"
    folder.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(folder))
    for name in _ENGINE_VARIABLES:
        os.environ.pop(name, None)
    monkeypatch.delenv("HARNESS_BUILDER", raising=False)
    _forget()
    try:
        yield folder
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        _forget()


def _forget() -> None:
    engine.engine_client.cache_clear()
    engine._check_builder.cache_clear()
    engine._pinned.clear()


def _docker(*args: str) -> None:
    subprocess.run(["docker", *args], check=True, capture_output=True)


def test_a_docker_context_is_exported_as_docker_host_with_its_tls_files(
    docker_config: Path, tmp_path: Path
) -> None:
    tls = certificates(tmp_path / "certs")
    files = ",".join(f"{k}={tls.client_dir}/{k}.pem" for k in ("ca", "cert", "key"))
    _docker("context", "create", "far-away", "--docker", f"host=tcp://build-host.invalid:2376,{files}")
    _docker("context", "use", "far-away")

    found = engine.endpoint()
    assert found.context == "far-away"
    assert found.host == "tcp://build-host.invalid:2376"
    assert not found.is_local
    assert found.hostname == "build-host.invalid"  # where its published ports are reached
    engine.prepare_clients()
    assert os.environ["DOCKER_HOST"] == "tcp://build-host.invalid:2376"
    assert os.environ["DOCKER_TLS_VERIFY"] == "1"
    cert_path = Path(os.environ["DOCKER_CERT_PATH"])
    assert (cert_path / "ca.pem").read_bytes() == (tls.client_dir / "ca.pem").read_bytes()
    assert {p.name for p in cert_path.iterdir()} >= {"ca.pem", "cert.pem", "key.pem"}
    # Messages still say where the engine came from.
    assert "the docker context 'far-away'" in engine.endpoint().describe()


def test_a_missing_docker_context_is_named(docker_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_CONTEXT", "no-such-context")
    with pytest.raises(EngineUnavailableError) as err:
        engine.endpoint()
    assert "no-such-context" in str(err.value)
    assert "docker context ls" in str(err.value)


def test_harness_builder_is_passed_to_buildx(docker_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert engine.builder_args() == []
    monkeypatch.setenv("HARNESS_BUILDER", "default")  # the local engine's own builder
    assert engine.builder_args() == ["--builder", "default"]


def test_an_unknown_harness_builder_names_the_setting_and_the_fix(
    docker_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_BUILDER", "no-such-builder")
    with pytest.raises(EngineUnavailableError) as err:
        engine.builder_args()
    message = str(err.value)
    assert "HARNESS_BUILDER=no-such-builder" in message  # pragma: allowlist secret
    assert "docker buildx ls" in message


def test_another_contexts_builder_is_refused_before_any_build(
    docker_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # buildx would only refuse it once the build has been prepared ("use docker --context").
    _docker("context", "create", "elsewhere", "--docker", "host=unix:///var/run/docker.sock")
    monkeypatch.setenv("HARNESS_BUILDER", "elsewhere")
    with pytest.raises(EngineUnavailableError) as err:
        engine.builder_args()
    message = str(err.value)
    assert "HARNESS_BUILDER=elsewhere is the builder of the docker context 'elsewhere'" in message
    assert "DOCKER_CONTEXT=elsewhere" in message


def test_the_current_contexts_builder_is_accepted_though_the_context_was_exported(
    docker_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The context is DOCKER_HOST for the harness's clients now; buildx gets the context back.
    _docker("context", "create", "elsewhere", "--docker", "host=unix:///var/run/docker.sock")
    _docker("context", "use", "elsewhere")
    engine.prepare_clients()
    assert os.environ["DOCKER_HOST"] == "unix:///var/run/docker.sock"
    monkeypatch.setenv("HARNESS_BUILDER", "elsewhere")
    assert engine.builder_args() == ["--builder", "elsewhere"]
    assert engine.cli_env()["DOCKER_CONTEXT"] == "elsewhere"
    assert "DOCKER_HOST" not in engine.cli_env()


def _info_keys(_: int) -> int:
    return len(engine.engine_client().info())


def test_a_forked_child_talks_to_the_engine_on_a_connection_of_its_own() -> None:
    """A process pool forked from a process whose client keeps a connection alive: each child
    asks the engine several times and reads only its own answers (sharing the parent's
    connection, two children read each other's responses off one socket)."""
    engine.engine_client().info()  # a pooled keep-alive connection, which the fork copies
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork")) as pool:
        answers = list(pool.map(_info_keys, range(8)))
    assert len(answers) == 8
    assert min(answers) > 10  # a whole `docker info` each time
