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

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from filelock import FileLock

from tierharness.build.apt import debian_mirror
from tierharness.build.buildx import buildx_build, docker_load
from tierharness.build.debs import (
    Deb,
    check_installed,
    check_lock,
    lock_path,
    rootfs_installed,
    simulated_installs,
    with_hashes,
)
from tierharness.build.oci import read_oci
from tierharness.config import LogicalImage, Settings, environment
from tierharness.engine import docker_cli, engine_client, local_image_id, tag_image
from tierharness.errors import ImageError
from tierharness.process import run

__all__ = [
    "DockerImageBackend",
    "ImageBackend",
    "ImageResolver",
    "LocalOrigin",
    "ResolvedImage",
    "build_rootfs_image",
    "distrust",
    "ensure_image",
    "local_origin",
    "lock_packages",
    "make_rootfs",
    "recipe_digest",
    "resolve_images",
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


class ImageBackend(Protocol):
    """What the resolver needs from an engine; the Docker one is below."""

    def local_digest(self, tag: str) -> str | None: ...
    def local_origin(self, tag: str) -> LocalOrigin: ...
    def pull(self, ref: str) -> str | None:  # None on success, else why it failed
        ...
    def tag(self, source: str, target: str) -> None: ...
    def build(self, spec: LogicalImage, settings: Settings, resolved_deps: dict[str, ResolvedImage]) -> str:
        """Build `spec` offline; returns its digest."""
        ...


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


RECIPE_LABEL = "harness.recipe"


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
        digest.update(ROOTFS_FORMAT.encode())
    for path in sorted(p for p in spec.recipe.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(spec.recipe)).encode() + b"\0" + path.read_bytes() + b"\0")
    for name, dep in sorted(deps.items()):
        digest.update(f"{name}={dep.digest}".encode())
    return "sha256:" + digest.hexdigest()


def local_origin(tag: str) -> LocalOrigin:
    """What the engine knows of where local image `tag` came from (nothing, if it is absent)."""
    from docker.errors import ImageNotFound

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


# --------------------------------------------------------------------------- Docker


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
        from docker.errors import DockerException

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


# How mmdebstrap makes a rootfs; part of a rootfs image's recipe digest, so a change here
# rebuilds the images made the old way. Two customize hooks make the tarball the same whoever
# makes it, wherever:
# - debpython's bytecode is removed: py3compile writes it checked-hash in root mode but
#   timestamped in unshare mode (the image compiles what it imports; nothing reads those);
# - mmdebstrap copies /etc/hostname and /etc/resolv.conf from the machine it runs on: the
#   image's are set to what does not depend on it (the engine mounts its own at run time).
ROOTFS_FORMAT = "mmdebstrap minbase, root or unshare mode, no debpython __pycache__, neutral hostname"


def rootfs_command(spec: LogicalImage, rootfs: Path, include: list[str], mode: str) -> list[str]:
    """mmdebstrap's command line for `spec` in `mode` (root or unshare): the same tarball,
    byte for byte, from either (a test holds the two to it)."""
    return [
        "mmdebstrap", "--quiet", "--variant=minbase", f"--mode={mode}",
        f"--include={','.join(include)}",
        '--aptopt=Acquire::Languages "none"',
        # Docs and man pages are dead weight in a runtime image.
        "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-include=/usr/share/doc/*/copyright",
        '--customize-hook=rm -rf "$1"/usr/share/python3/debpython/__pycache__',
        '--customize-hook=echo localhost > "$1"/etc/hostname',
        '--customize-hook=rm -f "$1"/etc/resolv.conf',
        spec.suite, str(rootfs), debian_mirror(),
    ]  # fmt: skip


def make_rootfs(spec: LogicalImage, rootfs: Path, include: list[str]) -> Path:
    """mmdebstrap: a minbase rootfs tarball of `spec.suite` with `include`, stamped with the
    image's SOURCE_DATE_EPOCH (byte-identical for the same packages). As root in its root
    mode; as anyone else in its unshare mode (a user namespace with the user's subordinate
    ids), which gives the same tarball."""
    if shutil.which("mmdebstrap") is None:
        raise ImageError(
            f"building the {spec.name!r} image offline needs mmdebstrap, which is not installed",
            checked="`mmdebstrap` on PATH",
            fix="apt-get install mmdebstrap (scripts/provision-docker.sh installs it)",
        )
    mode = "root" if os.geteuid() == 0 else "unshare"
    fix = "check that the Debian mirror is reachable and the package names exist"
    if mode == "unshare":
        fix = (
            "as a user other than root, mmdebstrap needs user namespaces and subordinate ids: an "
            "entry for this user in /etc/subuid and /etc/subgid (useradd makes them), newuidmap "
            "(apt-get install uidmap), and unprivileged user namespaces allowed (Ubuntu 24.04: "
            "sysctl kernel.apparmor_restrict_unprivileged_userns=0); or run `nox -s images` once "
            "as root, after which the image stays in the engine for every user; " + fix
        )
    build_env = {"SOURCE_DATE_EPOCH": str(spec.source_date_epoch), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    run(
        rootfs_command(spec, rootfs, include, mode),
        env=build_env,
        what=f"mmdebstrap ({mode} mode) for {spec.name!r}",
        fix=fix,
        error=ImageError,
    )
    return rootfs


def build_rootfs_image(spec: LogicalImage, out: Path, *, env: Mapping[str, str] | None = None) -> str:
    """Build a `rootfs` logical image from its recipe (mmdebstrap, then FROM scratch) and load
    it; `env` may name another engine through DOCKER_HOST. Returns its digest."""
    # With a packages.lock, exactly its versions (checked against the mirror's signed index
    # first); the rootfs is then checked to hold nothing else.
    locked = check_lock(spec)
    include = [f"{d.name}={d.version}" for d in locked] or list(spec.packages)
    with tempfile.TemporaryDirectory(prefix=f"harness-{spec.name}-") as tmp:
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


def lock_packages(settings: Settings, spec: LogicalImage, log: Callable[[str], None] = print) -> list[Deb]:
    """What `spec` installs today, resolved afresh, with each .deb's SHA-256: a rootfs's whole
    package set (mmdebstrap, unpinned), or what a Dockerfile image adds to its base (apt's
    simulation inside the base image). Written to the recipe's packages.lock by the caller."""
    if spec.kind == "rootfs":
        with tempfile.TemporaryDirectory(prefix=f"harness-lock-{spec.name}-") as tmp:
            installed = rootfs_installed(make_rootfs(spec, Path(tmp) / "rootfs.tar", list(spec.packages)))
    else:
        if not spec.depends_on or not spec.packages:
            raise ImageError(
                f"cannot lock the packages of {spec.name!r}: it names no base or no packages",
                checked=f"[tool.harness.images.{spec.name}] depends-on and packages",
                fix="give it depends-on (a Debian-based image) and the packages its recipe installs",
            )
        base = settings.image(spec.depends_on).local
        log(f"{spec.name}: resolving {' '.join(spec.packages)} on {base}")
        proc = run(
            [docker_cli(), "run", "--rm", "--entrypoint", "sh", "--user", "0", base, "-c",
             "apt-get update -qq >/dev/null && apt-get install --simulate --no-install-recommends "
             + " ".join(spec.packages)],
            what=f"resolving the packages of {spec.name!r} on {base}",
            fix="make the base image available (`nox -s images`) and the mirror reachable",
            error=ImageError,
        )  # fmt: skip
        installed = simulated_installs(proc.stdout)
    return with_hashes(installed, spec.name)


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
