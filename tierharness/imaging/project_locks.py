"""`harness lock`: every lock of the project compiled or checked, the requirements lockfiles
(requirements/*.txt) and the images' packages.lock (Debian packages, versions, .deb hashes).

The check is offline and names each stale file on stderr; what passes is listed on stdout.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

from tierharness.config import LogicalImage, Settings
from tierharness.errors import HarnessError
from tierharness.imaging import lockfiles
from tierharness.imaging.debs import installs_debs, lock_path, read_lock, write_lock
from tierharness.process import run

__all__ = ["check_image_locks", "check_locks", "compile_locks", "image_lock_specs", "lock_images"]


def compile_locks(settings: Settings, names: Sequence[str], *, upgrade: bool) -> int:
    """The named requirements lockfiles compiled from their inputs; the exit code."""
    lockfiles.compile_lockfiles(settings.lock.dir, list(names), upgrade=upgrade)
    for name in names:
        print(f"compiled {settings.lock.dir.relative_to(settings.root)}/{name}.txt")
    return 0


def check_locks(settings: Settings, names: Sequence[str]) -> int:
    """The named requirements lockfiles and every image's packages.lock checked; the exit code."""
    failures = _check_requirement_locks(settings, names) + check_image_locks(settings)
    if failures:
        print(f"{failures} lockfile(s) stale: run `nox -s lock` and commit the result", file=sys.stderr)
    return 1 if failures else 0


def _check_requirement_locks(settings: Settings, names: Sequence[str]) -> int:
    """Each lockfile pins what its input asks for, with hashes. Returns the number of stale ones."""
    failures = 0
    for name in names:
        source, target = settings.lock.dir / f"{name}.in", settings.lock.dir / f"{name}.txt"
        problems = lockfiles.find_stale(source, target)
        try:
            lockfiles.require_hashes(target)
        except HarnessError as exc:
            problems.append(str(exc))
        for problem in problems:
            print(f"STALE {target.relative_to(settings.root)}: {problem}", file=sys.stderr)
        failures += bool(problems)
        if not problems:
            print(f"ok    {target.relative_to(settings.root)}")
    return failures


def image_lock_specs(settings: Settings, names: Sequence[str] = ()) -> list[LogicalImage]:
    """Images whose Debian packages must be locked: those that name packages, ship a lock,
    or whose recipe installs from the mirror."""
    chosen = [settings.image(n) for n in names] if names else list(settings.images.values())
    return [s for s in chosen if s.packages or lock_path(s).is_file() or installs_debs(s)]


def lock_images(settings: Settings, names: Sequence[str], *, log: Callable[[str], None]) -> int:
    """The named images' (default: all) packages.lock written; the exit code."""
    # Only `lock --images` needs the image code; `lock --check` stays as light as before.
    from tierharness.imaging.resolution import lock_packages  # noqa: PLC0415  lazy: CLI start-up

    if os.geteuid() == 0:  # the hashes come from the machine's apt index: make it current
        run(["apt-get", "update", "-qq"], what="apt-get update", fix="check the machine's apt sources")
    for spec in image_lock_specs(settings, names):
        debs = lock_packages(settings, spec, log=log)
        path = write_lock(lock_path(spec), debs, image=spec.name)
        print(f"locked {len(debs):3} packages in {path.relative_to(settings.root)}")
    return 0


def check_image_locks(settings: Settings) -> int:
    """Offline: every image's packages.lock exists, is well formed, hashes every entry and
    names the packages the image asks for. Returns the number of stale locks."""
    failures = 0
    for spec in image_lock_specs(settings):
        path = lock_path(spec)
        shown = path.relative_to(settings.root) if path.is_relative_to(settings.root) else path
        if not path.is_file():
            name = spec.name
            listed = "" if spec.packages else f"list them in [tool.harness.images.{name}] packages, then "
            print(
                f"STALE {shown}: missing, and the `{name}` image installs Debian packages: {listed}"
                f"`nox -s lock -- --images {name}`, and install from the lock as the redis recipe does",
                file=sys.stderr,
            )
            failures += 1
            continue
        try:
            locked = {d.name for d in read_lock(path)}
        except HarnessError as exc:
            print(f"STALE {shown}: {exc.what}", file=sys.stderr)
            failures += 1
            continue
        missing = [p for p in spec.packages if p not in locked]
        if missing:
            print(f"STALE {shown}: does not lock {', '.join(missing)}", file=sys.stderr)
            failures += 1
        else:
            print(f"ok    {shown}")
    return failures
