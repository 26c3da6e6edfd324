"""Naming images in the engine: a tag moved to another image, safely beside other runs.

Two runs that name one tag at the same moment race in the engine: it replaces a name by
deleting it and creating it anew, so a naming that creates it in between fails the other with
"already exists" (moby's containerd image store; BuildKit's exporter fails the same way,
docker/buildx#3576). And the image a name leaves stays in the engine without a name, where
BuildKit's exporter dropped it: a tag rebuilt every run (the deploy rehearsal's candidates, a
commit rebuilt with other content) would leave one more each time.
"""

from __future__ import annotations

from tierharness.engine.client import engine_client, local_image_id

__all__ = ["tag_image"]

_ATTEMPTS = 5  # each attempt that fails means that another naming of the tag has just ended


def tag_image(source: str, target: str) -> None:
    """Name the image `source` (a reference or an id) `target`, as `docker tag`: again when
    another naming of `target` won the race; the image `target` named before goes if it is left
    without a name (`_drop_if_unnamed`)."""
    from docker.errors import APIError  # noqa: PLC0415  lazy: the docker SDK loads when an engine is used

    repo, _, tag = target.rpartition(":")
    image = engine_client().images.get(source)
    for attempt in range(1, _ATTEMPTS + 1):
        replaced = local_image_id(target)
        try:
            image.tag(repo, tag)
        except APIError as exc:
            if "already exists" in str(exc) and attempt < _ATTEMPTS:
                continue
            raise
        if replaced and replaced != image.id:
            _drop_if_unnamed(replaced)
        return


def _drop_if_unnamed(image_id: str) -> None:
    """Remove the image `image_id` if it has no name, unless a container (running or not) was
    made from it: without force, the engine refuses such an image."""
    from docker.errors import APIError  # noqa: PLC0415  lazy: the docker SDK loads when an engine is used

    client = engine_client()
    try:
        if not client.images.get(image_id).tags:
            client.images.remove(image_id)
    except APIError:  # gone already (ImageNotFound is one), named again, or in use
        return
