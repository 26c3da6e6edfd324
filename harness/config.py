"""Project configuration: `[tool.harness]` in pyproject.toml, overridable by env vars.

Every setting has one name in the table and one `HARNESS_*` variable; the README
lists them all.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

__all__ = ["ImageSpec", "Settings", "find_project_root", "load_settings"]


@dataclass(frozen=True)
class ImageSpec:
    """A logical image: a registry reference and an offline recipe that both yield `local`."""

    name: str
    ref: str
    local: str
    recipe: Path
    kind: str  # "rootfs" (mmdebstrap + FROM scratch) or "dockerfile"
    depends_on: str | None = None
    suite: str = "trixie"
    packages: tuple[str, ...] = ()
    source_date_epoch: int = 0


@dataclass(frozen=True)
class Settings:
    root: Path
    state_dir: Path
    build_dir: Path
    images: Mapping[str, ImageSpec]
    lock_dir: Path
    lock_files: tuple[str, ...]
    raw: Mapping[str, Any] = field(default_factory=dict)

    def image(self, name: str) -> ImageSpec:
        try:
            return self.images[name]
        except KeyError:
            raise HarnessError(
                f"no logical image named {name!r}",
                checked=f"[tool.harness.images] in {self.root / 'pyproject.toml'}",
                fix=f"use one of: {', '.join(sorted(self.images)) or '(none defined)'}",
            ) from None


def find_project_root(start: Path | None = None) -> Path:
    """The nearest folder, from `start` upwards, whose pyproject.toml has `[tool.harness]`."""
    env = os.environ.get("HARNESS_PROJECT_ROOT")
    if env:
        return Path(env).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file() and "[tool.harness" in candidate.read_text(encoding="utf-8"):
            return folder
    raise HarnessError(
        "no project configuration found",
        checked=f"pyproject.toml with a [tool.harness] table in {here} and its parents",
        fix="run from inside the project, or set HARNESS_PROJECT_ROOT",
    )


def _image_specs(root: Path, table: Mapping[str, Any]) -> dict[str, ImageSpec]:
    specs: dict[str, ImageSpec] = {}
    for name, body in table.items():
        missing = [k for k in ("ref", "local", "recipe", "kind") if k not in body]
        if missing:
            raise HarnessError(
                f"image {name!r} is missing {', '.join(missing)}",
                checked=f"[tool.harness.images.{name}] in {root / 'pyproject.toml'}",
                fix="give every logical image ref, local, recipe and kind",
            )
        if body["kind"] not in ("rootfs", "dockerfile"):
            raise HarnessError(
                f"image {name!r} has unknown kind {body['kind']!r}",
                checked=f"[tool.harness.images.{name}].kind",
                fix='use kind = "rootfs" or kind = "dockerfile"',
            )
        specs[name] = ImageSpec(
            name=name,
            # A registry reference can be overridden per image, e.g. to pin a digest in CI.
            ref=os.environ.get(f"HARNESS_IMAGE_{name.upper()}_REF", body["ref"]),
            local=body["local"],
            recipe=root / body["recipe"],
            kind=body["kind"],
            depends_on=body.get("depends-on"),
            suite=body.get("suite", "trixie"),
            packages=tuple(body.get("packages", ())),
            source_date_epoch=int(body.get("source-date-epoch", 0)),
        )
    for spec in specs.values():
        if spec.depends_on and spec.depends_on not in specs:
            raise HarnessError(
                f"image {spec.name!r} depends on unknown image {spec.depends_on!r}",
                checked="[tool.harness.images.*].depends-on",
                fix=f"define [tool.harness.images.{spec.depends_on}] or drop depends-on",
            )
    return specs


def load_settings(root: Path | None = None) -> Settings:
    root = root or find_project_root()
    path = root / "pyproject.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise HarnessError(
            f"cannot read {path}: {exc}", checked=str(path), fix="fix the TOML syntax"
        ) from exc
    table = data.get("tool", {}).get("harness", {})
    lock = table.get("lock", {})
    return Settings(
        root=root,
        state_dir=root / os.environ.get("HARNESS_STATE_DIR", table.get("state-dir", ".harness")),
        build_dir=root / os.environ.get("HARNESS_BUILD_DIR", table.get("build-dir", "build")),
        images=_image_specs(root, table.get("images", {})),
        lock_dir=root / lock.get("dir", "requirements"),
        lock_files=tuple(lock.get("files", ())),
        raw=table,
    )
