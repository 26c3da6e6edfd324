"""Candidates for the rehearsal: an image reference, the current build, or a broken variant
built from a recipe in `[tool.harness.deploy] candidates` (`<name>.Dockerfile`, built FROM the
current image passed as build arg BASE: one small layer on top, the production image untouched)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tierharness.config import Settings
from tierharness.errors import HarnessError
from tierharness.imaging.buildx import buildx_build

__all__ = ["BROKEN", "CURRENT", "broken_recipes", "build_broken", "resolve_candidates"]

BROKEN = "broken"  # every recipe in the candidates folder
CURRENT = "current"  # the image `nox -s build` made


def broken_recipes(settings: Settings) -> dict[str, Path]:
    folder = settings.root / settings.deploy.candidates
    return {p.name.removesuffix(".Dockerfile"): p for p in sorted(folder.glob("*.Dockerfile"))}


def build_broken(settings: Settings, name: str, base: str, log: Callable[[str], None]) -> str:
    recipes = broken_recipes(settings)
    if name not in recipes:
        raise HarnessError(
            f"no broken candidate named {name!r}",
            checked=f"{settings.deploy.candidates}/*.Dockerfile",
            fix=f"use one of: {', '.join(recipes) or '(none)'}",
        )
    tag = f"{base.rsplit(':', 1)[0]}:broken-{name}"
    log(f"building the broken candidate {name!r} as {tag} (FROM {base})")
    buildx_build(
        recipes[name].parent,
        dockerfile=recipes[name],
        tags=[tag],
        build_args={"BASE": base},
        load=True,
        log_path=settings.build_dir / "deploy" / f"candidate-{name}.build.log",
    )
    return tag


def resolve_candidates(
    settings: Settings, wanted: list[str], current: str, log: Callable[[str], None]
) -> list[tuple[str, str, bool]]:
    """(label, image, expected to be broken) for each wanted candidate, in order."""
    recipes = broken_recipes(settings)
    out: list[tuple[str, str, bool]] = []
    for item in wanted:
        if item == CURRENT:
            out.append((CURRENT, current, False))
        elif item == BROKEN:
            out += [(name, build_broken(settings, name, current, log), True) for name in recipes]
        elif item in recipes:
            out.append((item, build_broken(settings, item, current, log), True))
        else:
            out.append((item, item, False))
    return out
