"""Checks of the logical images in the engine: each one's local tag there (with its digest),
and whether what it holds, or would hold, floats with a registry tag instead of a pin or the
recipe."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from tierharness.config import LogicalImage
from tierharness.doctor.verdicts import Check
from tierharness.imaging.resolution import LocalOrigin, distrust

__all__ = ["image_checks"]


def image_checks(
    images: Iterable[LogicalImage],
    digest_of: Callable[[str], str | None],
    origin_of: Callable[[str], LocalOrigin] = lambda _tag: LocalOrigin(),
) -> list[Check]:
    """Each logical image's local tag, present (with its digest) or not; and whether what it
    holds, or would hold, floats with a registry tag instead of a pin or the recipe."""
    checks = []
    for spec in images:
        name = f"image {spec.name}"
        table = f"[tool.harness.images.{spec.name}]"
        digest = digest_of(spec.local)
        if not digest:
            if spec.pinned_digest:
                then = f"pull {spec.ref}"
            elif spec.floating and spec.allow_floating:
                then = f"pull {spec.ref}, a floating tag (allow-floating = true)"
            else:
                then = "build it from its recipe, slowly"
            missing = f"{spec.local} is not in the engine (the first run would {then})"
            checks.append(Check(name, "WARN", missing, "nox -s images"))
            continue
        pinned = spec.pinned_digest
        origin = origin_of(spec.local)
        doubt = (
            (f"{spec.local} is {digest}, not {pinned} as {spec.ref} pins" if digest != pinned else None)
            if pinned
            else distrust(spec, origin)
        )
        if doubt:
            # What the resolver will do about it on the next run, so nobody has to guess.
            then = "the pinned image" if pinned else "its recipe"
            replaced = f"{doubt}: the next run replaces it with {then}"
            checks.append(Check(name, "WARN", replaced, "nox -s images"))
        elif spec.floating and spec.allow_floating:
            got = origin.digest_from(spec.ref)
            held = f"this copy came from it as {got}" if got else "a machine without a copy pulls it"
            pin = got.rpartition("@")[2] if got else "sha256:<the digest `nox -s images` logs on the pull>"
            checks.append(
                Check(
                    name,
                    "WARN",
                    f"{spec.local} {digest}; {spec.ref} is a floating tag pulled under allow-floating = "
                    f"true ({held}): it names whatever the registry moves it to",
                    f'pin it in {table}: ref = "{spec.ref}@{pin}"; or drop allow-floating for the recipe',
                )
            )
        else:
            checks.append(Check(name, "PASS", f"{spec.local} {digest}"))
    return checks
