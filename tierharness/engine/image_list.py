"""The engine's images, listed beside other runs and users that remove theirs meanwhile.

Two races, both seen on one engine shared by a run's workers:
- the list itself: with the containerd image store the engine reads each image's content as it
  lists them, and answers 404 ("content digest sha256:...: not found") when a removal deletes
  that content meanwhile. Listed in a loop beside two threads that built and removed images,
  1 listing in 91 failed so; a test of the suite at `-n 4` failed on it once. The image is
  gone, so a new listing no longer names it: the list is asked again.
- an image's inspection after the list: the SDK's `images.list()` inspects each image it
  listed, and fails when one was removed in between. `listed_images` leaves that one out.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from tierharness.errors import HarnessError

__all__ = ["image_summaries", "listed_images"]

_ATTEMPTS = 5  # each failed one means a removal deleted content while the engine listed it
_PAUSE = 0.05  # seconds, times the attempt: a removal's content and its leases go in steps


def image_summaries(
    client: Any, *, name: str | None = None, label: str | None = None, intermediate: bool = False
) -> list[dict[str, Any]]:
    """The engine's image list (`docker images`' summaries; `intermediate`: `--all`'s too), of
    repository `name`, with `label`: listed again when a removal raced it (a 404)."""
    from docker.errors import NotFound  # noqa: PLC0415  lazy: the docker SDK loads when an engine is used

    filters = {"label": label} if label else None
    attempt = 1
    while True:
        try:
            return list(client.api.images(name=name, filters=filters, all=intermediate))
        except NotFound as exc:
            if attempt == _ATTEMPTS:
                raise HarnessError(
                    f"the engine's image list failed {_ATTEMPTS} times in a row: {exc}",
                    checked="GET /images/json (`docker images`), listed again after each 404",
                    fix="another run or user kept removing images meanwhile: run it again; if it "
                    "persists, `docker images` shows the engine's own error",
                ) from exc
        time.sleep(_PAUSE * attempt)
        attempt += 1


def listed_images(client: Any, *, name: str | None = None, label: str | None = None) -> list[Any]:
    """The engine's images (of repository `name`, with `label`), each inspected, leaving out one
    removed between the list and its inspection."""
    from docker.errors import ImageNotFound  # noqa: PLC0415  lazy: the docker SDK loads when an engine is used

    found = []
    for summary in image_summaries(client, name=name, label=label):
        with contextlib.suppress(ImageNotFound):
            found.append(client.images.get(summary["Id"]))
    return found
