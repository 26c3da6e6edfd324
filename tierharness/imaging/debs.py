"""`packages.lock` for the offline images: every Debian package that goes into an image,
with its version, architecture and the .deb's SHA-256, next to the recipe.

Builds install exactly those versions. Before a build, each entry is checked against the
machine's apt index (which apt verified against the archive's signed Release file): a
version gone from the mirror, or a hash that differs from the lock, stops the build naming
the package. Inside the build, apt checks every .deb against the same index, and the
recipes check the downloaded files against the lock again (`sha256sum -c`); afterwards the
image's dpkg status must list exactly the locked packages (a rootfs) or all of them (a
Dockerfile image on `base`).

Lives in `build/` because image builds call it; `nox -s lock -- --images` writes the locks
and `nox -s lock -- --check` checks them offline.
"""

from __future__ import annotations

import re
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tierharness.config import LogicalImage, machine_cache
from tierharness.errors import LockfileError
from tierharness.process import run

__all__ = [
    "LOCK_NAME",
    "Deb",
    "apt_cache",
    "check_against_index",
    "check_installed",
    "check_lock",
    "dpkg_installed",
    "index_entries",
    "installs_debs",
    "lock_path",
    "read_lock",
    "rootfs_installed",
    "simulated_installs",
    "with_hashes",
    "write_lock",
]

LOCK_NAME = "packages.lock"
_FIX = "refresh the locks: `nox -s lock -- --images` (then commit images' packages.lock)"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, order=True)
class Deb:
    name: str
    version: str
    arch: str
    sha256: str = ""

    def line(self) -> str:
        return f"{self.name} {self.version} {self.arch} {self.sha256}"

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.name, self.version, self.arch)


def lock_path(spec: LogicalImage) -> Path:
    return spec.recipe / LOCK_NAME


def installs_debs(spec: LogicalImage) -> bool:
    """The image takes packages from the Debian mirror: a rootfs, or a Dockerfile recipe that
    runs `apt-get install`. Each of them needs a lock, or it installs whatever the mirror
    holds on the day it is built."""
    if spec.kind == "rootfs":
        return True
    dockerfile = spec.recipe / "Dockerfile"
    return dockerfile.is_file() and "apt-get install" in dockerfile.read_text(encoding="utf-8")


def read_lock(path: Path) -> list[Deb]:
    """The entries of a lock; a malformed line or an entry without a hash is refused."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LockfileError(f"cannot read {path}: {exc.strerror}", checked=str(path), fix=_FIX) from None
    debs = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) != 4 or not _HEX64.match(fields[3]):
            raise LockfileError(
                f"{path}:{number}: expected `name version arch sha256`, got {raw.strip()!r}",
                checked=f"line {number} of {path}",
                fix=_FIX,
            )
        debs.append(Deb(*fields))
    return debs


def write_lock(path: Path, debs: Iterable[Deb], *, image: str) -> Path:
    header = (
        f"# Debian packages of the `{image}` image: name version arch sha256 (of the .deb).\n"
        "# Written by `nox -s lock -- --images`; builds install exactly these and check the hashes.\n"
    )
    path.write_text(header + "".join(f"{d.line()}\n" for d in sorted(set(debs))), encoding="utf-8")
    return path


def dpkg_installed(status: str) -> list[Deb]:
    """Installed packages in a dpkg status file (no hashes: dpkg does not keep them)."""
    found = []
    for stanza in status.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line and not line[0].isspace() and ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if fields.get("Package") and "installed" in fields.get("Status", "").split():
            found.append(Deb(fields["Package"], fields.get("Version", ""), fields.get("Architecture", "")))
    return sorted(found)


def apt_cache() -> Path:
    """Where apt-cache keeps its binary cache for the harness: in the machine's cache.

    Machines and images often switch apt's own off (`Dir::Cache::pkgcache ""`, as Docker's
    Debian images do); then each call builds it anew from the lists, 1.5 CPU-seconds. apt
    checks a kept one against the lists and rebuilds it only when they changed (0.03 s)."""
    folder = machine_cache("apt")
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "pkgcache.bin"


def index_entries(debs: Iterable[Deb]) -> dict[tuple[str, str, str], dict[str, str]]:
    """What the machine's apt index says about exactly these package versions, by
    (name, version, arch); versions it does not know are absent. One apt-cache call, on
    the kept binary cache (`apt_cache`)."""
    wanted = sorted({d.key for d in debs})
    if not wanted:
        return {}
    proc = run(
        [
            "apt-cache",
            "-o",
            f"Dir::Cache::pkgcache={apt_cache()}",
            "show",
            *(f"{name}:{arch}={version}" for name, version, arch in wanted),
        ],
        what="apt-cache show",
        fix="install apt, and run `apt-get update` (scripts/provision-docker.sh adds trixie)",
        check=False,
    )
    found: dict[tuple[str, str, str], dict[str, str]] = {}
    for stanza in proc.stdout.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line and not line[0].isspace() and ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if "Package" in fields:
            found.setdefault(
                (fields["Package"], fields.get("Version", ""), fields.get("Architecture", "")), fields
            )
    return found


def check_against_index(debs: Iterable[Deb], where: Path) -> None:
    """Every locked version must be on the mirror with the locked hash (as the signed index says)."""
    debs = list(debs)
    index = index_entries(debs)
    for deb in debs:
        entry = index.get(deb.key)
        if entry is None:
            raise LockfileError(
                f"{deb.name} {deb.version} ({deb.arch}), locked in {where}, is gone from the mirror",
                checked=f"apt-cache show {deb.name}:{deb.arch}={deb.version} (after apt-get update)",
                fix=_FIX,
            )
        if entry.get("SHA256") != deb.sha256:
            raise LockfileError(
                f"{deb.name} {deb.version} ({deb.arch}): the mirror's .deb has SHA-256 "
                f"{entry.get('SHA256')}, but {where} locks {deb.sha256}",
                checked=f"the SHA256 field of apt-cache show {deb.name}:{deb.arch}={deb.version}",
                fix=f"if the lock was edited by mistake, restore it; otherwise {_FIX}",
            )


def check_lock(spec: LogicalImage) -> list[Deb]:
    """The lock of `spec`, checked against the mirror; empty when the recipe has no lock."""
    path = lock_path(spec)
    if not path.is_file():
        return []
    debs = read_lock(path)
    check_against_index(debs, path)
    return debs


def check_installed(debs: list[Deb], installed: list[Deb], where: Path, *, exact: bool) -> None:
    """The image's dpkg status against the lock: every locked package installed at its
    version; with `exact`, nothing else either (a rootfs is made of its lock alone)."""
    have = {d.key for d in installed}
    want = {d.key for d in debs}
    missing = sorted(want - have)
    extra = sorted(have - want) if exact else []
    if missing or extra:
        raise LockfileError(
            f"the image does not hold exactly what {where} locks: "
            + "; ".join(
                [
                    *(f"missing {n} {v} ({a})" for n, v, a in missing[:5]),
                    *(f"unlocked {n} {v} ({a})" for n, v, a in extra[:5]),
                ]
            ),
            checked="/var/lib/dpkg/status of the built image against the lock",
            fix=_FIX,
        )


def rootfs_installed(rootfs: Path) -> list[Deb]:
    """Installed packages of an mmdebstrap rootfs tarball."""
    with tarfile.open(rootfs) as tar:
        for name in ("./var/lib/dpkg/status", "var/lib/dpkg/status"):
            try:
                member = tar.extractfile(name)
            except KeyError:
                continue
            if member is not None:
                return dpkg_installed(member.read().decode("utf-8", "replace"))
    return []


_INST = re.compile(r"^Inst (?P<name>\S+) (?:\[\S+\] )?\((?P<version>\S+) .*\[(?P<arch>[^\]]+)\]\)")


def simulated_installs(output: str) -> list[Deb]:
    """The packages `apt-get install --simulate` says it would install."""
    return sorted(Deb(m["name"], m["version"], m["arch"]) for m in map(_INST.match, output.splitlines()) if m)


def with_hashes(debs: Iterable[Deb], image: str) -> list[Deb]:
    """`debs` with the SHA-256 of each .deb, from the machine's apt index."""
    debs = list(debs)
    index = index_entries(debs)
    hashed = []
    for deb in debs:
        entry = index.get(deb.key)
        if entry is None or not entry.get("SHA256"):
            raise LockfileError(
                f"{deb.name} {deb.version} ({deb.arch}) for the `{image}` image "
                "is not in this machine's apt index",
                checked=f"apt-cache show {deb.name}:{deb.arch}={deb.version}",
                fix="run `apt-get update` (scripts/provision-docker.sh adds Debian trixie, pinned low)",
            )
        hashed.append(Deb(deb.name, deb.version, deb.arch, entry["SHA256"]))
    return hashed
