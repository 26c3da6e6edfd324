"""The Docker engine: one place that connects, and fails fast and clearly when it cannot.

The engine is the one DOCKER_HOST names (with DOCKER_TLS_VERIFY and DOCKER_CERT_PATH for
TLS), else the current docker context (DOCKER_CONTEXT, or `docker context use`), else the
local socket. A context is turned into the DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH
it stands for before the first client is made (`prepare_clients`), so every client of this
process and of its children (the SDK, testcontainers, the docker CLI and buildx, the reaper)
talks to the same engine and reaches its published ports on the same host.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tierharness.config import child_env, environment
from tierharness.errors import EngineNotAnsweringError, EngineUnavailableError
from tierharness.process import run

if TYPE_CHECKING:
    import docker

__all__ = [
    "Endpoint",
    "build_cache_records",
    "builder_args",
    "cli_env",
    "docker_cli",
    "endpoint",
    "engine_client",
    "engine_connection",
    "local_image_id",
    "prepare_clients",
    "require_buildx",
]

_START_HINT = "start it with `bash scripts/provision-docker.sh` (installs and starts dockerd on Debian)"
_DEFAULT_SOCKET = "unix:///var/run/docker.sock"


@dataclass(frozen=True)
class Endpoint:
    """The engine this process talks to, as the docker CLI would resolve it."""

    host: str  # as DOCKER_HOST spells it: unix:///..., tcp://HOST:PORT, ssh://...
    tls_verify: bool = False
    cert_path: str | None = None
    context: str | None = None  # the docker context it came from, if any

    @property
    def is_local(self) -> bool:
        """A unix socket: published ports are reached on loopback."""
        return self.host.startswith("unix://")

    @property
    def hostname(self) -> str:
        """Where published ports are reached: the engine's host, loopback for a socket."""
        return "127.0.0.1" if self.is_local else (urlsplit(self.host).hostname or "127.0.0.1")

    def describe(self) -> str:
        """For messages: which setting chose this engine."""
        if self.context:
            return f"the docker context {self.context!r} (its host {self.host}, exported as DOCKER_HOST)"
        if environment().docker_host:
            return f"DOCKER_HOST={self.host}"
        return f"the default socket {self.host} (DOCKER_HOST is unset)"


_pinned: dict[str, str] = {}  # the context this process exported ("context", "host"), for messages


def endpoint() -> Endpoint:
    """The engine as the environment names it now: DOCKER_HOST, else the current context."""
    env = environment()
    if env.docker_host:
        context = _pinned["context"] if _pinned.get("host") == env.docker_host else None
        return Endpoint(env.docker_host, env.docker_tls_verify, env.docker_cert_path, context)
    context = _current_context()
    if context is not None:
        tls = context.TLSConfig
        cert_path = _context_cert_path(tls)
        return Endpoint(str(context.Host), bool(tls and tls.verify), cert_path, str(context.Name))
    return Endpoint(_DEFAULT_SOCKET)


def _current_context() -> Any:
    """The current docker context unless it is `default` (which is DOCKER_HOST or the socket)."""
    from docker.context import ContextAPI  # noqa: PLC0415  lazy: the docker SDK loads when an engine is used
    from docker.errors import DockerException  # noqa: PLC0415  lazy: the docker SDK loads when an engine is used

    try:
        context = ContextAPI.get_context(environment().docker_context)
    except DockerException as exc:
        raise EngineUnavailableError(
            f"the docker context cannot be read: {exc}",
            checked="DOCKER_CONTEXT, then `currentContext` in the docker config (DOCKER_CONFIG)",
            fix="`docker context ls` lists the contexts; `docker context use NAME` picks one, or set "
            "DOCKER_HOST to the engine's address",
        ) from exc
    if context is None:
        raise EngineUnavailableError(
            f"the docker context {environment().docker_context!r} does not exist",
            checked="DOCKER_CONTEXT against `docker context ls`",
            fix="set DOCKER_CONTEXT to one of `docker context ls`, or unset it",
        )
    if context.Name == "default" or not context.Host:
        return None
    return context


def _context_cert_path(tls: Any) -> str | None:
    """The folder of a context's ca.pem, cert.pem and key.pem (the context store keeps them
    together, under those names): what DOCKER_CERT_PATH is for the CLI and the SDK."""
    if tls is None:
        return None
    files = [tls.ca_cert, *(tls.cert or ())]
    folders = {str(Path(f).parent) for f in files if f}
    return folders.pop() if len(folders) == 1 else None


def prepare_clients() -> None:
    """Before any Docker client of this process is made: one engine for all of them, and TLS
    checked against that engine's own CA. Cheap and idempotent."""
    _pin_context()
    _trust_engine_ca()


def _pin_context() -> None:
    """A current docker context exported as DOCKER_HOST (+ TLS) into this process's environment.
    testcontainers would otherwise take the context's host but none of its TLS files, and the
    reaper, the docker CLI and buildx in child processes must see the same engine."""
    if environment().docker_host:
        return
    found = endpoint()
    if found.context is None:
        return
    os.environ["DOCKER_HOST"] = found.host
    if found.cert_path:
        os.environ["DOCKER_CERT_PATH"] = found.cert_path
        # TLS without verification (`skip-tls-verify`): DOCKER_TLS is the CLI's switch; the
        # SDK turns TLS on from DOCKER_CERT_PATH alone.
        os.environ["DOCKER_TLS_VERIFY" if found.tls_verify else "DOCKER_TLS"] = "1"
    os.environ.pop("DOCKER_CONTEXT", None)  # DOCKER_HOST says it all now
    _pinned.update(context=found.context, host=found.host)


def cli_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for the docker CLI and buildx: this process's, with `extra`. When the
    engine came from a docker context, the CLI gets that context back instead of the DOCKER_HOST
    it was exported as: a context's builder is named after it, and buildx uses that builder
    only from its own context. `extra` naming a DOCKER_HOST (another engine) is left alone."""
    env = child_env(extra)
    context = endpoint().context
    if context and "DOCKER_HOST" not in (extra or {}):
        for name in ("DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_TLS", "DOCKER_CERT_PATH"):
            env.pop(name, None)
        env["DOCKER_CONTEXT"] = context
    return env


def _trust_engine_ca() -> None:
    """Make the engine's CA (DOCKER_CERT_PATH's ca.pem) the one its TLS is checked against.

    requests replaces a session's own CA with REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE on every
    request when they are set (psf/requests#3829), as on machines behind a TLS-inspecting
    proxy: every client of a TLS engine, the SDK's and testcontainers', would then reject the
    engine's certificate. The session's own setting wins here, for Docker clients only."""
    from docker.api.client import APIClient  # noqa: PLC0415  lazy: the docker SDK loads when an engine is used

    if getattr(APIClient, "_harness_engine_ca", False):
        return
    merge = APIClient.merge_environment_settings

    def merge_keeping_engine_ca(  # noqa: PLR0917 - requests' own signature
        self: Any, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        settings: dict[str, Any] = merge(self, url, proxies, stream, verify, cert)
        if verify in (None, True) and self.verify is not True:
            settings["verify"] = self.verify  # the engine's ca.pem (or False: skip-tls-verify)
        return settings

    APIClient.merge_environment_settings = merge_keeping_engine_ca
    APIClient._harness_engine_ca = True


def engine_connection(timeout: int) -> docker.DockerClient:
    """A client for the engine, not yet checked (the reaper's: it must try even when the
    engine answers slowly). DOCKER_HOST with DOCKER_TLS_VERIFY / DOCKER_CERT_PATH, which a
    current docker context has been exported as."""
    import docker as docker_sdk  # noqa: PLC0415  lazy: the docker SDK loads when an engine is used

    prepare_clients()
    return docker_sdk.DockerClient.from_env(timeout=timeout)


def _ssl_reason(exc: BaseException) -> str | None:
    """What the TLS handshake said, when that is why the engine could not be reached. The
    SSL error sits deep in the chain (requests wraps urllib3, which wraps ssl), as a cause
    or as an argument."""
    pending: list[BaseException] = [exc]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLError):
            return str(current.reason or current)
        pending += [a for a in (current.__cause__, current.__context__) if a is not None]
        pending += [a for a in getattr(current, "args", ()) if isinstance(a, BaseException)]
        reason = getattr(current, "reason", None)  # urllib3's MaxRetryError keeps it there
        if isinstance(reason, BaseException):
            pending.append(reason)
    return None


def _unreachable(exc: BaseException, where: Endpoint, timeout: float) -> EngineUnavailableError:
    """The engine did not answer: why, as precisely as the error says, and the fix."""
    text = str(exc)
    cert_path = where.cert_path or "~/.docker"
    if "HTTP request to an HTTPS server" in text:
        return EngineUnavailableError(
            f"the Docker engine at {where.describe()} speaks TLS, and this client did not",
            checked=f"a ping without TLS: {text.splitlines()[0][:300]}",
            fix="export DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH=<folder with the engine's ca.pem and "
            "your client cert.pem and key.pem>, as for `docker --tlsverify -H ...`",
        )
    reason = _ssl_reason(exc)
    if reason is not None:
        if "VERIFY_FAILED" in reason or "HOSTNAME" in reason.upper():
            # This client does not trust the engine's certificate.
            fix = (
                f"DOCKER_CERT_PATH ({cert_path}) must hold, as ca.pem, the CA that signed the engine's "
                "certificate, and that certificate must name the host in DOCKER_HOST; check that "
                "DOCKER_HOST names the engine those files are for"
            )
        else:
            # The engine refused this client's certificate (an alert from its side).
            fix = (
                f"the cert.pem and key.pem in DOCKER_CERT_PATH ({cert_path}) must be a client certificate "
                "signed by a CA the engine trusts (its --tlscacert); check that DOCKER_HOST names the "
                "engine those files are for"
            )
        return EngineUnavailableError(
            f"the Docker engine at {where.describe()} failed the TLS handshake: {reason}",
            checked=f"TLS with the ca.pem, cert.pem and key.pem in DOCKER_CERT_PATH={cert_path}",
            fix=fix,
        )
    if where.is_local and where.context is None:
        fix = f"check DOCKER_HOST ({where.host}) names the local engine's socket, or {_START_HINT}"
    else:
        fix = (
            f"check DOCKER_HOST ({where.host}): the engine there must be running and listening, and "
            f"reachable from this machine (`docker -H {where.host} version`); raise "
            "HARNESS_ENGINE_TIMEOUT if it is only slow"
        )
    return EngineNotAnsweringError(
        f"the Docker engine is unreachable at {where.describe()}",
        checked=f"a ping to the daemon (timeout {timeout:g}s): {text.splitlines()[0][:300] if text else exc}",
        fix=fix,
    )


@cache
def engine_client() -> docker.DockerClient:
    """A connected Docker SDK client, or EngineUnavailableError saying what to fix."""
    from docker.errors import DockerException, TLSParameterError  # noqa: PLC0415  lazy: the docker SDK loads when an engine is used

    # Seconds to wait for the daemon to answer a ping: a missing daemon must be
    # reported in seconds, not after the SDK's default 60 s.
    ping_timeout = environment().engine_timeout
    where = endpoint()
    try:
        client = engine_connection(int(max(ping_timeout, 1)))
        where = endpoint()  # a context is DOCKER_HOST now
        client.ping()
    except TLSParameterError as exc:
        cert_path = environment().docker_cert_path or "~/.docker (DOCKER_CERT_PATH is unset)"
        raise EngineUnavailableError(
            f"the TLS files for the Docker engine at {where.describe()} are missing or unusable: {exc}",
            checked=f"DOCKER_TLS_VERIFY and the ca.pem, cert.pem, key.pem in DOCKER_CERT_PATH={cert_path}",
            fix="point DOCKER_CERT_PATH at a folder holding the engine's ca.pem and your client cert.pem "
            "and key.pem, or unset DOCKER_TLS_VERIFY and DOCKER_CERT_PATH for an engine without TLS; "
            "check DOCKER_HOST names the engine those files are for",
        ) from exc
    except (DockerException, OSError) as exc:
        raise _unreachable(exc, where, ping_timeout) from exc
    # Later calls (builds, image loads, log reads) may legitimately take minutes.
    client.api.timeout = 600
    return client


# A forked child (a process pool's worker) makes its own: sharing the parent's keep-alive
# connection, two processes read each other's responses off one socket.
os.register_at_fork(after_in_child=engine_client.cache_clear)


def build_cache_records(client: docker.DockerClient) -> list[dict[str, Any]]:
    """The engine's build cache records (`docker system df`'s, alone). The SDK's df() also
    sizes every image: five times slower, and it fails with a 404 when another run removes an
    image while it counts."""
    api = client.api
    answer = api._result(api._get(api._url("/system/df"), params={"type": "build-cache"}), json=True)
    return list(answer.get("BuildCache") or [])


def local_image_id(ref: str) -> str | None:
    """The id (with the containerd store: the manifest digest) of a local image, or None."""
    from docker.errors import ImageNotFound  # noqa: PLC0415  lazy: the docker SDK loads when an engine is used

    try:
        return str(engine_client().images.get(ref).id)
    except ImageNotFound:
        return None


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
        env=cli_env(),
        error=EngineUnavailableError,
    )
    return proc.stdout.strip()


def builder_args() -> list[str]:
    """`--builder NAME` when HARNESS_BUILDER names one (checked to exist), else nothing: buildx
    then uses the engine's own builder, on the engine DOCKER_HOST names."""
    name = environment().builder
    if not name:
        return []
    _check_builder(name)
    return ["--builder", name]


@cache
def _check_builder(name: str) -> None:
    fix = (
        "pick one of `docker buildx ls`, create it (`docker buildx create --name NAME ...`), or unset "
        "HARNESS_BUILDER to build on the engine DOCKER_HOST names"
    )
    docker = docker_cli()
    named = run(
        [docker, "buildx", "inspect", name],
        what=f"the buildx builder HARNESS_BUILDER={name}",
        fix=fix,
        env=cli_env(),
        error=EngineUnavailableError,
        timeout=60,
    )
    current = run(
        [docker, "buildx", "inspect"], what="the current buildx builder", fix=fix, env=cli_env(), check=False
    )
    driver, current_name = _inspected(named.stdout, "Driver"), _inspected(current.stdout, "Name")
    if driver == "docker" and current_name != name:
        # A docker context's own builder: buildx refuses it from any other context
        # ("use `docker --context=NAME buildx`"), after the build has been prepared.
        raise EngineUnavailableError(
            f"HARNESS_BUILDER={name} is the builder of the docker context {name!r}, which buildx only "
            "uses from that context",
            checked=f"docker buildx inspect {name}: driver docker; the current builder is {current_name}",
            fix=f"reach that engine through the context itself (DOCKER_CONTEXT={name}, DOCKER_HOST unset), "
            "name a builder of another driver (docker-container, remote, kubernetes), or unset "
            "HARNESS_BUILDER",
        )


def _inspected(text: str, field: str) -> str | None:
    """A field of `docker buildx inspect`'s first block (`Name:   default`)."""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == field:
            return value.strip() or None
    return None


def container_log(container: Any, tail: int = 60) -> str:
    """A container's last log lines, for an error message; never raises."""
    with contextlib.suppress(Exception):  # the log is a courtesy: never mask the real failure
        return str(container.logs(tail=tail).decode("utf-8", "replace")).strip() or "(empty log)"
    return "(no log)"


def wait_until_ready(container: Any, probe: Callable[[], str | None], timeout: float) -> str | None:
    """Ask `probe` (None when ready, else why not) every 0.1 s until it says ready, the
    container exits, or `timeout` passes. None when ready, else the last reason."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        container.reload()
        if container.status in ("exited", "dead"):
            return f"the container exited ({container.attrs.get('State', {}).get('ExitCode')})"
        why = probe()
        if why is None:
            return None
        last = why
        time.sleep(0.1)
    return last
