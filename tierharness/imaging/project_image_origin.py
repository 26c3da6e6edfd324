"""Where a local image came from, as far as the engine can tell: the recipe it was built from
(its `harness.recipe` label, the digest of what the build was made of), or the repositories
it was pulled from; and when a pulled copy cannot be trusted."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tierharness.config import LogicalImage
from tierharness.engine.client import engine_client
from tierharness.imaging import rootfs

if TYPE_CHECKING:
    from tierharness.imaging.resolution import ResolvedImage

__all__ = ["RECIPE_LABEL", "LocalOrigin", "distrust", "local_origin", "recipe_digest"]

RECIPE_LABEL = "harness.recipe"


@dataclass(frozen=True)
class LocalOrigin:
    """Where a local image came from, as far as the engine can tell."""

    # The `harness.recipe` label: built here, from the recipe with that digest.
    recipe: str | None = None
    # Repository digests (`repo@sha256:...`) in repositories other than the local tag's own. A
    # pull leaves its source's here; so does any other local name of the same content (a
    # reproducible base built under two tags has two), so only `ref`'s repository is evidence.
    pulled_from: tuple[str, ...] = ()

    def digest_from(self, ref: str) -> str | None:
        """The repository digest this image has in `ref`'s repository, if it came from there."""
        wanted = _repository(ref)
        return next((d for d in self.pulled_from if _repository(d) == wanted), None)


def distrust(spec: LogicalImage, origin: LocalOrigin) -> str | None:
    """Why a local copy of `spec` that was pulled from its `ref` (a tag) cannot be trusted, or
    None when it was not pulled from there, or may be kept. A pin is judged by the caller (it
    needs the digest)."""
    got = origin.digest_from(spec.ref)
    if spec.pinned_digest or origin.recipe is not None or got is None or spec.allow_floating:
        return None
    return (
        f"{spec.local} was pulled from {spec.ref} (as {got}), not built from its recipe, and "
        f"[tool.harness.images.{spec.name}] neither pins it by digest nor sets allow-floating"
    )


def _repository(ref: str) -> str:
    """`postgres:17@sha256:..` and `docker.io/library/postgres` -> `postgres`."""
    name = ref.split("@", 1)[0]
    if ":" in name.rsplit("/", 1)[-1]:
        name = name.rsplit(":", 1)[0]
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/library/"):
        name = name.removeprefix(prefix)
    return name


def recipe_digest(spec: LogicalImage, deps: dict[str, ResolvedImage]) -> str:
    """What an offline build of `spec` is made of: its recipe's files, what it installs, and
    the digests of the images it builds on. A local image labelled otherwise is stale."""
    digest = hashlib.sha256(f"{spec.kind}|{spec.suite}|{','.join(spec.packages)}".encode())
    if spec.kind == "rootfs":
        digest.update(rootfs.ROOTFS_FORMAT.encode())
    for path in sorted(p for p in spec.recipe.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(spec.recipe)).encode() + b"\0" + path.read_bytes() + b"\0")
    for name, dep in sorted(deps.items()):
        digest.update(f"{name}={dep.digest}".encode())
    return "sha256:" + digest.hexdigest()


def local_origin(tag: str) -> LocalOrigin:
    """What the engine knows of where local image `tag` came from (nothing, if it is absent)."""
    from docker.errors import ImageNotFound  # noqa: PLC0415  lazy: start-up time, the docker SDK loads requests

    try:
        attrs = engine_client().images.get(tag).attrs
    except ImageNotFound:
        return LocalOrigin()
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    # With the containerd image store, every name of an image has a repository digest: a copy
    # built or loaded here has its own tag's, a pulled one its source's too.
    own = _repository(tag)
    pulled = tuple(d for d in attrs.get("RepoDigests") or [] if _repository(d) != own)
    return LocalOrigin(labels.get(RECIPE_LABEL), pulled)
