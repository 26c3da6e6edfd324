"""Logical images (`base`, `postgres`, `redis`, ...) made available without a registry.

Everything downstream (fixtures, Dockerfile build args) runs the image's `local` tag only, so
where an image came from never matters to its users; what the tag may hold is decided here.
For each image, the first of:

1. a local copy of its `local` tag that can be trusted: with a `ref` pinned by digest, a copy
   of exactly that digest; otherwise one built here from the current recipe (its
   `harness.recipe` label; a `rootfs` image carries none and counts as built here unless it
   came from `ref`'s repository), or, only under `allow-floating = true`, one pulled from
   `ref`'s repository;
2. a pull of `ref`, re-tagged as `local`, but only of a reference pinned by digest
   (`name@sha256:...`, `name:tag@sha256:...`), or of a tag-only one whose image table says
   `allow-floating = true`; such a pull logs the digest the tag resolved to;
3. its offline recipe, built here (Debian packages at the versions of its packages.lock).

A tag (`postgres:17`) is whatever the registry says that day: pulled and re-tagged as the
harness's own image, it would be trusted from then on, unchecked by any lockfile. So by default
a tag-only `ref` is never pulled, and a local copy that came from `ref`'s repository without a
matching pin (what the resolver before allow-floating left behind) is rebuilt from its recipe.
The harness's own images have tag-only refs: on any machine, online or not, they are built from
their recipes unless a project pins them or opts in. See docs/images.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from filelock import FileLock

from tierharness.config import LogicalImage, Settings
from tierharness.engine.client import local_image_id
from tierharness.errors import ImageError
from tierharness.imaging.project_image_backend import DockerImageBackend, build_rootfs_image
from tierharness.imaging.project_image_origin import (
    RECIPE_LABEL,
    LocalOrigin,
    distrust,
    local_origin,
    recipe_digest,
)
from tierharness.imaging.project_image_packages import lock_packages
from tierharness.imaging.rootfs import ROOTFS_FORMAT, make_rootfs, rootfs_command

# With what the resolver builds on (image_origin, image_backend, rootfs, image_packages): callers
# import it all from here.
__all__ = [
    "RECIPE_LABEL",
    "ROOTFS_FORMAT",
    "DockerImageBackend",
    "ImageBackend",
    "ImageResolver",
    "LocalOrigin",
    "ResolvedImage",
    "build_rootfs_image",
    "distrust",
    "ensure_image",
    "images_lock_path",
    "local_origin",
    "lock_packages",
    "make_rootfs",
    "recipe_digest",
    "resolve_images",
    "rootfs_command",
]

Source = Literal["local", "pulled", "built"]


@dataclass(frozen=True)
class ResolvedImage:
    name: str
    ref: str  # the tag everything runs
    digest: str
    source: Source

    def line(self) -> str:
        return f"{self.name} {self.ref} {self.digest}"


class ImageBackend(Protocol):
    """What the resolver needs from an engine; the Docker one is image_backend.DockerImageBackend."""

    def local_digest(self, tag: str) -> str | None: ...
    def local_origin(self, tag: str) -> LocalOrigin: ...
    def pull(self, ref: str) -> str | None:  # None on success, else why it failed
        ...
    def tag(self, source: str, target: str) -> None: ...
    def build(self, spec: LogicalImage, settings: Settings, resolved_deps: dict[str, ResolvedImage]) -> str:
        """Build `spec` offline; returns its digest."""
        ...


class ImageResolver:
    """Makes logical images available, each at most once per resolver."""

    def __init__(
        self,
        settings: Settings,
        backend: ImageBackend,
        *,
        pull: bool = True,
        rebuild: bool = False,
        log: Callable[[str], None] = lambda _msg: None,
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.pull = pull
        self.rebuild = rebuild
        self.log = log
        self._done: dict[str, ResolvedImage] = {}

    def ensure_all(self) -> list[ResolvedImage]:
        return [self.ensure(name) for name in self.settings.images]

    def ensure(self, name: str, _chain: tuple[str, ...] = ()) -> ResolvedImage:
        if name in self._done:
            return self._done[name]
        if name in _chain:
            raise ImageError(
                f"images depend on each other in a cycle: {' -> '.join((*_chain, name))}",
                checked="[tool.harness.images.*].depends-on",
                fix="remove one of the depends-on links",
            )
        spec = self.settings.image(name)
        deps: dict[str, ResolvedImage] = {}
        if spec.depends_on:
            deps[spec.depends_on] = self.ensure(spec.depends_on, (*_chain, name))
        resolved = self._resolve(spec, deps)
        pinned = spec.pinned_digest
        if pinned and resolved.digest != pinned:
            # A recipe built offline (the pull failed) is not the pinned image either.
            raise ImageError(
                f"image {name!r}: the {resolved.source} copy {spec.local} is {resolved.digest}, "
                f"but {spec.ref} pins {pinned}",
                checked=f"the digest of {spec.local} against the pin in [tool.harness.images.{name}].ref",
                fix=f"let the pinned image be pulled: make {spec.ref} reachable (credentials in "
                "DOCKER_CONFIG) and resolve without --offline or --rebuild; or update the pin if "
                f"{resolved.digest} is the image you want",
            )
        self._done[name] = resolved
        return resolved

    def _resolve(self, spec: LogicalImage, deps: dict[str, ResolvedImage]) -> ResolvedImage:
        # A dependency that was just rebuilt makes a local copy of this image stale.
        dep_rebuilt = any(d.source == "built" for d in deps.values())
        if self.rebuild or dep_rebuilt:
            return self._build(spec, deps)
        digest = self.backend.local_digest(spec.local)
        if digest:
            why = self._distrust_local(spec, deps, digest)
            if why is None:
                return ResolvedImage(spec.name, spec.local, digest, "local")
            self.log(f"{spec.name}: not using the local copy: {why}")
        if self.pull and (spec.pinned_digest or (spec.floating and spec.allow_floating)):
            pulled = self._pull(spec)
            if pulled is not None:
                return pulled
        return self._build(spec, deps)

    def _distrust_local(self, spec: LogicalImage, deps: dict[str, ResolvedImage], digest: str) -> str | None:
        """Why the local copy (of `digest`) must not be used, or None to use it."""
        pinned = spec.pinned_digest
        if pinned:
            # The pin is the only promise: whatever made the copy, its digest must be the pin's.
            return None if digest == pinned else f"{spec.local} is {digest}, not {pinned} as {spec.ref} pins"
        origin = self.backend.local_origin(spec.local)
        if origin.recipe is None and origin.digest_from(spec.ref):
            return distrust(spec, origin)  # None under allow-floating: the opt-in keeps it
        # Both kinds are labelled with what they were built from: a Dockerfile's files, or a
        # rootfs's packages.lock and the way mmdebstrap is run (ROOTFS_FORMAT).
        if origin.recipe != recipe_digest(spec, deps):
            if origin.recipe is None:
                return f"{spec.local} has no {RECIPE_LABEL} label (not built by this harness's recipe)"
            return f"{spec.local} was built from another recipe (or base)"
        return None

    def _pull(self, spec: LogicalImage) -> ResolvedImage | None:
        why = self.backend.pull(spec.ref)
        if why is None:
            self.backend.tag(spec.ref, spec.local)
            digest = self.backend.local_digest(spec.local)
            if digest:
                if spec.floating:
                    # Say what the tag was today, so the run can be repeated (or pinned) exactly.
                    got = self.backend.local_origin(spec.local).digest_from(spec.ref) or digest
                    self.log(
                        f"{spec.name}: pulled {spec.ref} (a floating tag; allow-floating = true): got "
                        f'{got}; to pin it: ref = "{spec.ref}@{got.rpartition("@")[2]}"'
                    )
                else:
                    self.log(f"{spec.name}: pulled {spec.ref}")
                return ResolvedImage(spec.name, spec.local, digest, "pulled")
            why = f"{spec.local} is not in the image store after the pull"
        self.log(f"{spec.name}: pull of {spec.ref} failed ({why}); building it offline")
        return None

    def _build(self, spec: LogicalImage, deps: dict[str, ResolvedImage]) -> ResolvedImage:
        unpulled = (
            f" ({spec.ref} is a floating tag: not pulled without allow-floating)"
            # (A ref that is the local tag itself, as `registry`'s, names nothing upstream.)
            if self.pull and spec.floating and not spec.allow_floating and spec.ref != spec.local
            else ""
        )
        self.log(f"{spec.name}: building {spec.local} from {spec.recipe}{unpulled}")
        digest = self.backend.build(spec, self.settings, deps)
        return ResolvedImage(spec.name, spec.local, digest, "built")


def ensure_image(ref: str, *, option: str) -> str:
    """`ref` made available in the engine (a local copy, else a pull); its digest. A failure
    names the setting that asked for it, so a typo is fixed where it was made."""
    digest = local_image_id(ref)
    if digest:
        return digest
    why = DockerImageBackend(log=lambda _m: None).pull(ref)
    digest = local_image_id(ref) if why is None else None
    if digest is None:
        raise ImageError(
            f"the image {ref!r} is not in the engine and could not be pulled: {why}",
            checked=f"docker image inspect {ref}, then docker pull {ref}",
            fix=f"correct {option}, or unset it to use the harness's own image "
            "(built offline when no registry is reachable)",
        )
    return digest


def images_lock_path(settings: Settings) -> Path:
    """The lock around image builds, in the project's state directory: a fixed path in the
    shared /tmp could be planted (as a symlink, or held) by any other user of the machine."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    return settings.state_dir / "images.lock"


def resolve_images(
    settings: Settings,
    names: list[str] | None = None,
    *,
    pull: bool = True,
    rebuild: bool = False,
    log: Callable[[str], None] = print,
) -> list[ResolvedImage]:
    backend = DockerImageBackend(log=log)
    resolver = ImageResolver(settings, backend, pull=pull, rebuild=rebuild, log=log)
    with FileLock(str(images_lock_path(settings))):
        return [resolver.ensure(n) for n in (names or list(settings.images))]
