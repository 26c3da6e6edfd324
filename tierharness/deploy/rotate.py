"""`harness rotate-secrets`: rotate the service's API keys and its database password while
Locust loads it through the proxy, with 0 failed requests as the bar.

- API keys, with an overlap window: the keys file gets the new keys beside the old, the
  service accepts them, clients move, then the old keys are removed and refused.
- Database password: the role gets a new one and the URL file is rewritten at once; the
  service's pool remakes its connections with it; the old password no longer logs in.

The service reads both from `*_FILE` (it never sees them in its environment), so rotating is
rewriting files in the folder it mounts read-only.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import psycopg

from tierharness.config import Settings, environment
from tierharness.deploy.probes import get, wait_until
from tierharness.deploy.rehearsal import Rehearsal
from tierharness.deploy.rehearsal_stack import rehearsal
from tierharness.deploy.report import write_rotation_verdict
from tierharness.deploy.secrets import write_secret
from tierharness.deploy.state_lock import state_lock
from tierharness.deploy.timeline import Timeline
from tierharness.engine.labels import RunIdentity
from tierharness.engine.reaper import reaped
from tierharness.engine.run_ids import new_run_id
from tierharness.errors import HarnessError
from tierharness.imaging.project_image import build_image

__all__ = ["RotationError", "rotate_api_keys", "rotate_database_password", "rotation_lock", "run_rotation"]


class RotationError(HarnessError):
    """A rotation was refused, or did not take effect."""


def rotation_lock(state_dir: Path) -> AbstractContextManager[None]:
    """One rotation at a time: a second one is refused, not queued behind the first."""
    path = state_dir / "rotate-secrets.lock"
    busy = RotationError(
        "a secret rotation is already in progress",
        checked=f"the lock {path}",
        fix="wait for it to finish; two rotations at once could leave neither key set valid",
    )
    return state_lock(path, busy)


def _status(reh: Rehearsal, key: str) -> int:
    return get(f"{reh.proxy_url}/v1/articles?limit=1", {"X-API-Key": key})[0]


def _find_secret(reh: Rehearsal, variable: str) -> Path:
    path = reh.folder / "secrets" / variable.lower()
    if not path.exists():
        raise RotationError(
            f"the service gets no {variable}_FILE, so {variable} cannot be rotated by file",
            checked=str(path),
            fix=f"name {variable} in [tool.harness.stack.env] with a secret placeholder",
        )
    return path


def rotate_api_keys(reh: Rehearsal, clients_file: Path, overlap: float, mark: Callable[..., float]) -> None:
    keys_file = _find_secret(reh, "API_KEYS")
    old = dict(reh.api_keys)
    new = {name: secrets.token_hex(16) for name in old}

    def entries(keys: dict[str, str]) -> str:
        return "\n".join(f"{n}:{k}" for n, k in keys.items())

    write_secret(keys_file, entries(old) + "\n" + entries(new))
    probe_new, probe_old = next(iter(new.values())), next(iter(old.values()))
    if not wait_until(lambda: _status(reh, probe_new) == 200, 10):
        raise RotationError(
            "the service never accepted the new API keys",
            checked=f"GET /v1/articles with a new key, for 10 s (the keys file {keys_file.name})",
            fix="the service must re-read API_KEYS_FILE when it changes",
        )
    mark("api keys: new keys accepted beside the old", "overlap window opens")
    write_secret(clients_file, "\n".join(new[n] for n in new if n.startswith("load-")))
    time.sleep(overlap)  # clients re-read their keys file within a fraction of this
    mark("api keys: clients moved to the new keys")
    write_secret(keys_file, entries(new))
    if not wait_until(lambda: _status(reh, probe_old) == 403, 10):
        raise RotationError(
            "an old API key is still accepted after the overlap window",
            checked="GET /v1/articles with an old key, for 10 s after it was removed",
            fix="the service must replace its keys when API_KEYS_FILE changes",
        )
    if _status(reh, probe_new) != 200:
        raise RotationError(
            "a new API key is refused", checked="GET /v1/articles", fix="read the service's log"
        )
    reh.api_keys = new
    mark("api keys: old keys removed and refused (403)", "overlap window closed")


def rotate_database_password(reh: Rehearsal, mark: Callable[..., float]) -> None:
    url_file = _find_secret(reh, "DATABASE_URL")
    pg = reh.postgres
    old, new = pg.password, secrets.token_hex(16)

    def conninfo(password: str) -> str:
        where = f"host={pg.host} port={pg.port} user={pg.user} dbname={pg.dbname}"
        return f"{where} password={password} connect_timeout=3"

    with psycopg.connect(conninfo(old), autocommit=True) as admin:
        row = admin.execute("SELECT now()").fetchone()
        rotated_at = row[0] if row else None
        # The file right after the role: connections made in between retry, none is refused twice.
        admin.execute(
            f"ALTER ROLE \"{pg.user}\" PASSWORD '{new}'"
        )  # both made here: hex and the image's user
        write_secret(url_file, url_file.read_text(encoding="utf-8").strip().replace(f":{old}@", f":{new}@"))
    mark("database: role has a new password, URL file rewritten")

    app_ip = reh.address(reh.apps[reh.active])

    def remade() -> bool:
        with psycopg.connect(conninfo(new), autocommit=True) as admin:
            rows = admin.execute(
                "SELECT backend_start > %s FROM pg_stat_activity WHERE usename = %s AND client_addr = %s",
                (rotated_at, pg.user, app_ip),
            ).fetchall()
        return bool(rows) and all(r[0] for r in rows)

    if not wait_until(remade, 15, poll=0.25):
        raise RotationError(
            "the service's pool still holds connections made with the old password",
            checked="pg_stat_activity: backend_start of the service's connections, for 15 s",
            fix="the service must remake its pool when DATABASE_URL_FILE changes",
        )
    mark("database: the service's pool reconnected with the new password")
    try:
        psycopg.connect(conninfo(old)).close()
    except psycopg.OperationalError:
        pass
    else:
        raise RotationError(
            "the old database password still logs in",
            checked=f"a connection as {pg.user} with the old password",
            fix="ALTER ROLE did not take effect",
        )
    reh.postgres = type(pg)(pg.container_id, pg.host, pg.port, pg.user, new, pg.dbname, pg.ready_seconds)
    mark("database: the old password is refused")


def run_rotation(settings: Settings, *, log: Callable[[str], None] = print) -> int:
    """The rehearsal stack (blue behind the proxy, under load), both rotations, the verdict."""
    with rotation_lock(settings.state_dir):
        built = build_image(settings, log=log)
        run_id = environment().run_id or new_run_id("rotate-")
        with reaped(run_id, settings.state_dir):
            return _rotate(settings, RunIdentity(run_id, "rotate", os.getpid()), built.image)


def _rotate(settings: Settings, identity: RunIdentity, image: str) -> int:
    cfg = settings.deploy
    folder = settings.build_dir / "rotate"
    tl = Timeline()
    tl.mark("rotation rehearsal starts", f"run {identity.run_id}")
    results: dict[str, Any] | None = None
    retries = 0
    clients = folder / "client-keys"

    def load(reh: Rehearsal) -> None:
        # Inside the rehearsal's folder, which it empties first: written once it exists.
        write_secret(clients, "\n".join(k for n, k in reh.api_keys.items() if n.startswith("load-")))
        reh.start_locust(cfg.users, keys_file=clients)

    with rehearsal(
        settings,
        identity,
        image,
        folder=folder,
        timeline=tl,
        users=cfg.users,
        instances=1,
        load=load,
    ) as reh:
        if not wait_until(lambda: reh.locust_requests() >= 20, 60, poll=0.25):
            raise RotationError("Locust made no requests", checked=str(folder / "locust"), fix="read its log")
        tl.mark("load flowing through the proxy", f"{cfg.users} Locust users")
        rotate_api_keys(reh, clients, cfg.reload_seconds * 2 + 0.5, tl.mark)
        rotate_database_password(reh, tl.mark)
        time.sleep(2.0)
        results = reh.stop_locust()
        retries = reh.api.retries()
        tl.mark("load stopped")
    return write_rotation_verdict(tl, results, retries, folder)
