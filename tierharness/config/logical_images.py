"""The logical images: the harness's own (`DEFAULT_IMAGES`, with their offline recipes) and
a project's `[tool.harness.images.<name>]` tables, parsed into `LogicalImage`s."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tierharness.config.tables import known_table, strings, typed
from tierharness.config.variables import Environment
from tierharness.errors import HarnessError

__all__ = ["DEFAULT_IMAGES", "RECIPES", "LogicalImage", "image_specs", "images_table"]

ImageKind = Literal["rootfs", "dockerfile"]


@dataclass(frozen=True)
class LogicalImage:
    """A logical image: a registry reference and an offline recipe that both yield `local`.
    Only a reference pinned by digest is pulled, or a tag-only one whose image table says
    `allow-floating = true` (tierharness.imaging.resolution)."""

    name: str
    ref: str
    local: str
    recipe: Path
    kind: ImageKind  # "rootfs" (mmdebstrap + FROM scratch) or "dockerfile"
    depends_on: str | None = None
    suite: str = "trixie"
    packages: tuple[str, ...] = ()
    source_date_epoch: int = 0
    # `allow-floating`: a tag-only `ref` may be pulled, and a copy pulled from it trusted. Off by
    # default: a tag is whatever the registry says today, which no lockfile or recipe pins.
    allow_floating: bool = False

    @property
    def pinned_digest(self) -> str | None:
        """The digest of `ref` when it is pinned (`name:tag@sha256:...`), else None."""
        return self.ref.partition("@")[2] or None

    @property
    def floating(self) -> bool:
        """`ref` names a tag only (`postgres:17`): what it points at can change under us."""
        return bool(self.ref) and self.pinned_digest is None


def images_table(value: Any, path: Path) -> Mapping[str, Any]:
    """`[tool.harness.images]`: any name, each a table of its own."""
    if not isinstance(value, Mapping):
        raise HarnessError(
            "[tool.harness.images] must be a table of images",
            checked=str(path),
            fix="write one [tool.harness.images.<name>] table per logical image",
        )
    return value


# The recipes ship in the package, beside this one: tierharness/recipes/<name>.
RECIPES = Path(__file__).resolve().parent.parent / "recipes"
# The harness's own logical images, used unless a project's [tool.harness.images.<name>]
# says otherwise (key by key). Their offline recipes ship inside the package. Each `ref` is the
# upstream image its recipe stands in for, as a tag: never pulled unless the project pins it by
# digest or sets `allow-floating = true` for that image, so by default, online or not, every
# image is built from its recipe and its packages.lock.
DEFAULT_IMAGES: Mapping[str, Mapping[str, Any]] = {
    "base": {
        "ref": "python:3.13-slim-trixie",
        "local": "harness/base:3.13-trixie",
        "kind": "rootfs",
        "suite": "trixie",
        "packages": ["python3", "python3-venv", "ca-certificates", "tzdata"],
        # 2026-01-01: fixed, so the base is a pure function of its inputs.
        "source-date-epoch": 1767225600,
    },
    # For Dockerfile images, `packages` is what `nox -s lock -- --images` resolves on `base`
    # into the recipe's packages.lock, which the recipe installs.
    "postgres": {
        "ref": "postgres:17",
        "local": "harness/postgres:17",
        "kind": "dockerfile",
        "depends-on": "base",
        "packages": ["postgresql-17"],
    },
    "redis": {
        "ref": "redis:7",
        "local": "harness/redis:7",
        "kind": "dockerfile",
        "depends-on": "base",
        "packages": ["redis-server", "redis-tools"],
    },
    # The loopback registry `harness publish` pushes to (distribution 2.8, Debian's package).
    # Always the offline recipe: its entrypoint and config paths are the harness's own, which
    # an upstream `registry:2` does not have.
    "registry": {
        "ref": "harness/registry:2.8",
        "local": "harness/registry:2.8",
        "kind": "dockerfile",
        "depends-on": "base",
        "packages": ["docker-registry", "apache2-utils"],
    },
    # The second engine in a privileged container, for users who are not root
    # (tierharness/engine/second_engine.py). Always the offline recipe, like `registry`.
    "engine": {
        "ref": "harness/engine:26",
        "local": "harness/engine:26",
        "kind": "dockerfile",
        "depends-on": "base",
        "packages": ["docker.io", "containerd", "runc", "docker-buildx", "docker-cli", "iptables", "pigz"],
    },
    # The deploy rehearsal's proxy and monitoring (tierharness/deploy/).
    "haproxy": {
        "ref": "haproxy:3.0",
        "local": "harness/haproxy:3",
        "kind": "dockerfile",
        "depends-on": "base",
        "packages": ["haproxy"],
    },
    "prometheus": {
        "ref": "prom/prometheus:v2.53.3",
        "local": "harness/prometheus:2",
        "kind": "dockerfile",
        "depends-on": "base",
        "packages": ["prometheus"],
    },
}

_PINNED = re.compile(r"sha256:[0-9a-f]{64}")
_IMAGE_KEYS = (
    "ref", "local", "recipe", "kind", "depends-on", "suite", "packages", "source-date-epoch",
    "allow-floating",
)  # fmt: skip


def image_specs(
    root: Path, path: Path, table: Mapping[str, Any], env: Environment
) -> dict[str, LogicalImage]:
    specs: dict[str, LogicalImage] = {}
    for name in [*DEFAULT_IMAGES, *(n for n in table if n not in DEFAULT_IMAGES)]:
        where = f"tool.harness.images.{name}"
        own = known_table(table.get(name, {}), where, _IMAGE_KEYS, path)
        default = DEFAULT_IMAGES.get(name, {})
        body = {**default, "recipe": str(RECIPES / name), **own} if default else dict(own)
        missing = [k for k in ("ref", "local", "recipe", "kind") if k not in body]
        if missing:
            raise HarnessError(
                f"image {name!r} is missing {', '.join(missing)}",
                checked=f"[{where}] in {path}",
                fix="give every logical image of your own ref, local, recipe and kind "
                f"(the harness's own, {', '.join(DEFAULT_IMAGES)}, need none of them)",
            )
        kind = body["kind"]
        if kind not in ("rootfs", "dockerfile"):
            raise HarnessError(
                f"image {name!r} has unknown kind {kind!r}",
                checked=f"[{where}].kind",
                fix='use kind = "rootfs" or kind = "dockerfile"',
            )
        depends_on = body.get("depends-on")
        ref = env.image_refs.get(name.lower(), typed(body, "ref", str, "", where))
        if "@" in ref and not _PINNED.fullmatch(ref.partition("@")[2]):
            raise HarnessError(
                f"image {name!r}: {ref!r} is not pinned by a sha256 digest",
                checked=f"[{where}].ref (or HARNESS_IMAGE_{name.upper()}_REF)",
                fix="write it as name:tag@sha256:<64 hex digits>, or drop the @ part",
            )
        specs[name] = LogicalImage(
            name=name,
            # A registry reference can be overridden per image, e.g. to pin a digest in CI.
            ref=ref,
            local=typed(body, "local", str, "", where),
            recipe=root / typed(body, "recipe", str, "", where),
            kind=kind,
            depends_on=str(depends_on) if depends_on else None,
            suite=typed(body, "suite", str, "trixie", where),
            packages=strings(body, "packages", (), where),
            source_date_epoch=typed(body, "source-date-epoch", int, 0, where),
            # With a pinned ref (say from HARNESS_IMAGE_<NAME>_REF in CI) the pin decides and this
            # is moot, so the two are not refused together.
            allow_floating=typed(body, "allow-floating", bool, False, where),
        )
    for spec in specs.values():
        if spec.depends_on and spec.depends_on not in specs:
            raise HarnessError(
                f"image {spec.name!r} depends on unknown image {spec.depends_on!r}",
                checked="[tool.harness.images.*].depends-on",
                fix=f"define [tool.harness.images.{spec.depends_on}] or drop depends-on",
            )
    return specs
