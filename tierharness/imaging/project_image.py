"""Build the project's image: lockfiles checked, wheelhouse filled, unit tier run inside
the `test` stage, the production stage exported as a reproducible OCI image and loaded.

Writes `build/image.json` (image reference, manifest digest, what it was built
from) and reuses a previous build when nothing that goes into it changed.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from tierharness.config import BuildConfig, Settings, environment, machine_cache
from tierharness.engine.client import local_image_id
from tierharness.engine.naming import tag_image
from tierharness.engine.retention import record_build, retain
from tierharness.gitrepo import git_output, source_date_epoch, working_files
from tierharness.imaging.buildx import BuildResult, buildx_build, docker_load
from tierharness.imaging.lockfiles import require_hashes
from tierharness.imaging.resolution import resolve_images
from tierharness.imaging.stage_cache import stage_cache
from tierharness.imaging.wheelhouse import fill_wheelhouse
from tierharness.oci import read_oci

__all__ = [
    "BuildSource",
    "BuiltImage",
    "build_image",
    "build_materials",
    "build_source",
    "context_digest",
    "production_args",
    "public_url",
    "source_date_epoch",
]


@dataclass(frozen=True)
class BuiltImage:
    image: str
    digest: str
    revision: str
    source_date_epoch: int
    context_digest: str
    build_seconds: float
    cached_steps: int
    total_steps: int
    reused: bool = False
    deps_cached: int = 0
    deps_total: int = 0


def context_digest(root: Path, paths: list[str]) -> str:
    """A digest of every file git sees (tracked or not ignored) under `paths`: what a build reads."""
    digest = hashlib.sha256()
    for name in working_files(root, paths):
        digest.update(name.encode() + b"\0" + (root / name).read_bytes() + b"\0")
    return digest.hexdigest()


def _inputs(config: BuildConfig) -> list[str]:
    # What the Dockerfile's stages read (see .dockerignore): a change elsewhere (the e2e
    # tests, the README) does not call for a new image.
    return [
        config.dockerfile, ".dockerignore", "pyproject.toml", "requirements", "services", "tierharness",
        "tests/__init__.py", "tests/conftest.py", "tests/plugin_selection.py", "tests/root.py", "tests/unit",
    ]  # fmt: skip


@dataclass(frozen=True)
class BuildSource:
    """What a build is of: checked before anything expensive happens."""

    config: BuildConfig
    lockfiles: list[Path]
    sde: int
    revision: str


def build_source(settings: Settings) -> BuildSource:
    config = settings.build
    lockfiles = [settings.lock.dir / f"{name}.txt" for name in config.lockfiles]
    for path in lockfiles:
        require_hashes(path)  # refuse before building, naming the package
    sde = environment().source_date_epoch or source_date_epoch(settings.root)
    return BuildSource(config, lockfiles, sde, git_output(settings.root, "rev-parse", "HEAD") or "unknown")


def build_materials(settings: Settings, source: BuildSource, log: Callable[[str], None]) -> tuple[str, Path]:
    """The base image (made available) and the filled wheelhouse."""
    (base,) = resolve_images(settings, [source.config.base_image], log=log)
    wheelhouse = fill_wheelhouse(
        source.lockfiles,
        settings.build_dir / "wheelhouse",
        python_version=source.config.python_version,
        cache=machine_cache("wheels"),
    )
    log(f"wheelhouse ready: {len(list(wheelhouse.glob('*.whl')))} wheels in {wheelhouse}")
    return base.ref, wheelhouse


def build_image(
    settings: Settings,
    *,
    force: bool = False,
    no_cache: bool = False,
    log: Callable[[str], None] = print,
) -> BuiltImage:
    source = build_source(settings)
    config, sde, revision, root = source.config, source.sde, source.revision, settings.root
    digest_of_context = context_digest(root, _inputs(config))
    previous = None if force else _reusable(settings.image_record, digest_of_context)
    if previous is not None:
        log(f"reusing {previous.image}: nothing that goes into it changed")
        return previous

    base, _ = build_materials(settings, source, log)  # the Dockerfile bind-mounts build/wheelhouse
    started = time.monotonic()
    if config.test_target:
        log(f"building and running the `{config.test_target}` stage (the unit tier inside the image)")
        _build_stage(settings, config.test_target, {"BASE_IMAGE": base}, sde=sde, no_cache=no_cache)
    tag = f"{config.image}:{revision[:12]}"
    oci = settings.build_dir / "image.oci.tar"
    log(f"building the `{config.target}` stage")
    result = _build_stage(
        settings, config.target, production_args(settings, config, base, revision, sde),
        sde=sde, no_cache=no_cache, oci_dest=oci, oci_name=tag,
    )  # fmt: skip
    seconds = time.monotonic() - started
    digest = read_oci(oci).digest
    docker_load(oci)  # which drops the image the commit's tag named, if that is left unnamed
    record_build(tag)  # the harness's own, for retain() and `clean --prune` to know it by
    tag_image(tag, f"{config.image}:latest")
    built = BuiltImage(
        image=tag,
        digest=digest,
        revision=revision,
        source_date_epoch=sde,
        context_digest=digest_of_context,
        build_seconds=round(seconds, 2),
        cached_steps=result.cached_steps,
        total_steps=result.total_steps,
        deps_cached=sum(1 for stage, _, cached in result.steps() if stage == "deps" and cached),
        deps_total=sum(1 for stage, _, _ in result.steps() if stage == "deps"),
    )
    settings.image_record.parent.mkdir(parents=True, exist_ok=True)
    settings.image_record.write_text(json.dumps(asdict(built), indent=2, sort_keys=True) + "\n")
    retain(settings, protect=tag, log=log)
    return built


def _reusable(record: Path, digest_of_context: str) -> BuiltImage | None:
    """The previous build (`build/image.json`), if it was of the same context and its image
    is still in the engine."""
    if not record.exists():
        return None
    previous = json.loads(record.read_text())
    if previous.get("context_digest") == digest_of_context and local_image_id(previous["image"]):
        return BuiltImage(**{**previous, "reused": True})
    return None


def _build_stage(
    settings: Settings,
    target: str,
    build_args: dict[str, str],
    *,
    sde: int,
    no_cache: bool,
    oci_dest: Path | None = None,
    oci_name: str | None = None,
) -> BuildResult:
    """One stage of the project's Dockerfile, logged to `build/logs/<stage>.log`, with the
    stage's cache locations (tierharness.imaging.stage_cache)."""
    with stage_cache(settings.build.image, target, no_cache=no_cache) as cache:
        return buildx_build(
            settings.root,
            dockerfile=settings.root / settings.build.dockerfile,
            target=target,
            build_args=build_args,
            source_date_epoch=sde,
            no_cache=no_cache,
            oci_dest=oci_dest,
            oci_name=oci_name,
            log_path=settings.build_dir / "logs" / f"{target}.log",
            cache_from=cache.cache_from,
            cache_to=cache.cache_to,
        )


def public_url(url: str) -> str:
    """`url` without credentials: a remote whose URL carries a user and a token before the
    host must not put that token into a label of the image. scp-like `git@host:path` has none."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    host = authority.rpartition("@")[2]
    return f"{scheme}://{host}{slash}{path}"


def production_args(
    settings: Settings, config: BuildConfig, base: str, revision: str, sde: int
) -> dict[str, str]:
    source_url = public_url(
        git_output(settings.root, "config", "--get", "remote.origin.url") or config.source_url
    )
    return {
        "BASE_IMAGE": base,
        "VCS_REF": revision,
        "CREATED": datetime.fromtimestamp(sde, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "SOURCE_URL": source_url,
        "SETUID_ALLOWLIST": " ".join(config.setuid_allowlist),
    }
