"""A non-root developer builds the same `base` as root does: mmdebstrap's unshare mode (what
the harness runs for any other user) and its root mode give the same tarball, byte for byte.
Root is needed only to run the one as another user, so the test is root's (nox -s root-tests).

The two builds cost about a minute of both cores, and their outcome is a function of what goes
in: the lock, how mmdebstrap is run, mmdebstrap's own version and the mirror. As a build
system caches a test's result by its inputs, a passed proof is recorded in the machine's cache
under the digest of those inputs, and the test skips, saying so, until one of them changes
(HARNESS_PROVE_AGAIN=1, or removing the record, proves it again)."""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest

from tests.root import needs_root, require_root
from tierharness.config import load_settings, machine_cache
from tierharness.imaging.apt import debian_mirror
from tierharness.imaging.debs import lock_path, read_lock
from tierharness.imaging.resolution import ROOTFS_FORMAT, rootfs_command

pytestmark = needs_root


def _user_with_subordinate_ids() -> pwd.struct_passwd:
    """A non-root user with an /etc/subuid range (useradd makes one), as unshare mode needs."""
    with open("/etc/subuid", encoding="utf-8") as ranges:
        names = [line.split(":", 1)[0] for line in ranges if ":" in line]
    for name in names:
        try:
            user = pwd.getpwnam(name)
        except KeyError:
            continue
        if user.pw_uid != 0:
            return user
    pytest.skip("no non-root user with a range in /etc/subuid (useradd -m NAME makes one)")


def _proof_record(lock: Path, epoch: int) -> Path:
    """Where a passed proof for exactly these inputs is recorded."""
    version = subprocess.run(["mmdebstrap", "--version"], capture_output=True, text=True, check=True).stdout
    inputs = "\0".join([lock.read_text(), ROOTFS_FORMAT, version.strip(), debian_mirror(), str(epoch)])
    return machine_cache("proofs") / f"rootfs-modes-{hashlib.sha256(inputs.encode()).hexdigest()[:32]}"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_unshare_mode_as_a_user_and_root_mode_as_root_give_the_same_rootfs() -> None:
    require_root(
        "running mmdebstrap as another user (runuser)", "run it as root: sudo .venv/bin/nox -s root-tests"
    )
    if shutil.which("mmdebstrap") is None or shutil.which("newuidmap") is None:
        pytest.skip("mmdebstrap and newuidmap (uidmap) are needed: bash scripts/provision-docker.sh")
    user = _user_with_subordinate_ids()
    base = load_settings().image("base")
    record = _proof_record(lock_path(base), base.source_date_epoch)
    if record.is_file() and os.environ.get("HARNESS_PROVE_AGAIN") != "1":
        pytest.skip(f"proven for these inputs already: {record.read_text().strip()} ({record})")
    include = [f"{d.name}={d.version}" for d in read_lock(lock_path(base))]
    env = {"SOURCE_DATE_EPOCH": str(base.source_date_epoch), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    # Not under tmp_path: pytest's root-owned base folder is closed to other users.
    folder = Path(tempfile.mkdtemp(prefix="harness-rootfs-modes-"))
    try:
        os.chown(folder, user.pw_uid, user.pw_gid)  # the user's tarball is written as the user
        as_root = folder / "root.tar"
        subprocess.run(rootfs_command(base, as_root, include, "root"), env=env, check=True, timeout=600)
        as_user = folder / "unshare.tar"
        argv = rootfs_command(base, as_user, include, "unshare")
        subprocess.run(
            ["runuser", "-u", user.pw_name, "--", "env", "-i", *(f"{k}={v}" for k, v in env.items()),
             f"HOME={user.pw_dir}", *argv],
            check=True, timeout=600, cwd=folder,
        )  # fmt: skip
        assert as_user.stat().st_uid == user.pw_uid
        assert _sha256(as_user) == _sha256(as_root)
        # Nothing of the machine that made it: mmdebstrap copies the host's hostname and
        # resolver into the rootfs unless told otherwise.
        with tarfile.open(as_root) as tar:
            hostname = tar.extractfile("./etc/hostname")
            assert hostname is not None
            assert hostname.read() == b"localhost\n"
            assert "./etc/resolv.conf" not in tar.getnames()
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(f"{_sha256(as_root)} from both modes, as root and as {user.pw_name}\n")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
