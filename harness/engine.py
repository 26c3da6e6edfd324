"""The Docker engine: one place that connects, and fails fast and clearly when it cannot."""

from __future__ import annotations

import shutil
from functools import cache
from typing import TYPE_CHECKING

from harness.config import environment
from harness.errors import EngineUnavailableError
from harness.process import run

if TYPE_CHECKING:
    import docker

__all__ = ["docker_cli", "engine_client", "local_image_id", "require_buildx", "tag_image"]

_START_HINT = "start it with `bash scripts/provision-docker.sh` (installs and starts dockerd on Debian)"


def _where() -> str:
    return environment().docker_host or "unix:///var/run/docker.sock"


def _connect(timeout: int) -> docker.DockerClient:
    """DOCKER_HOST with DOCKER_TLS_VERIFY / DOCKER_CERT_PATH (the SDK reads them), else the
    current docker context (`docker context use ...`), else the local socket."""
    import docker as docker_sdk
    from docker.context import ContextAPI

    if environment().docker_host is None:
        context = ContextAPI.get_current_context()
        if context is not None and context.Name != "default" and context.Host:
            return docker_sdk.DockerClient(base_url=context.Host, tls=context.TLSConfig, timeout=timeout)
    return docker_sdk.DockerClient.from_env(timeout=timeout)


@cache
def engine_client() -> docker.DockerClient:
    """A connected Docker SDK client, or EngineUnavailableError saying how to start the engine."""
    from docker.errors import DockerException, TLSParameterError

    # Seconds to wait for the daemon to answer a ping: a missing daemon must be
    # reported in seconds, not after the SDK's default 60 s.
    ping_timeout = environment().engine_timeout
    try:
        client = _connect(int(max(ping_timeout, 1)))
        client.ping()
    except TLSParameterError as exc:
        raise EngineUnavailableError(
            f"the TLS settings for the Docker engine at {_where()} are unusable: {exc}",
            checked="DOCKER_TLS_VERIFY and the ca.pem, cert.pem, key.pem in DOCKER_CERT_PATH",
            fix="point DOCKER_CERT_PATH at a folder holding the engine's ca.pem and a client cert.pem "
            "and key.pem, or unset DOCKER_TLS_VERIFY for an engine without TLS",
        ) from exc
    except DockerException as exc:
        raise EngineUnavailableError(
            f"the Docker engine is unreachable at {_where()}",
            checked=f"a ping to the daemon (timeout {ping_timeout:g}s): {exc}",
            fix=f"check DOCKER_HOST ({_where()}), or {_START_HINT}",
        ) from exc
    # Later calls (builds, image loads, log reads) may legitimately take minutes.
    client.api.timeout = 600
    return client


def local_image_id(ref: str) -> str | None:
    """The id (with the containerd store: the manifest digest) of a local image, or None."""
    from docker.errors import ImageNotFound

    try:
        return str(engine_client().images.get(ref).id)
    except ImageNotFound:
        return None


def tag_image(source: str, target: str) -> None:
    repo, _, tag = target.rpartition(":")
    engine_client().images.get(source).tag(repo, tag)


def docker_cli() -> str:
    path = shutil.which("docker")
    if path is None:
        raise EngineUnavailableError(
            "the docker command-line client is not installed",
            checked="`docker` on PATH",
            fix=_START_HINT,
        )
    return path


@cache
def require_buildx() -> str:
    """The buildx version string; buildx >= 0.13 is what makes `rewrite-timestamp` available."""
    engine_client()
    proc = run(
        [docker_cli(), "buildx", "version"],
        what="docker buildx",
        fix=_START_HINT,
        error=EngineUnavailableError,
    )
    return proc.stdout.strip()
