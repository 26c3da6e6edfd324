"""Builds that load one tag at the same moment, as two users' runs, or two clones, do on a cold
engine: each must succeed, and the tag must end up on one of them. Named by BuildKit's exporter,
such builds fail with "already exists" when their names collide (docker/buildx#3576). And a
rebuilt tag leaves no unnamed image behind, unless a container was made from it."""

from __future__ import annotations

import contextlib
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from docker.errors import NotFound

from tierharness.config import load_settings
from tierharness.engine.client import engine_client
from tierharness.engine.image_list import image_summaries
from tierharness.imaging.buildx import buildx_build

BUILDS = 6  # at once: named by the exporter, all of six such rounds failed
LEAD = 4.0  # seconds from the start to the barrier: every build is in its RUN step by then

# The RUN step waits for the barrier (`AT`, an epoch time), so the builds reach their exports
# within milliseconds of each other; each writes the time it woke, so no two images are the same.
DOCKERFILE = """\
FROM {base}
ARG AT
RUN python3 -c "import time; time.sleep(max(0.0, $AT - time.time())); print(time.time_ns())" > /woke
"""


def test_builds_loading_one_tag_at_once_all_succeed(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(DOCKERFILE.format(base=load_settings().image("base").local))
    tag = f"harness-test/concurrent-builds:{uuid.uuid4().hex[:12]}"
    client = engine_client()
    made: list[str] = []

    def build(at: float, index: int) -> str | None:
        return buildx_build(
            tmp_path, tags=[tag], build_args={"AT": f"{at:.3f}"}, load=True, no_cache=True,
            unshared=True, log_path=tmp_path / f"build-{index}.log",
        ).image  # fmt: skip

    try:
        at = time.time() + LEAD
        with ThreadPoolExecutor(BUILDS) as pool:
            # A collision raises BuildError, naming "already exists".
            made += filter(None, pool.map(build, [at] * BUILDS, range(BUILDS)))
        assert len(set(made)) == BUILDS, "each build made and named an image of its own"
        assert client.images.get(tag).id in made
    finally:
        for image in [tag, *made]:
            with contextlib.suppress(NotFound):
                client.images.remove(image, force=True)


def test_a_rebuilt_tag_leaves_the_image_it_replaced_only_where_a_container_uses_it(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(DOCKERFILE.format(base=load_settings().image("base").local))
    tag = f"harness-test/concurrent-builds:{uuid.uuid4().hex[:12]}"
    client = engine_client()
    made: list[str] = []
    container = None

    def build() -> str:
        args = {"AT": "0"}
        image = buildx_build(
            tmp_path, tags=[tag], build_args=args, load=True, no_cache=True, unshared=True
        ).image
        assert image is not None
        made.append(image)
        return image

    try:
        first = build()
        container = client.containers.create(first)  # made, never started: the image is in use
        second = build()
        assert client.images.get(first).tags == []  # kept, unnamed: a container was made from it
        container.remove()
        container = None
        third = build()
        assert client.images.get(tag).id == third
        # The list's summaries: listing models inspects each image, and another worker's may go meanwhile.
        listed = {image["Id"] for image in image_summaries(client, intermediate=True)}
        assert second not in listed, "replaced and unused: removed"
    finally:
        if container is not None:
            container.remove(force=True)
        for image in [tag, *made]:
            with contextlib.suppress(NotFound):
                client.images.remove(image, force=True)
