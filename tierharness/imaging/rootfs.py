"""A Debian root filesystem made offline with mmdebstrap: the tarball a `rootfs` logical image
is built from (`FROM scratch`), the same byte for byte whoever makes it, as root or not."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tierharness.config import LogicalImage
from tierharness.errors import ImageError
from tierharness.imaging.apt import debian_mirror
from tierharness.process import run

__all__ = ["ROOTFS_FORMAT", "make_rootfs", "rootfs_command"]

# How mmdebstrap makes a rootfs; part of a rootfs image's recipe digest, so a change here
# rebuilds the images made the old way. Two customize hooks make the tarball the same whoever
# makes it, wherever:
# - debpython's bytecode is removed: py3compile writes it checked-hash in root mode but
#   timestamped in unshare mode (the image compiles what it imports; nothing reads those);
# - mmdebstrap copies /etc/hostname and /etc/resolv.conf from the machine it runs on: the
#   image's are set to what does not depend on it (the engine mounts its own at run time).
ROOTFS_FORMAT = "mmdebstrap minbase, root or unshare mode, no debpython __pycache__, neutral hostname"


def rootfs_command(spec: LogicalImage, rootfs: Path, include: list[str], mode: str) -> list[str]:
    """mmdebstrap's command line for `spec` in `mode` (root or unshare): the same tarball,
    byte for byte, from either (a test holds the two to it)."""
    return [
        "mmdebstrap", "--quiet", "--variant=minbase", f"--mode={mode}",
        f"--include={','.join(include)}",
        '--aptopt=Acquire::Languages "none"',
        # Docs and man pages are dead weight in a runtime image.
        "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-include=/usr/share/doc/*/copyright",
        '--customize-hook=rm -rf "$1"/usr/share/python3/debpython/__pycache__',
        '--customize-hook=echo localhost > "$1"/etc/hostname',
        '--customize-hook=rm -f "$1"/etc/resolv.conf',
        spec.suite, str(rootfs), debian_mirror(),
    ]  # fmt: skip


def make_rootfs(spec: LogicalImage, rootfs: Path, include: list[str]) -> Path:
    """mmdebstrap: a minbase rootfs tarball of `spec.suite` with `include`, stamped with the
    image's SOURCE_DATE_EPOCH (byte-identical for the same packages). As root in its root
    mode; as anyone else in its unshare mode (a user namespace with the user's subordinate
    ids), which gives the same tarball."""
    if shutil.which("mmdebstrap") is None:
        raise ImageError(
            f"building the {spec.name!r} image offline needs mmdebstrap, which is not installed",
            checked="`mmdebstrap` on PATH",
            fix="apt-get install mmdebstrap (scripts/provision-docker.sh installs it)",
        )
    mode = "root" if os.geteuid() == 0 else "unshare"
    fix = "check that the Debian mirror is reachable and the package names exist"
    if mode == "unshare":
        fix = (
            "as a user other than root, mmdebstrap needs user namespaces and subordinate ids: an "
            "entry for this user in /etc/subuid and /etc/subgid (useradd makes them), newuidmap "
            "(apt-get install uidmap), and unprivileged user namespaces allowed (Ubuntu 24.04: "
            "sysctl kernel.apparmor_restrict_unprivileged_userns=0); or run `nox -s images` once "
            "as root, after which the image stays in the engine for every user; " + fix
        )
    build_env = {"SOURCE_DATE_EPOCH": str(spec.source_date_epoch), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    run(
        rootfs_command(spec, rootfs, include, mode),
        env=build_env,
        what=f"mmdebstrap ({mode} mode) for {spec.name!r}",
        fix=fix,
        error=ImageError,
    )
    return rootfs
