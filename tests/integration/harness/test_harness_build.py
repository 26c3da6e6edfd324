"""The harness's build and stack pipeline on a tiny project of its own: it works for any
project that describes itself in [tool.harness], not only for the knowledge hub."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tierharness.config import Settings, load_settings
from tierharness.engine.client import engine_client
from tierharness.engine.image_list import image_summaries, listed_images
from tierharness.engine.labels import LABEL_RUN, RunIdentity
from tierharness.engine.reaper import containers_of, remove_labelled
from tierharness.gitrepo import commit_all
from tierharness.imaging.project_image import build_image
from tierharness.imaging.stage_cache import image_folder
from tierharness.oci import read_oci
from tierharness.runtime.stack import running_stack

# Its stack containers belong to made-up runs owned by this worker: the run's reaper sweeps
# them if the run is killed.
pytestmark = pytest.mark.usefixtures("harness_reaper")

DOCKERFILE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE} AS base

FROM base AS test
# The wheelhouse is there, hash-checked, for the image's Python.
RUN --mount=type=bind,source=build/wheelhouse,target=/wheels ls /wheels | grep -q '^nox-.*\\.whl$'

FROM base AS production
ARG SOURCE_DATE_EPOCH
COPY app.py /app/app.py
USER 10001:10001
HEALTHCHECK --interval=1s --timeout=2s --retries=5 \\
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/')"]
CMD ["python3", "/app/app.py"]
"""

# It leaves on SIGTERM, as a service should: as PID 1 without a handler it would ignore the
# signal, and each restart would wait out the engine's stop timeout (10 s) before SIGKILL.
APP = """\
import http.server, os, signal, sys

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("db=" + os.environ["DB_HOST"] + " keys=" + str(len(os.environ["KEYS"].split(",")))).encode()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)

http.server.ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
"""


@pytest.fixture(scope="module")
def mini_project(tmp_path_factory: pytest.TempPathFactory, project_root: Path) -> Iterator[Settings]:
    tree = tmp_path_factory.mktemp("mini") / "src"
    tree.mkdir()
    image = f"harness-test/mini-{uuid.uuid4().hex[:8]}"
    # No [tool.harness.images]: the harness's own logical images (recipes in the package) apply.
    (tree / "pyproject.toml").write_text(
        "[tool.harness]\n\n"
        f'[tool.harness.build]\nimage = "{image}"\ndockerfile = "Dockerfile"\n'
        'target = "production"\ntest-target = "test"\nlockfiles = ["nox"]\n\n'
        '[tool.harness.stack]\nport = 8080\nhealth-timeout = 30\napi-keys = ["a", "b"]\n\n'
        '[tool.harness.stack.env]\nDB_HOST = "{postgres.host}"\nKEYS = "{api_keys}"\n'
    )
    (tree / "requirements").mkdir()
    shutil.copy2(project_root / "requirements" / "nox.txt", tree / "requirements" / "nox.txt")
    (tree / "Dockerfile").write_text(DOCKERFILE)
    (tree / "app.py").write_text(APP)
    (tree / ".gitignore").write_text("build/\n")
    commit_all(tree, commit_time=1_700_000_000)
    yield load_settings(tree)
    # Only our own tags: an identical image built by another worker shares the digest,
    # and an Image object lists every tag of that digest.
    for img in listed_images(engine_client(), name=image):
        for tag in img.tags:
            if tag.startswith(f"{image}:"):
                engine_client().images.remove(tag)
    shutil.rmtree(image_folder(image), ignore_errors=True)  # its stages' caches, made by its builds


def test_build_records_the_image_and_reuses_it_when_nothing_changed(mini_project: Settings) -> None:
    messages: list[str] = []
    built = build_image(mini_project, log=messages.append)
    assert not built.reused
    assert built.source_date_epoch == 1_700_000_000
    record = json.loads((mini_project.build_dir / "image.json").read_text())
    assert record["image"] == built.image
    assert record["digest"] == read_oci(mini_project.build_dir / "image.oci.tar").digest
    labels_image = engine_client().images.get(built.image)
    assert labels_image.attrs["Config"]["User"] == "10001:10001"
    assert any("wheelhouse ready" in m for m in messages)
    # Each stage exported its cache, for the next build to import whatever a prune took.
    stages = image_folder(mini_project.build.image)
    assert all((stages / stage / "index.json").is_file() for stage in ("test", "production"))

    again = build_image(mini_project, log=messages.append)
    assert again.reused
    assert again.digest == built.digest


def test_a_rebuild_of_the_commit_with_other_content_leaves_no_unnamed_image(
    mini_project: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Times of this test's own, so that no other worker's build of the mini project is either
    # image (the same content gives the same digest, which that worker's tags would name).
    at = 1_700_000_000 + secrets.randbelow(10**8)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(at))
    first = build_image(mini_project, force=True, log=lambda _m: None)
    # Another time in the image (as uncommitted changes, or another origin, would give it).
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(at + 1))
    try:
        second = build_image(mini_project, force=True, log=lambda _m: None)
        assert (second.image, second.digest != first.digest) == (first.image, True)
        # The list's summaries: listing models inspects each image, and another worker's may go meanwhile.
        images = {image["Id"] for image in image_summaries(engine_client(), intermediate=True)}
        assert second.digest in images
        assert first.digest not in images, "the build the tags named before was left without a name"
    finally:
        # The module's other tests build the project at its committed time, not reuse these.
        mini_project.image_record.unlink(missing_ok=True)


def test_stack_runs_the_image_beside_postgres_and_redis_until_healthy(mini_project: Settings) -> None:
    built = build_image(mini_project, log=lambda _m: None)
    identity = RunIdentity(f"t-{uuid.uuid4().hex[:8]}", "stack", os.getpid())
    config = mini_project.stack
    try:
        with running_stack(
            built.image,
            mini_project.image("postgres").local,
            mini_project.image("redis").local,
            identity,
            config,
        ) as stack:
            assert httpx.get(stack.base_url + "/", timeout=5).text == "db=postgres keys=2"
            assert set(stack.api_keys) == {"a", "b"}
            assert stack.restart_app() < 30
            roles = {c.labels["harness.role"] for c in _labelled(identity.run_id)}
            assert roles == {"postgres", "redis", "app"}
            networks = engine_client().networks.list(filters={"label": [f"{LABEL_RUN}={identity.run_id}"]})
            assert len(networks) == 1
        assert _labelled(identity.run_id) == []
        assert engine_client().networks.list(filters={"label": [f"{LABEL_RUN}={identity.run_id}"]}) == []
    finally:
        remove_labelled(engine_client(), {"label": [f"{LABEL_RUN}={identity.run_id}"]})


def _labelled(run_id: str) -> list:
    return containers_of(engine_client(), run_id)
