"""`repro-check --independent`: the same commit built on a second Docker engine that shares
nothing with the first (see tierharness.engine.second_engine), its base image built there from the
offline recipe, compared with the first engine's build and with build/image.json.

An independent rebuilder's check, in one command: a difference is explained down to the
file by the same diff `repro-check` uses. The second engine is the host process as root and
a container otherwise (reached over TCP with TLS, as a remote engine is); the base's rootfs
is made by mmdebstrap on this machine either way (in its unshare mode for a user who is not
root, which gives the same tarball).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from tierharness.config import Settings
from tierharness.engine.client import local_image_id
from tierharness.engine.second_engine import second_engine
from tierharness.errors import HarnessError
from tierharness.imaging.image_record import build_record
from tierharness.imaging.resolution import build_rootfs_image
from tierharness.repro.check import repro_check
from tierharness.repro.diff import ImageDiff
from tierharness.repro.recorded import RecordedVerdict, judge_checkout

__all__ = ["IndependentRebuild", "independent_rebuild"]


@dataclass(frozen=True)
class IndependentRebuild:
    engine1: str
    engine2: str
    recorded: RecordedVerdict  # build/image.json, the build shipped, against engine 1's
    base1: str | None
    base2: str
    diff: ImageDiff
    seconds: float

    @property
    def reproducible(self) -> bool:
        # The recorded build is the one shipped: an independent rebuild that cannot give its
        # digest has not reproduced it, whatever the two engines agree on.
        return self.engine1 == self.engine2 and self.recorded.agrees is True


def independent_rebuild(
    settings: Settings, *, keep: bool = False, log: Callable[[str], None] = print
) -> IndependentRebuild:
    build_record(settings)  # a build to reproduce, or the fix, before a second engine starts
    base = settings.image(settings.build.base_image)
    if base.kind != "rootfs":
        raise HarnessError(
            f"the base image {base.name!r} is not built from a rootfs recipe",
            checked=f"[tool.harness.images.{base.name}].kind",
            fix='an independent rebuild builds its base from the offline recipe: use kind = "rootfs"',
        )
    started = time.monotonic()
    with second_engine(settings.state_dir, log=log, settings=settings) as engine:
        log(f"building {base.local} on the second engine from {base.recipe}")
        base2 = build_rootfs_image(base, settings.build_dir / "independent", env=engine.env())
        base1 = local_image_id(base.local)
        if base1 != base2:
            log(f"base differs: {base1} on the first engine, {base2} on the second")
        diff = repro_check(settings, keep=keep, log=log, second_env=engine.env())
    recorded = judge_checkout(settings, diff.a_digest)
    return IndependentRebuild(
        diff.a_digest, diff.b_digest, recorded, base1, base2, diff, time.monotonic() - started
    )
