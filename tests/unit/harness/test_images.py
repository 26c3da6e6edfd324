from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tierharness.config import LogicalImage, Settings, load_settings
from tierharness.errors import HarnessError, ImageError
from tierharness.imaging import rootfs
from tierharness.imaging.project_image_origin import _repository
from tierharness.imaging.resolution import ImageResolver, LocalOrigin, ResolvedImage, recipe_digest

ROOT = Path(__file__).resolve().parents[3]
BASE = "harness/base:3.13-trixie"


@dataclass
class RecordingBackend:
    """Stands in for the engine to check the *order* of resolution, nothing Docker-specific.

    `recipes` are the `harness.recipe` labels of local tags; `origins` the repository digests
    of other repositories an image has (what a pull leaves behind), by tag."""

    local: dict[str, str] = field(default_factory=dict)
    pullable: set[str] = field(default_factory=set)
    calls: list[str] = field(default_factory=list)
    recipes: dict[str, str | None] = field(default_factory=dict)
    origins: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A local base is, unless a test says otherwise, one this harness built from its
        # recipe: labelled with the recipe digest, as every logical image it builds is.
        if BASE in self.local and BASE not in self.origins:
            self.recipes.setdefault(BASE, recipe_digest(load_settings(ROOT).image("base"), {}))

    def local_digest(self, tag: str) -> str | None:
        self.calls.append(f"inspect {tag}")
        return self.local.get(tag)

    def local_origin(self, tag: str) -> LocalOrigin:
        return LocalOrigin(self.recipes.get(tag), self.origins.get(tag, ()))

    def pull(self, ref: str) -> str | None:
        self.calls.append(f"pull {ref}")
        if ref in self.pullable:
            pinned = ref.partition("@")[2]
            self.local[ref] = pinned or f"sha256:{'0' * 56}{len(ref):08x}"
            self.origins[ref] = (f"{_repository(ref)}@{self.local[ref]}",)
            return None
        return "no such host"

    def tag(self, source: str, target: str) -> None:
        self.calls.append(f"tag {source} {target}")
        self.local[target] = self.local[source]
        self.origins[target] = self.origins.get(source, ())
        self.recipes[target] = self.recipes.get(source)

    def build(self, spec: LogicalImage, settings: Settings, resolved_deps: dict[str, ResolvedImage]) -> str:
        self.calls.append(f"build {spec.name} with {sorted(resolved_deps)}")
        self.local[spec.local] = f"sha256:built-{spec.name}"
        self.recipes[spec.local] = recipe_digest(spec, resolved_deps)
        self.origins[spec.local] = ()
        return self.local[spec.local]


@pytest.fixture
def settings(project_root: Path) -> Settings:
    return load_settings(project_root)


def test_local_copy_wins_and_nothing_is_pulled_or_built(settings: Settings) -> None:
    backend = RecordingBackend(local={"harness/base:3.13-trixie": "sha256:aaa"})
    image = ImageResolver(settings, backend).ensure("base")
    assert image == ResolvedImage("base", "harness/base:3.13-trixie", "sha256:aaa", "local")
    assert backend.calls == ["inspect harness/base:3.13-trixie"]


PIN = "sha256:" + "ab" * 32


def _project(tmp_path: Path, tables: dict[str, str]) -> Settings:
    """Settings of a project whose pyproject.toml holds these [tool.harness.images.NAME] tables."""
    text = "".join(f"[tool.harness.images.{name}]\n{body}\n" for name, body in tables.items())
    (tmp_path / "pyproject.toml").write_text(text)
    return load_settings(tmp_path)


def test_a_floating_tag_is_never_pulled_by_default_the_recipe_is_built(settings: Settings) -> None:
    messages: list[str] = []
    backend = RecordingBackend(pullable={"python:3.13-slim-trixie"})
    image = ImageResolver(settings, backend, log=messages.append).ensure("base")
    assert image == ResolvedImage("base", "harness/base:3.13-trixie", "sha256:built-base", "built")
    assert backend.calls == ["inspect harness/base:3.13-trixie", "build base with []"]
    assert "python:3.13-slim-trixie is a floating tag: not pulled without allow-floating" in messages[-1]


def test_the_default_images_pull_nothing_even_where_every_ref_is_reachable(settings: Settings) -> None:
    # A hosted runner online: every upstream tag answers, and still the recipes are built.
    backend = RecordingBackend(pullable={s.ref for s in settings.images.values()})
    resolved = ImageResolver(settings, backend).ensure_all()
    assert [c for c in backend.calls if c.startswith("pull")] == []
    assert {r.source for r in resolved} == {"built"}
    assert not any(s.allow_floating for s in settings.images.values())


def test_allow_floating_pulls_the_tag_and_logs_the_digest_it_got(tmp_path: Path) -> None:
    settings = _project(tmp_path, {"base": "allow-floating = true"})
    messages: list[str] = []
    backend = RecordingBackend(pullable={"python:3.13-slim-trixie"})
    image = ImageResolver(settings, backend, log=messages.append).ensure("base")
    assert image.source == "pulled"
    assert image.ref == "harness/base:3.13-trixie"
    assert backend.calls == [
        "inspect harness/base:3.13-trixie",
        "pull python:3.13-slim-trixie",
        "tag python:3.13-slim-trixie harness/base:3.13-trixie",
        "inspect harness/base:3.13-trixie",
    ]
    (line,) = messages
    assert "pulled python:3.13-slim-trixie (a floating tag; allow-floating = true)" in line
    assert f"got python@{image.digest}" in line
    assert f'ref = "python:3.13-slim-trixie@{image.digest}"' in line


def test_a_ref_pinned_by_digest_is_pulled_without_any_opt_in(tmp_path: Path) -> None:
    ref = f"python:3.13-slim-trixie@{PIN}"
    settings = _project(tmp_path, {"base": f'ref = "{ref}"'})
    backend = RecordingBackend(pullable={ref})
    image = ImageResolver(settings, backend).ensure("base")
    assert (image.source, image.digest) == ("pulled", PIN)
    assert f"pull {ref}" in backend.calls


def test_failed_pull_falls_back_to_the_recipe_and_says_why(tmp_path: Path) -> None:
    settings = _project(tmp_path, {"base": "allow-floating = true"})
    messages: list[str] = []
    backend = RecordingBackend()
    image = ImageResolver(settings, backend, log=messages.append).ensure("base")
    assert image.source == "built"
    assert backend.calls[-2:] == ["pull python:3.13-slim-trixie", "build base with []"]
    assert any("pull of python:3.13-slim-trixie failed (no such host)" in m for m in messages)


def test_offline_mode_never_pulls(tmp_path: Path) -> None:
    settings = _project(tmp_path, {"base": "allow-floating = true", "redis": f'ref = "redis:7@{PIN}"'})
    backend = RecordingBackend(pullable={"python:3.13-slim-trixie", f"redis:7@{PIN}"})
    ImageResolver(settings, backend, pull=False).ensure("base")
    with pytest.raises(ImageError, match="pins"):  # built offline, which is not the pinned image
        ImageResolver(settings, backend, pull=False).ensure("redis")
    assert not any(c.startswith("pull") for c in backend.calls)


def _pulled_copy(tag: str, source: str) -> RecordingBackend:
    """An engine holding `tag` as the old harness left it: pulled from `source`, re-tagged."""
    digest = "sha256:" + "ee" * 32
    return RecordingBackend(
        local={tag: digest, "harness/base:3.13-trixie": "sha256:aaa"},
        origins={tag: (f"{_repository(source)}@{digest}",)},
    )


def test_a_base_pulled_from_a_floating_tag_earlier_is_no_longer_trusted(settings: Settings) -> None:
    messages: list[str] = []
    backend = _pulled_copy("harness/base:3.13-trixie", "python:3.13-slim-trixie")
    image = ImageResolver(settings, backend, log=messages.append).ensure("base")
    assert (image.source, image.digest) == ("built", "sha256:built-base")
    assert not any(c.startswith("pull") for c in backend.calls)
    assert "was pulled from python:3.13-slim-trixie (as python@sha256:" in messages[0]
    assert "neither pins it by digest nor sets allow-floating" in messages[0]


def test_a_base_that_is_also_known_under_another_local_name_is_still_trusted(settings: Settings) -> None:
    # The containerd store lists every name of the same content: a reproducible base built by
    # two checkouts under two tags has two repository digests, and neither came from a pull.
    backend = _pulled_copy("harness/base:3.13-trixie", "other-checkout/base:3.13-trixie")
    backend.recipes[BASE] = recipe_digest(settings.image("base"), {})  # built here, by the recipe
    image = ImageResolver(settings, backend).ensure("base")
    assert (image.source, backend.calls) == ("local", ["inspect harness/base:3.13-trixie"])


def test_allow_floating_keeps_a_copy_pulled_from_its_ref_not_from_another_repository(tmp_path: Path) -> None:
    settings = _project(tmp_path, {"redis": "allow-floating = true"})
    kept = _pulled_copy("harness/redis:7", "redis:7")
    assert ImageResolver(settings, kept).ensure("redis").source == "local"
    elsewhere = _pulled_copy("harness/redis:7", "someone/redis:7")
    messages: list[str] = []
    image = ImageResolver(settings, elsewhere, log=messages.append).ensure("redis")
    assert image.source == "built"  # the pull of redis:7 fails here, so the recipe is built
    assert "pull redis:7" in elsewhere.calls
    assert "harness/redis:7 has no harness.recipe label" in messages[0]


def test_a_pin_replaces_a_local_copy_of_another_digest_and_keeps_one_of_its_own(tmp_path: Path) -> None:
    ref = f"redis:7@{PIN}"
    settings = _project(tmp_path, {"redis": f'ref = "{ref}"'})
    stale = _pulled_copy("harness/redis:7", "redis:7")
    stale.pullable.add(ref)
    messages: list[str] = []
    image = ImageResolver(settings, stale, log=messages.append).ensure("redis")
    assert (image.source, image.digest) == ("pulled", PIN)
    assert f"not {PIN} as {ref} pins" in messages[0]
    # The pulled copy has no recipe label and came from a registry: the pin is what vouches for it.
    again = ImageResolver(settings, stale).ensure("redis")
    assert (again.source, again.digest) == ("local", PIN)


def test_dependencies_resolve_first_and_feed_the_build(settings: Settings) -> None:
    backend = RecordingBackend(local={"harness/base:3.13-trixie": "sha256:aaa"})
    image = ImageResolver(settings, backend, pull=False).ensure("postgres")
    assert image.source == "built"
    assert backend.calls == [
        "inspect harness/base:3.13-trixie",
        "inspect harness/postgres:17",
        "build postgres with ['base']",
    ]


def test_rebuild_ignores_local_copies_and_rebuilds_each_image_once(settings: Settings) -> None:
    backend = RecordingBackend(local={s.local: "sha256:old" for s in settings.images.values()})
    resolved = ImageResolver(settings, backend, rebuild=True).ensure_all()
    builds = [c for c in backend.calls if c.startswith("build")]
    assert builds == [
        "build base with []",
        "build postgres with ['base']",
        "build redis with ['base']",
        "build registry with ['base']",
        "build engine with ['base']",
        "build haproxy with ['base']",
        "build prometheus with ['base']",
    ]
    assert {r.source for r in resolved} == {"built"}


def test_a_rebuilt_dependency_invalidates_the_dependent_local_copy(settings: Settings) -> None:
    backend = RecordingBackend(local={"harness/postgres:17": "sha256:old"})
    image = ImageResolver(settings, backend, pull=False).ensure("postgres")
    assert image.source == "built"


def test_dependency_cycles_are_refused(settings: Settings) -> None:
    base = settings.images["base"]
    looped = Settings(
        **{
            **settings.__dict__,
            "images": {
                **settings.images,
                "base": LogicalImage(**{**base.__dict__, "depends_on": "postgres"}),
            },
        }
    )
    with pytest.raises(ImageError, match="cycle"):
        ImageResolver(looped, RecordingBackend(), pull=False).ensure("postgres")


def test_unknown_image_names_the_known_ones(settings: Settings) -> None:
    with pytest.raises(HarnessError, match="use one of: base, engine, haproxy, postgres, prometheus, redis"):
        ImageResolver(settings, RecordingBackend()).ensure("mysql")


def test_a_local_image_built_from_another_recipe_is_rebuilt(settings: Settings) -> None:
    backend = RecordingBackend(
        local={"harness/base:3.13-trixie": "sha256:aaa", "harness/redis:7": "sha256:old"},
        recipes={"harness/redis:7": "sha256:an-older-recipe"},
    )
    image = ImageResolver(settings, backend).ensure("redis")
    assert image.source == "built"
    assert "build redis with ['base']" in backend.calls


def test_a_local_image_built_without_the_label_is_rebuilt_and_so_is_one_from_a_registry(
    settings: Settings,
) -> None:
    unlabelled = RecordingBackend(
        local={"harness/base:3.13-trixie": "sha256:aaa", "harness/redis:7": "sha256:old"},
        recipes={"harness/redis:7": None},
    )
    assert ImageResolver(settings, unlabelled).ensure("redis").source == "built"
    pulled = _pulled_copy("harness/redis:7", "redis:7")
    assert ImageResolver(settings, pulled).ensure("redis").source == "built"
    assert "pull redis:7" not in pulled.calls


def test_a_local_image_built_from_the_current_recipe_is_kept(settings: Settings) -> None:
    first = RecordingBackend(local={"harness/base:3.13-trixie": "sha256:aaa"})
    assert ImageResolver(settings, first).ensure("redis").source == "built"
    assert ImageResolver(settings, first).ensure("redis").source == "local"


def test_allow_floating_must_be_a_boolean(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match=r"allow-floating must be a bool"):
        _project(tmp_path, {"redis": 'allow-floating = "yes"'})


@pytest.mark.parametrize(("euid", "mode"), [(0, "root"), (1000, "unshare")])
def test_a_rootfs_is_built_in_root_mode_as_root_and_in_unshare_mode_as_anyone_else(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, euid: int, mode: str
) -> None:
    # A non-root developer builds the same base as root does (tests/integration/harness/
    # test_rootfs_modes.py holds the two tarballs to be identical); the error says how to fix
    # a machine that does not allow it.
    ran: list[list[str]] = []
    monkeypatch.setattr(rootfs.shutil, "which", lambda _name: "/usr/bin/mmdebstrap")
    monkeypatch.setattr(rootfs.os, "geteuid", lambda: euid)
    monkeypatch.setattr(rootfs, "debian_mirror", lambda: "http://mirror.invalid/debian")
    monkeypatch.setattr(rootfs, "run", lambda argv, **kw: ran.append([*argv, kw["fix"]]))
    rootfs.make_rootfs(settings.image("base"), tmp_path / "rootfs.tar", ["python3"])
    (argv,) = ran
    assert f"--mode={mode}" in argv
    assert ("/etc/subuid" in argv[-1]) == (mode == "unshare")


def test_a_rootfs_recipe_digest_changes_with_how_mmdebstrap_is_run(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = settings.image("base")
    before = recipe_digest(base, {})
    monkeypatch.setattr(rootfs, "ROOTFS_FORMAT", rootfs.ROOTFS_FORMAT + ", changed")
    assert recipe_digest(base, {}) != before
