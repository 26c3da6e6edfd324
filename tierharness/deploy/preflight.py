"""The rehearsal's refusals before anything changes: an image the engine lacks, a proxy port
already taken; and the error a rehearsal that cannot run raises."""

from __future__ import annotations

import socket

from tierharness.engine.client import local_image_id
from tierharness.errors import HarnessError

__all__ = ["DeployError", "check_port_free", "require_image"]


class DeployError(HarnessError):
    """The rehearsal could not run, or was refused before anything changed."""


def require_image(ref: str) -> str:
    """The image's id, or a refusal before anything changes."""
    digest = local_image_id(ref)
    if digest is None:
        raise DeployError(
            f"the candidate image {ref!r} does not exist in the engine",
            checked=f"docker image inspect {ref}",
            fix="build it first (`nox -s build`), or name an image that `docker images` lists; "
            "nothing was started or changed",
        )
    return digest


def check_port_free(port: int) -> None:
    """A fixed proxy port must be free on 127.0.0.1 before anything starts."""
    if not port:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise DeployError(
                f"port {port} on 127.0.0.1 is already in use: {exc.strerror}",
                checked=f"bind 127.0.0.1:{port} ([tool.harness.deploy] proxy-port)",
                fix="stop what listens there, or set proxy-port = 0 for a free port; nothing was started",
            ) from None
