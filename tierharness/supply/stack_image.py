"""The image a stack runs: the built one, or with verify-before-run the published one,
verified and pulled by digest. With the steps the supply-chain commands share for it: the
checkout's HEAD, the publish record, the registry for the length of a command."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from tierharness.config import Settings, environment
from tierharness.engine.client import docker_cli
from tierharness.engine.labels import RunIdentity
from tierharness.engine.reaper import reaped
from tierharness.engine.retention import record_pull
from tierharness.engine.run_ids import new_run_id
from tierharness.errors import HarnessError
from tierharness.gitrepo import git_output
from tierharness.imaging.image_record import build_record, read_record
from tierharness.process import run
from tierharness.supply.registry import Registry, running_registry
from tierharness.supply.signing import key_pair
from tierharness.supply.verify import verify_image

__all__ = [
    "command_registry", "head_revision", "image_to_run", "publish_record", "verified_image",
]  # fmt: skip


def head_revision(settings: Settings) -> str:
    revision = git_output(settings.root, "rev-parse", "HEAD")
    if not revision:
        raise HarnessError(
            "cannot tell the checkout's HEAD",
            checked=f"`git rev-parse HEAD` in {settings.root}",
            fix="run from a git checkout with at least one commit",
        )
    return revision


def publish_record(settings: Settings) -> dict[str, Any]:
    """build/publish.json: what the last publish pushed (repository, tag, digest)."""
    return read_record(settings.build_dir / "publish.json", "publish the image first: `nox -s publish`")


@contextlib.contextmanager
def command_registry(
    settings: Settings, worker: str, log: Callable[[str], None] = lambda _m: None
) -> Iterator[Registry]:
    """The registry for one command, with a reaper watching this process: if the command is
    killed, the registry container goes with it."""
    identity = RunIdentity.for_this_process(environment().run_id or new_run_id(), worker)
    log_path = settings.state_dir / "runs" / identity.run_id / "reaper.log"
    with (
        reaped(identity.run_id, settings.state_dir, log_path),
        running_registry(settings, identity, log=log) as registry,
    ):
        yield registry


def verified_image(
    settings: Settings, identity: RunIdentity, log: Callable[[str], None] = lambda _m: None
) -> str:
    """The image a stack runs when verify-before-run is on: the published image, verified in
    the registry (see tierharness.supply.verify), then pulled by digest. Returns the reference
    by digest; on any failure nothing has been started but the registry, which is gone again."""
    published = publish_record(settings)
    expected = str(build_record(settings)["digest"])
    head = head_revision(settings)
    public_key = key_pair(settings, private=False).public
    with running_registry(settings, identity, log=log) as registry, registry.docker_config() as config:
        verified = verify_image(
            registry, str(published["repository"]), expected_digest=expected, public_key=public_key,
            head=head, docker_config=config, tag=str(published["tag"]),
        )  # fmt: skip
        run(
            [docker_cli(), "--config", str(config), "pull", "--quiet", verified.reference],
            what=f"pulling the verified image {verified.reference}",
            fix="read the registry's log; the engine must reach 127.0.0.1",
        )
        record_pull(verified.reference)  # the run's own: `clean --prune` removes it, and only it
    log(f"verified {verified.reference}: {', '.join(verified.checks)}")
    return verified.reference


def image_to_run(
    settings: Settings, image: str, identity: RunIdentity, log: Callable[[str], None] = lambda _m: None
) -> str:
    """What a stack (the stack fixture, perf, the deploy rehearsal) runs for the built `image`:
    with verify-before-run on, the published image verified and by digest (`verified_image`);
    otherwise `image` itself, and a line saying it runs unverified and why."""
    on, why = settings.verification()
    if on:
        return verified_image(settings, identity, log)
    log(f"running {image} unverified: {why}")
    return image
