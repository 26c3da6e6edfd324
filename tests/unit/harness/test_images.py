from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tierharness.build.images import ImageResolver, ResolvedImage
from tierharness.config import LogicalImage, Settings, load_settings
from tierharness.errors import HarnessError, ImageError


@dataclass
class RecordingBackend:
    """Stands in for the engine to check the *order* of resolution, nothing Docker-specific."""

    local: dict[str, str] = field(default_factory=dict)
    pullable: set[str] = field(default_factory=set)
    calls: list[str] = field(default_factory=list)

    def local_digest(self, tag: str) -> str | None:
        self.calls.append(f"inspect {tag}")
        return self.local.get(tag)

    recipes: dict[str, str | None] = field(default_factory=dict)

    def local_recipe(self, tag: str, ref: str) -> str | None:
        return self.recipes.get(tag, "")

    def pull(self, ref: str) -> str | None:
        self.calls.append(f"pull {ref}")
        if ref in self.pullable:
            self.local[ref] = f"sha256:pulled-{ref}"
            return None
        return "no such host"

    def tag(self, source: str, target: str) -> None:
        self.calls.append(f"tag {source} {target}")
        self.local[target] = self.local[source]

    def build(self, spec: LogicalImage, settings: Settings, resolved_deps: dict[str, ResolvedImage]) -> str:
        self.calls.append(f"build {spec.name} with {sorted(resolved_deps)}")
        self.local[spec.local] = f"sha256:built-{spec.name}"
        return self.local[spec.local]


@pytest.fixture
def settings(project_root: Path) -> Settings:
    return load_settings(project_root)


def test_local_copy_wins_and_nothing_is_pulled_or_built(settings: Settings) -> None:
    backend = RecordingBackend(local={"harness/base:3.13-trixie": "sha256:aaa"})
    image = ImageResolver(settings, backend).ensure("base")
    assert image == ResolvedImage("base", "harness/base:3.13-trixie", "sha256:aaa", "local")
    assert backend.calls == ["inspect harness/base:3.13-trixie"]


def test_registry_is_tried_before_the_offline_recipe(settings: Settings) -> None:
    backend = RecordingBackend(pullable={"python:3.13-slim-trixie"})
    image = ImageResolver(settings, backend).ensure("base")
    assert image.source == "pulled"
    assert image.ref == "harness/base:3.13-trixie"
    assert backend.calls == [
        "inspect harness/base:3.13-trixie",
        "pull python:3.13-slim-trixie",
        "tag python:3.13-slim-trixie harness/base:3.13-trixie",
        "inspect harness/base:3.13-trixie",
    ]


def test_failed_pull_falls_back_to_the_recipe_and_says_why(settings: Settings) -> None:
    messages: list[str] = []
    backend = RecordingBackend()
    image = ImageResolver(settings, backend, log=messages.append).ensure("base")
    assert image.source == "built"
    assert backend.calls[-1] == "build base with []"
    assert any("no such host" in m for m in messages)


def test_offline_mode_never_pulls(settings: Settings) -> None:
    backend = RecordingBackend(pullable={"python:3.13-slim-trixie"})
    ImageResolver(settings, backend, pull=False).ensure("base")
    assert not any(c.startswith("pull") for c in backend.calls)


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


def test_a_local_image_built_without_the_label_is_rebuilt_one_from_a_registry_is_kept(
    settings: Settings,
) -> None:
    unlabelled = RecordingBackend(
        local={"harness/base:3.13-trixie": "sha256:aaa", "harness/redis:7": "sha256:old"},
        recipes={"harness/redis:7": None},
    )
    assert ImageResolver(settings, unlabelled).ensure("redis").source == "built"
    pulled = RecordingBackend(local={"harness/base:3.13-trixie": "sha256:aaa", "harness/redis:7": "sha256:p"})
    assert ImageResolver(settings, pulled).ensure("redis").source == "local"
