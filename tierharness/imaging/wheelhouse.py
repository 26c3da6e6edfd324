"""The wheelhouse: every pinned wheel, downloaded and hash-verified on the host, for the
image's interpreter and platform, so the image build installs with no network at all.

pip inside a build container cannot reach PyPI here (its TLS proxy's CA is the
host's), and a hermetic build should not reach it anyway.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import platform
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from tierharness.config import pip_child_env
from tierharness.errors import BuildError
from tierharness.imaging.lockfiles import require_hashes
from tierharness.process import run
from tierharness.scratch import make_scratch

__all__ = ["fill_wheelhouse", "verify_wheelhouse"]

# Debian trixie has glibc 2.41. pip does not expand `--platform` to older manylinux
# tags, so every compatible tag is named.
DEFAULT_GLIBC = (2, 41)


def manylinux_platforms(glibc: tuple[int, int] = DEFAULT_GLIBC, arch: str | None = None) -> list[str]:
    arch = arch or platform.machine()
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(glibc[1], 4, -1)]
    legacy = {"manylinux2014": 17, "manylinux2010": 12, "manylinux1": 5}
    tags += [f"{name}_{arch}" for name, minor in legacy.items() if minor <= glibc[1]]
    return tags


def _stamp(lockfiles: Sequence[Path], python_version: str, platforms: Sequence[str]) -> str:
    digest = hashlib.sha256(f"{python_version}|{','.join(platforms)}".encode())
    for path in lockfiles:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def fill_wheelhouse(
    lockfiles: Sequence[Path],
    dest: Path,
    *,
    python_version: str = "3.13",
    platforms: Sequence[str] | None = None,
    cache: Path | None = None,
) -> Path:
    """Download (once per lockfile content) every wheel the lockfiles pin into `dest`. With
    `cache`, a fresh checkout copies them from `cache/<stamp>` (filled by the first download
    of the same lockfiles on this machine), checked against the lockfiles' hashes all the same."""
    for path in lockfiles:
        require_hashes(path)  # refuse before any download or build, naming the package
    stamp_file = dest / ".stamp.json"
    platforms = list(platforms or manylinux_platforms())
    stamp = _stamp(lockfiles, python_version, platforms)
    record = json.dumps({"stamp": stamp, "python": python_version, "platforms": platforms})
    if stamp_file.exists() and json.loads(stamp_file.read_text()).get("stamp") == stamp:
        verify_wheelhouse(lockfiles, dest)
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    shared = cache / stamp if cache is not None else None
    if shared is not None and (shared / ".stamp.json").is_file():
        for wheel in shared.glob("*.whl"):
            shutil.copyfile(wheel, dest / wheel.name)  # copies: a change in dest never reaches the cache
        verify_wheelhouse(lockfiles, dest, origin=shared)
        stamp_file.write_text(record)
        return dest
    abi = "cp" + python_version.replace(".", "")
    for path in lockfiles:
        cmd = [
            sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
            "--dest", str(dest), "--require-hashes", "--no-deps", "--only-binary=:all:",
            "--python-version", python_version, "--implementation", "cp",
            "--abi", abi, "--abi", "abi3", "--abi", "none",
            *(arg for plat in platforms for arg in ("--platform", plat)),
            "--requirement", str(path),
        ]  # fmt: skip
        run(
            cmd,
            env=pip_child_env(),  # PyPI's files, whose hashes the lockfiles carry
            what=f"downloading a {abi} wheel for {platforms[0]} (or older) of every pin in {path.name}",
            fix="check that PyPI is reachable; a package without a wheel for the image's Python "
            "needs a newer pin (`nox -s lock -- --upgrade`)",
        )
    verify_wheelhouse(lockfiles, dest)
    stamp_file.write_text(record)
    if shared is not None:
        _share(dest, shared, record)
    return dest


def _share(dest: Path, shared: Path, record: str) -> None:
    """Copy the verified wheels to the machine's cache, whole or not at all: filled beside it
    and renamed into place (a concurrent filler of the same stamp makes the rename a no-op)."""
    with contextlib.suppress(OSError):  # a cache that cannot be written only costs the next download
        shared.parent.mkdir(parents=True, exist_ok=True)
        # Named for this process: a run killed while copying leaves it to the next one's sweep.
        staging = make_scratch("wheels", parent=shared.parent)
        for wheel in dest.glob("*.whl"):
            shutil.copyfile(wheel, staging / wheel.name)
        (staging / ".stamp.json").write_text(record)
        try:
            staging.rename(shared)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)


def verify_wheelhouse(lockfiles: Sequence[Path], dest: Path, *, origin: Path | None = None) -> None:
    """Every file in the wheelhouse must match a hash the lockfiles pin. pip would refuse a
    tampered wheel too, but deep inside the build and naming neither the file nor the fix;
    this names both, before anything is built. `origin`: the cache the files were copied from."""
    allowed = {digest: pin for path in lockfiles for pin in require_hashes(path) for digest in pin.hashes}
    for wheel in sorted(p for p in dest.iterdir() if p.is_file() and not p.name.startswith(".")):
        digest = hashlib.sha256()
        with wheel.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        if digest.hexdigest() not in allowed:
            source = origin / wheel.name if origin is not None else wheel
            raise BuildError(
                f"{source} matches no hash in {', '.join(p.name for p in lockfiles)}: "
                "it was changed or does not belong there",
                checked=f"the sha256 of every file in {dest} against the lockfiles' --hash lines",
                fix=f"delete it (rm {wheel}"
                + (f" {source}; or the whole cache entry, rm -r {origin}" if origin is not None else "")
                + "); the next build downloads it again and checks it",
            )
