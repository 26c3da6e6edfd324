"""`repro-check`: build an image twice from clean, the second time with the build's
surroundings varied the way reprotest varies them, and compare the manifest digests.

Varied for the second build: the checkout path, the umask the checkout was made
under (file modes), TZ and the locale of the build client, every file's mtime
(set far in the past, which clamping alone would not hide), and the wall clock
(the builds run one after the other, at least a second apart). Both builds run
with no cache and export OCI with rewrite-timestamp and no provenance.

Each build's RUN steps are its own (`buildx_build(unshared=True)`): with no cache, BuildKit
still runs a step once for every build that loads it while another build holds it, so a longer
build beside the check could give both of its builds the same `RUN date` output
(docs/repro-check.md, also on why steps before the first RUN may still be shared).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from tierharness.config import Settings
from tierharness.gitrepo import working_files
from tierharness.imaging.buildx import buildx_build
from tierharness.imaging.project_image import build_materials, build_source, production_args
from tierharness.oci import read_oci
from tierharness.repro.diff import ImageDiff, diff_images, write_reports
from tierharness.scratch import make_scratch

__all__ = [
    "FIRST",
    "SECOND",
    "DockerfileBuild",
    "Variation",
    "check_reproducible",
    "kept_tarball",
    "prepare_tree",
    "report_folder",
    "repro_check",
]


@dataclass(frozen=True)
class Variation:
    name: str
    path: str  # where the tree is copied, under the run's temp folder
    umask: int
    tz: str
    lang: str
    mtime: int | None  # every file's mtime, or None to keep the copy's

    def env(self) -> dict[str, str]:
        return {"TZ": self.tz, "LANG": self.lang, "LC_ALL": self.lang}


FIRST = Variation("first", "one/src", 0o022, "UTC", "C.UTF-8", None)
SECOND = Variation(
    "second", "two/a/different/checkout-path", 0o002, "Pacific/Kiritimati", "fr_FR.UTF-8", 1_000_000_000
)


def prepare_tree(
    source: Path, dest: Path, variation: Variation, extra: Mapping[str, Path] | None = None
) -> Path:
    """Copy `source` to `dest` as a checkout made under `variation` would look."""
    for name in working_files(source):
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name, target)
        executable = os.stat(source / name).st_mode & 0o111
        os.chmod(target, (0o777 if executable else 0o666) & ~variation.umask)
    for name, path in (extra or {}).items():
        # Large generated inputs (the wheelhouse) are linked, not copied.
        shutil.copytree(path, dest / name, copy_function=os.link, dirs_exist_ok=True)
    for folder in [dest, *(p for p in dest.rglob("*") if p.is_dir())]:
        os.chmod(folder, 0o777 & ~variation.umask)
    if variation.mtime is not None:
        for path in dest.rglob("*"):
            os.utime(path, (variation.mtime, variation.mtime), follow_symlinks=False)
    return dest


@dataclass(frozen=True)
class DockerfileBuild:
    """What to build: a Dockerfile (relative to the context), a target and build arguments."""

    dockerfile: str = "Dockerfile"
    target: str | None = None
    build_args: Mapping[str, str] | None = None
    source_date_epoch: int = 0
    extra: Mapping[str, Path] | None = None  # generated inputs placed into the context


def check_reproducible(
    context: Path,
    spec: DockerfileBuild,
    report_dir: Path,
    *,
    log: Callable[[str], None] = print,
    keep: bool = False,
    second_env: Mapping[str, str] | None = None,
) -> ImageDiff:
    """Build twice (FIRST, then SECOND), compare, write report.json and report.md. With
    `second_env` (DOCKER_HOST of another engine), the second build runs on that engine."""
    report_dir.mkdir(parents=True, exist_ok=True)
    work = make_scratch("repro")
    try:
        tarballs: list[Path] = []
        for variation in (FIRST, SECOND):
            if tarballs:
                time.sleep(1.1)  # a different wall clock for the second build, even on a fast machine
            tree = prepare_tree(context, work / variation.path, variation, spec.extra)
            tarball = kept_tarball(report_dir, variation)
            log(
                f"{variation.name} build: {tree} "
                f"(umask {variation.umask:04o}, TZ={variation.tz}, {variation.lang})"
            )
            buildx_build(
                tree,
                dockerfile=tree / spec.dockerfile,
                target=spec.target,
                build_args=spec.build_args,
                source_date_epoch=spec.source_date_epoch,
                no_cache=True,
                unshared=True,
                oci_dest=tarball,
                env={**variation.env(), **(second_env if tarballs and second_env else {})},
                log_path=report_dir / f"{variation.name}.build.log",
            )
            tarballs.append(tarball)
        diff = diff_images(read_oci(tarballs[0]), read_oci(tarballs[1]))
        json_path, _ = write_reports(diff, report_dir)
        meta = json_path.with_name("variations.json")
        meta.write_text(json.dumps([asdict(FIRST), asdict(SECOND)], indent=2) + "\n")
        if diff.reproducible and not keep:
            for tarball in tarballs:
                tarball.unlink(missing_ok=True)
        return diff
    finally:
        shutil.rmtree(work, ignore_errors=True)


def kept_tarball(report_dir: Path, variation: Variation) -> Path:
    """Where a build's OCI tarball goes (kept with `keep`, or when the two builds differ)."""
    return report_dir / f"{variation.name}.oci.tar"


def report_folder(settings: Settings) -> Path:
    """Where `repro_check` writes its reports and, with `keep`, both OCI tarballs."""
    return settings.build_dir / "repro"


def repro_check(
    settings: Settings,
    *,
    keep: bool = False,
    log: Callable[[str], None] = print,
    second_env: Mapping[str, str] | None = None,
) -> ImageDiff:
    """Build the production image twice from clean, varied, and compare (see tierharness.repro.check);
    with `second_env`, the second build on another engine."""
    source = build_source(settings)
    config = source.config
    base, wheelhouse = build_materials(settings, source, log)
    spec = DockerfileBuild(
        dockerfile=config.dockerfile,
        target=config.target,
        build_args=production_args(settings, config, base, source.revision, source.sde),
        source_date_epoch=source.sde,
        extra={"build/wheelhouse": wheelhouse},
    )
    return check_reproducible(
        settings.root, spec, report_folder(settings), log=log, keep=keep, second_env=second_env
    )
