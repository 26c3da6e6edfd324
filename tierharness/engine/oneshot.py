"""A container run to its end, as `docker run --rm` would: its exit status and its output.

The output is read from the container's log once it has exited, and the container removed
after. An attached `docker run --rm` now and then lost the whole output of a process that exits
at once (moby/moby#20951 is the old form of it): `haproxy -c` failed with no word of what was
wrong. The run's labels make a killed run's container the reaper's.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from tierharness.engine.client import engine_client
from tierharness.engine.labels import RunIdentity

__all__ = ["run_to_exit"]


def run_to_exit(
    image: str,
    command: Sequence[str],
    *,
    identity: RunIdentity,
    role: str,
    mounts: Mapping[Path, str],
    entrypoint: str | None = None,
    user: str | None = None,
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[str]:
    """Run `command` in `image` with no network, each of `mounts` (host folder: path inside)
    read-only, labelled as `identity`'s `role`. Its stdout holds both of the container's
    streams, as its log does. TimeoutError when it has not exited within `timeout` seconds."""
    container = engine_client().containers.create(
        image,
        list(command),
        entrypoint=entrypoint,
        user=user,
        network_mode="none",
        labels=identity.labels(role),
        volumes={str(host.resolve()): {"bind": inside, "mode": "ro"} for host, inside in mounts.items()},
    )
    try:
        container.start()
        try:
            status = int(container.wait(timeout=timeout)["StatusCode"])
        except OSError as exc:  # requests' ReadTimeout, and the engine gone meanwhile
            raise TimeoutError(f"{image} {' '.join(command)}: no exit within {timeout:g} s") from exc
        output = container.logs(stdout=True, stderr=True).decode(errors="replace")
    finally:
        container.remove(force=True)
    return subprocess.CompletedProcess(list(command), status, output, "")
