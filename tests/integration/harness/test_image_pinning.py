"""Images never float, against the harness's real loopback registry (distribution 2.8).

A temporary project declares one tiny logical image, `db`, whose recipe is a two-line
Dockerfile and whose `ref` points into the registry. The test pushes its own images there
(A, then B under the same tag) and lets the harness resolve `db` as a run would:

- a tag-only ref is neither pulled nor trusted, before or after the tag moves, and a local copy
  that the old resolver pulled from it is a WARN in `doctor` and is replaced by the recipe;
- with `allow-floating = true`, the tag is pulled and the digest it resolved to is logged;
- a ref pinned by digest is pulled, replaces a local copy of another digest, and runs.

The pushed images hold a static `tini` (Debian's docker.io installs it as `docker-init`), so the
pinned one can really run in a few milliseconds.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from tierharness.config import Settings, load_settings
from tierharness.doctor import image_checks
from tierharness.engine.client import engine_client, local_image_id
from tierharness.engine.image_list import image_summaries
from tierharness.engine.labels import RunIdentity
from tierharness.engine.naming import tag_image
from tierharness.engine.run_ids import new_run_id
from tierharness.imaging.buildx import buildx_build
from tierharness.imaging.resolution import RECIPE_LABEL, local_origin, resolve_images
from tierharness.oci import read_oci
from tierharness.supply.publish import push_oci
from tierharness.supply.registry import Registry, running_registry

REPOSITORY = "x/db"


def _static_init() -> Path:
    """A statically linked program to run in a FROM-scratch image: the engine's own init."""
    for name in ("docker-init", "tini-static"):
        found = shutil.which(name) or shutil.which(name, path="/usr/libexec/docker:/usr/sbin:/usr/bin")
        if found:
            return Path(found)
    pytest.fail(
        "no static tini to put in the test images: looked for docker-init and tini-static on PATH, "
        "/usr/libexec/docker, /usr/sbin and /usr/bin; scripts/provision-docker.sh installs docker.io, "
        "which brings it (package tini)"
    )


@dataclass(frozen=True)
class Pushable:
    """An OCI tarball of a tiny runnable image, and its manifest digest."""

    oci: Path
    digest: str


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Pushable]:
    init = _static_init()
    built: dict[str, Pushable] = {}
    for marker in ("A", "B", "C"):
        context = tmp_path_factory.mktemp(f"image-{marker}")
        shutil.copy2(init, context / "init")
        (context / "marker").write_text(f"image {marker}\n")
        (context / "Dockerfile").write_text(
            'FROM scratch\nCOPY init /init\nCOPY marker /marker\nENTRYPOINT ["/init", "--version"]\n'
        )
        oci = context.parent / f"{context.name}.oci.tar"
        buildx_build(context, oci_dest=oci, oci_name=f"{REPOSITORY}:{marker}", source_date_epoch=0)
        built[marker] = Pushable(oci, read_oci(oci).digest)
    assert len({p.digest for p in built.values()}) == 3
    return built


@pytest.fixture(scope="module")
def identity(harness_reaper: None) -> RunIdentity:
    # Owned by this pytest process: if the run is killed, a reaper's sweep removes its containers.
    return RunIdentity(new_run_id("pinning-"), "pinning", os.getpid())


@pytest.fixture(scope="module")
def registry(
    project_root: Path, tmp_path_factory: pytest.TempPathFactory, identity: RunIdentity
) -> Iterator[Registry]:
    work = tmp_path_factory.mktemp("pinning")
    settings = replace(load_settings(project_root), state_dir=work / "state", build_dir=work / "build")
    with running_registry(settings, identity) as running:
        # The registry wants the run's credentials. A login keeps them in this process's engine
        # client (which every pull here goes through), not in any docker config file; the client
        # is dropped afterwards so they do not outlive the registry.
        engine_client().login(running.user, running.password, registry=running.host)
        try:
            yield running
            assert not _registry_names(running), "images pulled from the test registry were left behind"
        finally:
            engine_client.cache_clear()


@dataclass
class Project:
    """A temporary project with the one logical image `db`, and what resolving it logged."""

    root: Path
    registry: Registry
    local: str
    log: list[str] = field(default_factory=list)
    # Every digest `db` resolved to: a rebuild leaves the previous one without a name.
    seen: set[str] = field(default_factory=set)

    @property
    def tag(self) -> str:
        return f"{self.registry.host}/{REPOSITORY}:1"

    def pinned(self, digest: str) -> str:
        return f"{self.registry.host}/{REPOSITORY}@{digest}"

    def configure(self, ref: str, extra: str = "") -> Settings:
        (self.root / "pyproject.toml").write_text(
            "[tool.harness.images.db]\n"
            f'ref = "{ref}"\nlocal = "{self.local}"\nrecipe = "recipe"\nkind = "dockerfile"\n{extra}'
        )
        return load_settings(self.root)

    def resolve(self, settings: Settings) -> tuple[str, str]:
        """(source, digest) of `db` as a run resolves it; what it logged goes to `log`."""
        self.log.clear()
        (image,) = resolve_images(settings, ["db"], log=self.log.append)
        self.seen.add(image.digest)
        assert image.ref == self.local
        assert local_image_id(self.local) == image.digest
        return image.source, image.digest

    def push(self, image: Pushable) -> None:
        """Point the tag `1` at `image` (moving it, if it pointed elsewhere)."""
        assert push_oci(self.registry, image.oci, REPOSITORY, "1").digest == image.digest


@pytest.fixture
def project(tmp_path: Path, registry: Registry) -> Iterator[Project]:
    (tmp_path / "recipe").mkdir()
    # The offline recipe: nothing to run, only a marker to tell its image from A, B and C.
    (tmp_path / "recipe" / "Dockerfile").write_text("FROM scratch\nCOPY marker /marker\n")
    (tmp_path / "recipe" / "marker").write_text("built from the recipe\n")
    made = Project(tmp_path, registry, f"harness-test/pinning-{secrets.token_hex(4)}:1")
    try:
        yield made
    finally:
        client = engine_client()
        for name in {made.local, *_registry_names(registry)}:
            with contextlib.suppress(Exception):
                client.images.remove(name, force=True)
        for digest in made.seen:  # by now nameless; one with a name elsewhere is refused, and kept
            with contextlib.suppress(Exception):
                client.images.remove(digest)


def _registry_names(registry: Registry) -> set[str]:
    """Every image name in the engine under the registry's host: what pulls from it left."""
    names: set[str] = set()
    # The listing's own summaries: `images.list` inspects each image after listing them all, and
    # fails on one removed meanwhile (by the other worker's test of this module, on this engine).
    for image in image_summaries(engine_client(), intermediate=True):
        for name in [*(image.get("RepoTags") or []), *(image.get("RepoDigests") or [])]:
            if name.startswith(f"{registry.host}/"):
                names.add(name)
    return names


def _recipe_copy(
    project: Project, resolved: tuple[str, str], source: str, images: dict[str, Pushable]
) -> None:
    """`db` resolved to `source` ("built" or "local") and is the recipe's image, none pushed."""
    assert resolved[0] == source, project.log
    assert resolved[1] not in {p.digest for p in images.values()}, f"{project.local} is a pushed image"
    assert RECIPE_LABEL in engine_client().images.get(project.local).labels, (
        f"{project.local} is not the recipe's"
    )


def test_a_floating_tag_is_neither_pulled_nor_trusted_before_or_after_it_moves(
    project: Project, images: dict[str, Pushable]
) -> None:
    a, b = images["A"], images["B"]
    project.push(a)
    settings = project.configure(project.tag)

    _recipe_copy(project, project.resolve(settings), "built", images)
    assert local_image_id(project.tag) is None, f"{project.tag} was pulled"
    assert "is a floating tag: not pulled without allow-floating" in project.log[-1]

    # What the resolver before this change left behind: the tag pulled and re-tagged as the
    # harness's own image. It is not trusted: the recipe is built again.
    engine_client().images.pull(project.tag)
    tag_image(project.tag, project.local)
    assert local_image_id(project.local) == a.digest
    (check,) = image_checks([settings.image("db")], local_image_id, local_origin)
    assert check.status == "WARN", check
    assert f"was pulled from {project.tag} (as {project.pinned(a.digest)})" in check.detail
    _recipe_copy(project, project.resolve(settings), "built", images)
    assert f"was pulled from {project.tag} (as {project.pinned(a.digest)})" in project.log[0]

    # The tag moves to B: still neither pulled nor trusted, with or without a local copy.
    project.push(b)
    engine_client().images.remove(project.tag)
    _recipe_copy(project, project.resolve(settings), "local", images)
    engine_client().images.remove(project.local)
    _recipe_copy(project, project.resolve(settings), "built", images)
    assert local_image_id(project.tag) is None, f"{project.tag} was pulled after it moved"


def test_allow_floating_pulls_the_tag_and_logs_the_digest_it_resolved_to(
    project: Project, images: dict[str, Pushable]
) -> None:
    b, c = images["B"], images["C"]
    project.push(b)
    settings = project.configure(project.tag, "allow-floating = true\n")

    assert project.resolve(settings) == ("pulled", b.digest)
    (line,) = project.log
    assert (
        f"db: pulled {project.tag} (a floating tag; allow-floating = true): got {project.pinned(b.digest)}"
        in line
    )
    assert f'ref = "{project.tag}@{b.digest}"' in line
    # Under the opt-in, the copy pulled from the tag is kept as it is...
    assert project.resolve(settings) == ("local", b.digest)

    # ...and a machine without one gets whatever the tag names that day: that is the cost.
    project.push(c)
    engine_client().images.remove(project.local)
    assert project.resolve(settings) == ("pulled", c.digest)
    assert f"got {project.pinned(c.digest)}" in project.log[0]


def test_a_digest_pinned_ref_is_pulled_replaces_another_copy_and_runs(
    project: Project, images: dict[str, Pushable], identity: RunIdentity
) -> None:
    a, b = images["A"], images["B"]
    project.push(b)
    project.push(a)  # the tag names A; the pin below names B, which only its digest reaches now
    # A copy of A under the local tag, as a pull of the tag would have left it.
    engine_client().images.pull(project.tag)
    tag_image(project.tag, project.local)

    settings = project.configure(project.pinned(b.digest))
    assert project.resolve(settings) == ("pulled", b.digest)
    assert f"is {a.digest}, not {b.digest} as {project.pinned(b.digest)} pins" in project.log[0]
    assert project.resolve(settings) == ("local", b.digest)

    output = engine_client().containers.run(
        project.local, remove=True, labels=identity.labels("pinned-run"), network_mode="none"
    )
    assert b"tini version" in output, output
