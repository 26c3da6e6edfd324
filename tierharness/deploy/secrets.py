"""The rehearsal's secret files: the database and Redis URLs and the API keys the service reads
as `NAME_FILE`, and the client keys Locust reads.

Every file is 0600 and every folder 0700, owned by the user who runs the harness: no other user
of the host can read them, whatever the folder is called. The service's containers read them
through a read-only bind mount, so they run as that same uid:gid (`container_user`). Root is
the exception: it hands the folder to the image's own user (`hand_over`) rather than run the
service as root, and the files stay 0600, that user's alone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = [
    "SECRETS_MOUNT",
    "container_user",
    "hand_over",
    "private_folder",
    "secret_templates",
    "write_secret",
]

SECRETS_MOUNT = "/run/secrets"
_SECRET_PLACEHOLDERS = (
    "{postgres.password}",
    "{postgres.url}",
    "{redis.password}",
    "{redis.url}",
    "{api_keys}",
)


def secret_templates(templates: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Split the service's environment templates: plain variables, and secrets (any template
    holding a password or the API keys), which the service gets as `NAME_FILE` only."""
    plain: dict[str, str] = {}
    secret: dict[str, str] = {}
    for name, template in templates.items():
        (secret if any(p in template for p in _SECRET_PLACEHOLDERS) else plain)[name] = template
    return plain, secret


def private_folder(folder: Path) -> Path:
    """`folder`, created if need be, 0700."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    return folder


def write_secret(path: Path, text: str) -> None:
    """Written whole, then renamed over the old file: a reader never sees half a secret.

    The file is created 0600 (never readable by others, not even for an instant), and in a
    folder handed to the image's user (see `hand_over`, root only) it is given to that user."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text + "\n")
    owner = path.parent.stat().st_uid
    if owner != os.geteuid() and os.geteuid() == 0:
        os.chown(tmp, owner, -1)
    tmp.replace(path)


def container_user() -> str | None:
    """The uid:gid the service's containers run as, to read the bind-mounted secrets: the
    invoking user's; as root, None (the image's own user, to whom `hand_over` gives them)."""
    if os.geteuid() == 0:
        return None
    return f"{os.getuid()}:{os.getgid()}"


def hand_over(folder: Path, image_user: str) -> None:
    """As root, give the secrets folder to the uid the image runs as (a non-root one): the
    service reads its secrets, and still no other user of the host can. Otherwise (not root,
    or an image running as root) the folder stays the invoking user's."""
    uid = image_user.split(":", 1)[0]
    if os.geteuid() != 0 or not uid.isdigit() or int(uid) == 0:
        return
    os.chown(folder, int(uid), -1)
    folder.chmod(0o700)
    for path in folder.iterdir():
        os.chown(path, int(uid), -1)
        path.chmod(0o600)
