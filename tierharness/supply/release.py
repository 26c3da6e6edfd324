"""`harness publish` and `harness verify` end to end: the build a publish needs, the loopback
registry for the command's length, the push with its signature and attestations, and the
verification of what was pushed."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from tierharness.config import Settings
from tierharness.imaging.image_record import build_record
from tierharness.imaging.project_image import build_image
from tierharness.supply.publish import Published, publish
from tierharness.supply.signing import key_pair
from tierharness.supply.stack_image import command_registry, head_revision, publish_record
from tierharness.supply.verify import Verified, verify_image

__all__ = ["Release", "publish_and_verify", "verify_published"]


@dataclass(frozen=True)
class Release:
    published: Published
    verified: Verified
    seconds: dict[str, float]  # step -> seconds: registry, publish's own steps, verify


def publish_and_verify(settings: Settings, log: Callable[[str], None]) -> Release:
    """The built image pushed by digest, signed and attested, then verified as pulled."""
    pair = key_pair(settings)  # refuse an unsafe or missing key before anything is built
    built = build_image(settings, log=log)
    if built.revision != head_revision(settings) or not (settings.build_dir / "image.oci.tar").is_file():
        # The provenance must name the revision being published, and the tarball is pushed.
        built = build_image(settings, force=True, log=log)
    record = build_record(settings)
    started = time.monotonic()
    with command_registry(settings, "publish", log) as registry:
        ready = time.monotonic() - started
        published = publish(settings, registry, record, pair, log=log)
        mark = time.monotonic()
        with registry.docker_config() as docker_config:
            verified = verify_image(
                registry, settings.repository, expected_digest=published.pushed.digest,
                public_key=pair.public, head=str(record["revision"]), docker_config=docker_config,
                tag=published.pushed.tag,
            )  # fmt: skip
        seconds = {"registry": ready, **published.seconds, "verify": time.monotonic() - mark}
    return Release(published, verified, seconds)


def verify_published(settings: Settings, log: Callable[[str], None]) -> Verified:
    """What the last publish pushed, verified against the last build and HEAD."""
    published = publish_record(settings)
    pair = key_pair(settings, private=False)
    with command_registry(settings, "verify", log) as registry, registry.docker_config() as docker_config:
        return verify_image(
            registry, str(published["repository"]), expected_digest=str(build_record(settings)["digest"]),
            public_key=pair.public, head=head_revision(settings), docker_config=docker_config,
            tag=str(published["tag"]),
        )  # fmt: skip
