"""A real OCI registry on loopback: Debian's docker-registry (distribution 2.8) in a labelled
container built offline, on 127.0.0.1 at a random port, with basic auth whose credentials
are made for this run only, its storage in the state directory.

The storage outlives the run (what `harness publish` pushed is what the e2e stack verifies
later); the container and the credentials do not. Being a labelled container, it is removed
by its owner, or by the run's reaper when the run is killed.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import secrets
import shutil
import socket
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from tierharness.config import Settings
from tierharness.engine.client import container_log, engine_client, wait_until_ready
from tierharness.engine.labels import RunIdentity
from tierharness.errors import HarnessError
from tierharness.imaging.resolution import resolve_images
from tierharness.scratch import make_scratch, scratch_folder

if TYPE_CHECKING:
    from docker import DockerClient

__all__ = ["Registry", "RegistryError", "running_registry", "start_registry"]

_PORT = 5000
_CONFIG = """\
version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: /var/lib/registry
  delete:
    enabled: true
http:
  addr: 0.0.0.0:5000
auth:
  htpasswd:
    realm: harness
    path: /tmp/htpasswd
"""


class RegistryError(HarnessError):
    """The registry did not start, or refused a request."""


@dataclass
class Registry:
    """A running registry: `host` is `127.0.0.1:PORT`. The password is never in a repr."""

    host: str
    container_id: str
    storage: Path
    user: str
    password: str = field(repr=False)
    _secrets: Path = field(repr=False, default=Path())

    @property
    def port(self) -> int:
        return int(self.host.rsplit(":", 1)[1])

    def reference(self, repository: str, digest: str) -> str:
        return f"{self.host}/{repository}@{digest}"

    def auth_header(self) -> str:
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        return f"Basic {token}"

    @contextlib.contextmanager
    def docker_config(self) -> Iterator[Path]:
        """A private DOCKER_CONFIG folder holding this registry's credentials, for cosign and
        the docker client: the user's own ~/.docker/config.json is never written."""
        with scratch_folder("docker-config") as folder:  # private (0700), gone with the block
            token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            config = folder / "config.json"
            config.touch(mode=0o600)
            config.write_text(json.dumps({"auths": {self.host: {"auth": token}}}))
            yield folder

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | IO[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: bool = True,
    ) -> tuple[int, dict[str, str], bytes]:
        """One HTTP request to the registry API: (status, headers in lower case, body)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            sent = dict(headers or {})
            if auth:
                sent["Authorization"] = self.auth_header()
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            data = response.read()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, data
        except OSError as exc:
            raise RegistryError(
                f"the registry at {self.host} did not answer {method} {path}: {exc}",
                checked=f"container {self.container_id[:12]}",
                fix="read its log (docker logs); it may have stopped",
            ) from exc
        finally:
            conn.close()

    def logs(self) -> str:
        with contextlib.suppress(Exception):
            raw = engine_client().containers.get(self.container_id).logs(tail=60)
            return str(raw.decode("utf-8", "replace"))
        return "(no log)"

    def close(self) -> None:
        with contextlib.suppress(Exception):
            engine_client().containers.get(self.container_id).remove(force=True, v=True)
        shutil.rmtree(self._secrets, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_registry(
    settings: Settings,
    identity: RunIdentity,
    *,
    log: Callable[[str], None] = lambda _m: None,
) -> Registry:
    """Start the registry and wait until it answers with auth required; on any failure the
    container is removed and the error carries its log."""
    from docker.errors import DockerException  # noqa: PLC0415  lazy: start-up time, the docker SDK loads requests

    config = settings.supply
    # Never pulled: the recipe's entrypoint and paths are what this module relies on.
    (image,) = resolve_images(settings, [config.registry_image], pull=False, log=log)
    storage = settings.state_dir / "registry" / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    folder, user, password = _run_credentials()
    port = config.registry_port or _free_port()
    client = engine_client()
    container = None
    try:
        container = _create_container(
            client, image.ref, identity=identity, port=port, storage=storage, credentials=folder
        )
        try:
            container.start()
        except DockerException as exc:
            raise RegistryError(
                f"the registry could not start on 127.0.0.1:{port}: {exc}",
                checked=f"{image.ref} publishing 127.0.0.1:{port}; its log:\n{container_log(container)}",
                fix="free that port, or set [tool.harness.supply] registry-port = 0 for a random one",
            ) from None
        registry = Registry(f"127.0.0.1:{port}", container.id, storage, user, password, folder)
        _wait_ready(registry, container, config.registry_timeout)
        log(f"registry ready at {registry.host} (storage {storage})")
        return registry
    except BaseException:
        if container is not None:
            with contextlib.suppress(Exception):
                container.remove(force=True, v=True)
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _run_credentials() -> tuple[Path, str, str]:
    """(folder, user, password): credentials for this run only, with the registry's config, in
    a private folder to be mounted read-only: not in the container's environment, where
    `docker inspect` would show them."""
    folder = make_scratch("registry")  # private (0700)
    user, password = f"harness-{secrets.token_hex(4)}", secrets.token_urlsafe(24)
    for name, text in (("user", user), ("password", password), ("config.yml", _CONFIG)):
        (folder / name).touch(mode=0o600)
        (folder / name).write_text(text)
    return folder, user, password


def _create_container(
    client: DockerClient, image: str, *, identity: RunIdentity, port: int, storage: Path, credentials: Path
) -> Any:
    """The registry's container, labelled for the run, publishing `port` on 127.0.0.1 only."""
    return client.containers.create(
        image,
        name=identity.name("registry"),
        labels=identity.labels("registry"),
        ports={f"{_PORT}/tcp": ("127.0.0.1", port)},
        volumes={
            str(storage.resolve()): {"bind": "/var/lib/registry", "mode": "rw"},
            str(credentials): {"bind": "/run/harness-registry", "mode": "ro"},
        },
        command=["docker-registry", "serve", "/run/harness-registry/config.yml"],
        # As the invoking user: the storage is a folder of theirs, which a registry running
        # as root filled with files that user could neither change nor remove.
        user=f"{os.getuid()}:{os.getgid()}",
        detach=True,
    )


def _wait_ready(registry: Registry, container: Any, timeout: float) -> None:
    """Ready means: the API answers, refuses a request without credentials, and accepts ours.
    A different server already on the port fails the second or third check."""

    def probe() -> str | None:
        try:
            anonymous, _, _ = registry.request("GET", "/v2/", auth=False)
            ours, _, _ = registry.request("GET", "/v2/")
        except RegistryError as exc:
            return exc.what.splitlines()[0]
        if anonymous == 401 and ours == 200:
            return None
        return f"GET /v2/ answered {anonymous} without and {ours} with the run's credentials"

    last = wait_until_ready(container, probe, timeout)
    if last is None:
        return
    raise RegistryError(
        f"the registry at {registry.host} never became ready: {last}",
        checked=f"GET http://{registry.host}/v2/ (401 without, 200 with credentials) for {timeout:g}s; "
        f"its log:\n{container_log(container)}",
        fix="read the log above; raise [tool.harness.supply] registry-timeout if the machine is slow",
    )


@contextlib.contextmanager
def running_registry(
    settings: Settings, identity: RunIdentity, *, log: Callable[[str], None] = lambda _m: None
) -> Iterator[Registry]:
    registry = start_registry(settings, identity, log=log)
    try:
        yield registry
    finally:
        registry.close()
