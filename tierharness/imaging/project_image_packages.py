"""What a logical image installs today, resolved afresh, for its recipe's packages.lock
(`nox -s lock -- --images`; tierharness.imaging.debs reads and checks the lock)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tierharness.config import LogicalImage, Settings
from tierharness.engine.client import docker_cli
from tierharness.errors import ImageError
from tierharness.imaging.debs import Deb, rootfs_installed, simulated_installs, with_hashes
from tierharness.imaging.rootfs import make_rootfs
from tierharness.process import run
from tierharness.scratch import scratch_folder

__all__ = ["lock_packages"]


def lock_packages(settings: Settings, spec: LogicalImage, log: Callable[[str], None] = print) -> list[Deb]:
    """What `spec` installs today, resolved afresh, with each .deb's SHA-256: a rootfs's whole
    package set (mmdebstrap, unpinned), or what a Dockerfile image adds to its base (apt's
    simulation inside the base image). Written to the recipe's packages.lock by the caller."""
    if spec.kind == "rootfs":
        with scratch_folder(f"lock-{spec.name}") as tmp:
            installed = rootfs_installed(make_rootfs(spec, Path(tmp) / "rootfs.tar", list(spec.packages)))
    else:
        if not spec.depends_on or not spec.packages:
            raise ImageError(
                f"cannot lock the packages of {spec.name!r}: it names no base or no packages",
                checked=f"[tool.harness.images.{spec.name}] depends-on and packages",
                fix="give it depends-on (a Debian-based image) and the packages its recipe installs",
            )
        base = settings.image(spec.depends_on).local
        log(f"{spec.name}: resolving {' '.join(spec.packages)} on {base}")
        proc = run(
            [docker_cli(), "run", "--rm", "--entrypoint", "sh", "--user", "0", base, "-c",
             "apt-get update -qq >/dev/null && apt-get install --simulate --no-install-recommends "
             + " ".join(spec.packages)],
            what=f"resolving the packages of {spec.name!r} on {base}",
            fix="make the base image available (`nox -s images`) and the mirror reachable",
            error=ImageError,
        )  # fmt: skip
        installed = simulated_installs(proc.stdout)
    return with_hashes(installed, spec.name)
