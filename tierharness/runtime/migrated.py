"""Migrate once, start migrated: a worker's Postgres, migrated and seeded, kept as a local image
that later workers, and later runs on the same engine, start from with no migration process.

The first worker of a key runs the migration command and the seed as ever (the tables-exist
guard included), then commits its Postgres: a CHECKPOINT, then the container frozen for the
commit. The key is the Postgres image's id, the digest of the migrations, of the files the
commands name and of the commands themselves (`engine.reuse.migrations_digest`), and the
user's uid: a changed migration is a new key, so its workers migrate afresh, never start
stale. A container started from the image takes over the committed role and database under
its own names and password before it accepts a connection; the recipe's entrypoint does, and
says so with a label: an image without it (the official `postgres`, whose data is a volume a
commit would not hold) is never committed.

What the image holds: the migrated database, and the SCRAM verifier of the first worker's
random password, which opens nothing once that worker's container is gone (every container
started from the image sets its own first). The image's environment names no password, it
is never pushed, and only those who can read the running containers' environment (the
engine's users) can read it. Each user keeps the newest ten;
`python -m tierharness clean` removes them all.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker.errors
import psycopg
from filelock import FileLock, Timeout

from tierharness.engine.image_list import listed_images
from tierharness.runtime.containers import PostgresInfo

__all__ = [
    "LABEL_KEY",
    "LABEL_OWNER",
    "LABEL_TAKEOVER",
    "REPOSITORY",
    "capture",
    "committable",
    "migrated_image",
    "migrated_key",
    "prune_migrated",
    "remove_migrated",
]

REPOSITORY = "tierharness-migrated/postgres"
LABEL_KEY = "harness.migrated-key"
LABEL_OWNER = "harness.migrated-owner"  # the uid whose run committed it
_LABEL_PROJECT = "harness.migrated-project"  # a digest of the rootdir that committed it
# On a Postgres image whose entrypoint renames a committed cluster's role and database to the
# new container's and sets its password (tierharness/recipes/postgres/docker-entrypoint.sh).
LABEL_TAKEOVER = "harness.credentials-takeover"
_PGDATA = "/var/lib/postgresql/data"
# Images kept per user, the newest: a few projects, each switching branches back and forth,
# stay warm; a key no run asks for any more (an old migration, an old Postgres image) goes.
_KEEP = 10


def migrated_key(postgres_image_id: str, migrations: str) -> str:
    """The key of a migrated image: the invoking user, the Postgres image, the migrations."""
    parts = [str(os.getuid()), postgres_image_id, migrations]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:20]


def _mine(client: Any, label: str) -> list[Any]:
    found = listed_images(client, label=label)
    return [i for i in found if i.labels.get(LABEL_OWNER) == str(os.getuid())]


def migrated_image(client: Any, key: str) -> str | None:
    """The id of the invoking user's migrated image for `key`, if the engine has it. An id,
    not its tag: a start from it never pulls, were the image removed meanwhile."""
    # By its tag, which the engine looks up at once; listing by label reads every image.
    try:
        image = client.images.get(f"{REPOSITORY}:{key}")
    except docker.errors.ImageNotFound:
        return None
    mine = image.labels.get(LABEL_KEY) == key and image.labels.get(LABEL_OWNER) == str(os.getuid())
    return str(image.id) if mine else None


def committable(client: Any, image: str) -> bool:
    """Whether a container of `image` can be committed into a migrated image: its entrypoint
    takes a committed cluster over (by label), and the data directory is in the container's
    own filesystem, not a volume."""
    config = client.images.get(image).attrs.get("Config") or {}
    volumes = config.get("Volumes") or {}
    in_volume = any(v.rstrip("/") == _PGDATA or _PGDATA.startswith(v.rstrip("/") + "/") for v in volumes)
    return (config.get("Labels") or {}).get(LABEL_TAKEOVER) == "1" and not in_volume


def capture(
    client: Any,
    container: Any,
    postgres: PostgresInfo,
    *,
    base_image: str,
    key: str,
    rootdir: Path,
    state_dir: Path,
    log: Callable[[str], None],
) -> str | None:
    """Commit `container` (migrated and seeded, no test run yet) as the migrated image of
    `key`; its id, or None when another worker is committing it right now or the commit
    failed (said through `log`: a worker never fails for want of it)."""
    folder = state_dir / "migrated"
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / f"{key}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return None  # the other worker's commit serves the next run
    try:
        existing = migrated_image(client, key)
        if existing is not None:
            return existing
        # Written out, so the frozen files hold the database as migrated: the container
        # started from them replays only the few records after this.
        with psycopg.connect(postgres.url, autocommit=True) as conn:
            conn.execute("CHECKPOINT")
        image = container.commit(
            REPOSITORY, key, conf=_config(client, container, base_image, key, rootdir), pause=True
        )
    except Exception as exc:  # a courtesy: the worker has what it needs
        log(f"harness: the migrated database could not be kept as an image ({type(exc).__name__}: {exc})")
        return None
    finally:
        lock.release()
    # Apart: the image is kept whatever befalls the others' pruning, which lists and inspects
    # every migrated image while other runs and users may be removing theirs.
    try:
        prune_migrated(client)
    except Exception as exc:  # the next commit prunes again
        log(f"harness: older migrated images were not pruned ({type(exc).__name__}: {exc})")
    return str(image.id)


def _config(client: Any, container: Any, base_image: str, key: str, rootdir: Path) -> dict[str, Any]:
    """The image's configuration: the base image's, plus the migrated labels. The engine merges
    in whatever of the container's own it is not given a value for, so the container's
    environment (the password) and labels (its run, its port) are given empty ones."""
    base = client.images.get(base_image).attrs.get("Config") or {}
    own = container.attrs.get("Config") or {}
    base_env = list(base.get("Env") or [])
    base_names = {item.split("=", 1)[0] for item in base_env}
    env = base_env + [f"{name}=" for name in _names(own.get("Env")) if name not in base_names]
    base_labels = dict(base.get("Labels") or {})
    labels = {name: "" for name in (own.get("Labels") or {}) if name not in base_labels}
    labels.update(base_labels)
    labels.update(
        {
            LABEL_KEY: key,
            LABEL_OWNER: str(os.getuid()),
            _LABEL_PROJECT: _project(rootdir),
        }
    )
    return {"Env": env, "Labels": labels, "Cmd": base.get("Cmd"), "Entrypoint": base.get("Entrypoint")}


def _project(rootdir: Path) -> str:
    return hashlib.sha256(str(rootdir.resolve()).encode()).hexdigest()[:16]


def _names(env: list[str] | None) -> list[str]:
    return [item.split("=", 1)[0] for item in env or []]


def prune_migrated(client: Any) -> None:
    """The invoking user's migrated images beyond the newest ten. One a container still runs
    is refused by the engine, and skipped."""
    images = sorted(_mine(client, LABEL_KEY), key=lambda i: str(i.attrs.get("Created", "")))
    for image in images[:-_KEEP]:
        with contextlib.suppress(Exception):
            client.images.remove(image.id)


def remove_migrated(client: Any, *, all_users: bool = False, rootdir: Path | None = None) -> int:
    """Remove migrated images (the invoking user's, or with `all_users` every user's; with
    `rootdir`, only that project's); returns how many. One a container still runs is left."""
    label = f"{_LABEL_PROJECT}={_project(rootdir)}" if rootdir is not None else LABEL_KEY
    images = listed_images(client, label=label)
    if not all_users:
        images = [i for i in images if i.labels.get(LABEL_OWNER) == str(os.getuid())]
    removed = 0
    for image in images:
        with contextlib.suppress(Exception):
            client.images.remove(image.id)
            removed += 1
    return removed
