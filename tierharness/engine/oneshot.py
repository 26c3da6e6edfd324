"""A container run to its end, as `docker run --rm` would: its exit status and its output.

The output is read from the container's log once it has exited, and the container removed
after. An attached `docker run --rm` now and then lost the whole output of a process that exits
at once (moby/moby#20951 is the old form of it): `haproxy -c` failed with no word of what was
wrong. The run's labels make a killed run's container the reaper's. It reports as
`tierharness.process.run` does: `what` failed, with its output, and the caller's `fix`.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from tierharness.engine.client import engine_client
from tierharness.engine.labels import RunIdentity
from tierharness.errors import HarnessError

__all__ = ["run_to_exit"]


def run_to_exit(
    image: str,
    command: Sequence[str],
    *,
    identity: RunIdentity,
    role: str,
    mounts: Mapping[Path, str],
    what: str,
    fix: str,
    error: type[HarnessError] = HarnessError,
    check: bool = True,
    entrypoint: str | None = None,
    user: str | None = None,
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[str]:
    """Run `command` in `image` with no network, each of `mounts` (host folder: path inside)
    read-only, labelled as `identity`'s `role`. Its stdout holds both of the container's
    streams, as its log does. `error` when it has not exited within `timeout` seconds, or
    (with `check`) when it exited non-zero: `what` failed, its output, and `fix`."""
    shown = " ".join([*([entrypoint] if entrypoint else []), *command])
    mounted = ", ".join(f"{host} mounted at {inside}" for host, inside in mounts.items())
    checked = f"{shown} in {image}" + (f", {mounted}" if mounted else "")
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
            raise error(
                f"{what}: no exit within {timeout:g} s",
                checked=checked,
                fix="the engine may be overloaded (`docker ps` shows what runs): run again once it answers",
            ) from exc
        output = container.logs(stdout=True, stderr=True).decode(errors="replace")
    finally:
        container.remove(force=True)
    if check and status != 0:
        raise error(f"{what} failed (exit {status}):\n{output.strip()}", checked=checked, fix=fix)
    return subprocess.CompletedProcess(list(command), status, output, "")
