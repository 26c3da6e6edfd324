"""The security review's fixes, each pinned by a test that fails without it."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import pkgutil
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

import tierharness
from tests.unit.harness.repo_files import repo_file
from tests.unit.harness.test_images import RecordingBackend
from tierharness.config import load_settings
from tierharness.errors import BuildError, HarnessError, ImageError, LockfileError
from tierharness.imaging import buildx, wheelhouse
from tierharness.imaging.lockfiles import require_hashes
from tierharness.imaging.project_image import production_args, public_url
from tierharness.imaging.resolution import ImageResolver, images_lock_path

TOKEN = "tok" + "en-9f8e7d6c5b4a"  # assembled: the tree's own secret scan must stay clean


# --------------------------------------------------------------------------- 1. clone URL


@pytest.mark.parametrize(
    ("url", "public"),
    [
        (
            f"https://user:{TOKEN}@git.example.invalid/team/app.git",
            "https://git.example.invalid/team/app.git",
        ),
        (f"https://{TOKEN}@git.example.invalid/app", "https://git.example.invalid/app"),
        ("ssh://git@git.example.invalid:22/app.git", "ssh://git.example.invalid:22/app.git"),
        ("git@git.example.invalid:team/app.git", "git@git.example.invalid:team/app.git"),
        ("https://git.example.invalid/app", "https://git.example.invalid/app"),
    ],
)
def test_public_url_strips_credentials(url: str, public: str) -> None:
    assert public_url(url) == public


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_a_remote_with_a_token_does_not_reach_the_build_args(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.harness]\n")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    remote = f"https://ci:{TOKEN}@git.example.invalid/app.git"
    subprocess.run(["git", "-C", str(tmp_path), "remote", "add", "origin", remote], check=True)
    settings = load_settings(tmp_path)
    args = production_args(settings, settings.build, "base", "abc", 0)
    assert args["SOURCE_URL"] == "https://git.example.invalid/app.git"
    assert TOKEN not in repr(args)


def test_a_failed_build_never_prints_build_arg_values(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    log = (
        f"#9 [production 1/3] RUN |2 SOURCE_URL=https://ci:{TOKEN}@h/x VCS_REF=abc /bin/sh -c false\n"
        "#9 ERROR: process did not complete successfully: exit code: 1\n"
    )

    def fake_run(argv: list[str], **kwargs: Any) -> None:
        shown = " ".join(kwargs["shown"])
        raise BuildError(f"image build failed:\n{kwargs['explain'](log)}", checked=shown, fix=kwargs["fix"])

    monkeypatch.setattr(buildx, "require_buildx", lambda: "v0.13")
    monkeypatch.setattr(buildx, "docker_cli", lambda: "docker")
    monkeypatch.setattr(buildx, "run", fake_run)
    with pytest.raises(BuildError) as caught:
        buildx.buildx_build(
            tmp_path, build_args={"SOURCE_URL": f"https://ci:{TOKEN}@h/x", "VCS_REF": "abcdef"}
        )
    assert TOKEN not in str(caught.value)
    assert "abcdef" not in str(caught.value)
    assert "production 1/3" in str(caught.value)  # the step is still named


def _production_stage() -> list[str]:
    text = repo_file("Dockerfile.enterprise").read_text()
    stage = text[text.index("FROM base AS production") :]
    return re.sub(r"\\\n", " ", stage).splitlines()


def test_label_args_are_declared_after_the_last_run_of_production() -> None:
    # A RUN records every build arg in scope (value included) in the image's history.
    lines = _production_stage()
    last_run = max(i for i, line in enumerate(lines) if line.startswith("RUN "))
    for name in ("SOURCE_URL", "VCS_REF", "CREATED"):
        (declared,) = [i for i, line in enumerate(lines) if line.startswith(f"ARG {name}")]
        assert declared > last_run, name


# --------------------------------------------------------------------------- 6. small ones


def test_setuid_strip_has_no_pipe_that_hides_a_failure() -> None:
    # DL4006: in `find | while`, a failing find is ignored; /bin/sh has no pipefail.
    runs = [line for line in _production_stage() if line.startswith("RUN ")]
    assert runs
    assert not any(re.search(r"\|\s*while\b", line) for line in runs)


# --------------------------------------------------------------------------- 5. mutable references


def test_workflow_pins_every_action_by_commit_and_keeps_no_credentials() -> None:
    text = repo_file(".github/workflows/ci.yml").read_text()
    uses = re.findall(r"uses:\s*(\S+)", text)
    assert uses
    for ref in uses:
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref), f"{ref} is not pinned by commit SHA"
    checkouts = text.count("actions/checkout@")
    assert text.count("persist-credentials: false") == checkouts


def test_no_dataclass_of_the_harness_shows_a_secret_in_its_repr() -> None:
    # Reprs end up in JUnit XML and tracebacks; every field holding a secret opts out.
    secretish = re.compile(r"password|secret|token|api_keys?$|^env$")
    not_secrets = {
        "StackConfig.env",  # templates such as {postgres.password}, not their values
        "SecurityConfig.secrets_exclude",  # path patterns
        "LayerScan.secrets",  # where secrets were found, already redacted
    }
    leaking = []
    for module_info in pkgutil.walk_packages(tierharness.__path__, "tierharness."):
        if module_info.name.endswith("__main__"):
            continue
        try:
            module = importlib.import_module(module_info.name)
        except ImportError:  # a job whose optional dependency is absent (locust, say)
            continue
        for obj in vars(module).values():
            if isinstance(obj, type) and dataclasses.is_dataclass(obj) and obj.__module__ == module.__name__:
                leaking += [
                    f"{obj.__qualname__}.{f.name}"
                    for f in dataclasses.fields(obj)
                    if secretish.search(f.name) and f.repr
                ]
    assert sorted(set(leaking) - not_secrets) == []


@pytest.mark.parametrize(
    "option",
    [
        "--index-url https://mirror.example.invalid/simple",
        "--extra-index-url https://mirror.example.invalid/simple",
        "--find-links /tmp/wheels",
        "-e ./somewhere",
        "--trusted-host mirror.example.invalid",
    ],
)
def test_lockfile_refuses_any_option_but_hash_continuations(tmp_path: Path, option: str) -> None:
    digest = "a" * 64
    for text in (
        f"{option}\nfastapi==1.0 \\\n    --hash=sha256:{digest}\n",
        f"fastapi==1.0 \\\n    --hash=sha256:{digest} \\\n    {option}\n",
    ):
        lock = tmp_path / "app.txt"
        lock.write_text(text)
        with pytest.raises(LockfileError, match="option line"):
            require_hashes(lock)


def test_images_lock_lives_in_the_state_directory(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.harness]\nstate-dir = ".state"\n')
    path = images_lock_path(load_settings(tmp_path))
    assert path.parent == tmp_path / ".state"
    assert path.parent.is_dir()


# --------------------------------------------------------------------------- 7. the wheelhouse


def test_a_tampered_wheel_is_named_before_the_build(tmp_path: Path) -> None:
    good, bad = b"the real wheel", b"the tampered wheel"
    lock = tmp_path / "app.txt"
    lock.write_text(f"demo==1.0 \\\n    --hash=sha256:{hashlib.sha256(good).hexdigest()}\n")
    house = tmp_path / "wheelhouse"
    house.mkdir()
    (house / "demo-1.0-py3-none-any.whl").write_bytes(good)
    platforms = ["manylinux_2_17_x86_64"]
    stamp = wheelhouse._stamp([lock], "3.13", platforms)
    (house / ".stamp.json").write_text(f'{{"stamp": "{stamp}"}}')
    # Intact: reused without a download.
    assert wheelhouse.fill_wheelhouse([lock], house, platforms=platforms) == house
    (house / "demo-1.0-py3-none-any.whl").write_bytes(bad)
    with pytest.raises(BuildError) as caught:
        wheelhouse.fill_wheelhouse([lock], house, platforms=platforms)
    message = str(caught.value)
    assert "demo-1.0-py3-none-any.whl matches no hash in app.txt" in message
    assert "delete it" in message
    assert "downloads it again" in message


# --------------------------------------------------------------------------- 5. pinned images

PIN = "sha256:" + "ab" * 32


def _pinned_settings(tmp_path: Path, ref: str) -> Any:
    (tmp_path / "pyproject.toml").write_text(f'[tool.harness.images.base]\nref = "{ref}"\n')
    return load_settings(tmp_path)


def test_a_pinned_digest_refuses_a_local_copy_that_differs(tmp_path: Path) -> None:
    ref = f"python:3.13-slim-trixie@{PIN}"
    settings = _pinned_settings(tmp_path, ref)
    other = "sha256:" + "cd" * 32
    backend = RecordingBackend(local={"harness/base:3.13-trixie": other})
    messages: list[str] = []
    # The copy that differs is set aside: the pin is pulled; where it cannot be, the recipe is
    # built and refused in turn, since it is not the pinned image either.
    with pytest.raises(ImageError) as caught:
        ImageResolver(settings, backend, log=messages.append).ensure("base")
    assert f"is {other}, not {PIN}" in messages[0]
    assert f"pull {ref}" in backend.calls
    assert "sha256:built-base" in str(caught.value)
    assert PIN in str(caught.value)
    backend.pullable.add(ref)
    assert ImageResolver(settings, backend).ensure("base").digest == PIN
    matching = RecordingBackend(local={"harness/base:3.13-trixie": PIN})
    assert ImageResolver(settings, matching).ensure("base").digest == PIN


@pytest.mark.parametrize("ref", ["python:3.13@sha256:abc", "python@md5:" + "a" * 32])
def test_a_malformed_pin_is_refused(tmp_path: Path, ref: str) -> None:
    with pytest.raises(HarnessError, match="not pinned by a sha256 digest"):
        _pinned_settings(tmp_path, ref)
