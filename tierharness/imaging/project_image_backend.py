"""The Docker engine as the resolver's backend (`images.ImageBackend`): images in its
containerd store, pulls, and offline builds of a recipe through buildx, labelled with what
they were built from (`image_origin.recipe_digest`)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from tierharness.config import LogicalImage, Settings, environment
from tierharness.engine.client import engine_client, local_image_id
from tierharness.engine.naming import tag_image
from tierharness.errors import ImageError
from tierharness.imaging.buildx import buildx_build, docker_load
from tierharness.imaging.debs import check_installed, check_lock, lock_path, rootfs_installed
from tierharness.imaging.project_image_origin import RECIPE_LABEL, LocalOrigin, local_origin, recipe_digest
from tierharness.imaging.rootfs import make_rootfs
from tierharness.oci import read_oci
from tierharness.scratch import scratch_folder

if TYPE_CHECKING:
    from tierharness.imaging.resolution import ResolvedImage

__all__ = ["DockerImageBackend", "build_rootfs_image"]


class DockerImageBackend:
    """The real engine: images in the containerd store, builds through buildx."""

    def __init__(self, log: Callable[[str], None] = print) -> None:
        self.client = engine_client()
        self.log = log

    def local_digest(self, tag: str) -> str | None:
        return local_image_id(tag)

    def local_origin(self, tag: str) -> LocalOrigin:
        return local_origin(tag)

    def pull(self, ref: str) -> str | None:
        from docker.errors import DockerException  # noqa: PLC0415  lazy: start-up time, the docker SDK loads requests

        try:
            self.client.images.pull(ref)
        except DockerException as exc:
            return str(exc).splitlines()[0][:200]
        return None

    def tag(self, source: str, target: str) -> None:
        tag_image(source, target)

    def build(self, spec: LogicalImage, settings: Settings, resolved_deps: dict[str, ResolvedImage]) -> str:
        out = settings.build_dir / "images"
        out.mkdir(parents=True, exist_ok=True)
        if spec.kind == "rootfs":
            return self._build_rootfs(spec, out)
        build_args = {f"{d.upper()}": r.ref for d, r in resolved_deps.items()}
        check_lock(spec)  # a version gone from the mirror or a changed hash stops here, named
        buildx_build(
            spec.recipe,
            tags=[spec.local],
            build_args=build_args,
            labels={RECIPE_LABEL: recipe_digest(spec, resolved_deps)},
            load=True,
            no_cache=True,
            log_path=out / f"{spec.name}.build.log",
        )
        digest = self.local_digest(spec.local)
        if digest is None:
            builder = environment().builder
            raise ImageError(
                f"{spec.local} was built but is not in the image store",
                checked=f"docker image inspect {spec.local}",
                fix=f"HARNESS_BUILDER={builder} loads its images into another engine than the one "
                "DOCKER_HOST names: use a builder of that engine (or unset HARNESS_BUILDER)"
                if builder
                else "check the engine's log; rerun scripts/provision-docker.sh",
            )
        return digest

    def _build_rootfs(self, spec: LogicalImage, out: Path) -> str:
        return build_rootfs_image(spec, out)


def build_rootfs_image(spec: LogicalImage, out: Path, *, env: Mapping[str, str] | None = None) -> str:
    """Build a `rootfs` logical image from its recipe (mmdebstrap, then FROM scratch) and load
    it; `env` may name another engine through DOCKER_HOST. Returns its digest."""
    # With a packages.lock, exactly its versions (checked against the mirror's signed index
    # first); the rootfs is then checked to hold nothing else.
    locked = check_lock(spec)
    include = [f"{d.name}={d.version}" for d in locked] or list(spec.packages)
    with scratch_folder(spec.name) as tmp:
        context = Path(tmp)
        shutil.copy2(spec.recipe / "Dockerfile", context / "Dockerfile")
        rootfs = make_rootfs(spec, context / "rootfs.tar", include)
        if locked:
            check_installed(locked, rootfs_installed(rootfs), lock_path(spec), exact=True)
        oci = out / f"{spec.name}.oci.tar"
        buildx_build(
            context,
            oci_dest=oci,
            oci_name=spec.local,
            labels={RECIPE_LABEL: recipe_digest(spec, {})},
            no_cache=True,
            source_date_epoch=spec.source_date_epoch,
            env=env,
            log_path=out / f"{spec.name}.build.log",
        )
    docker_load(oci, env)
    return read_oci(oci).digest
