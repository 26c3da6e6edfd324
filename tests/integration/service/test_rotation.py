"""Rotated secrets are picked up in place: the API keys file, and the database password
(new connections use the new URL file, the pool is remade, the old password stops working)."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from services.api_gateway.app import create_app
from services.api_gateway.settings import Settings
from tierharness.pytest_plugin import HarnessServices

from .conftest import make_settings


def _eventually(condition: Callable[[], bool], timeout: float = 5.0, what: str = "the change") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not picked up within {timeout:g}s"
        time.sleep(0.05)


def test_api_keys_file_rotates_with_overlap(harness_clean: HarnessServices, tmp_path: Path) -> None:
    old, new = secrets.token_hex(16), secrets.token_hex(16)
    keys_file = tmp_path / "api_keys"
    keys_file.write_text(f"client:{old}\n")
    settings = make_settings(harness_clean, {"client": old}, api_keys_file=keys_file, reload_seconds=0.05)
    with TestClient(create_app(settings)) as client:
        status = lambda key: client.get("/v1/articles", headers={"X-API-Key": key}).status_code  # noqa: E731
        assert (status(old), status(new)) == (200, 403)
        keys_file.write_text(f"client:{old}\nclient:{new}\n")  # overlap: both work
        _eventually(lambda: status(new) == 200)
        assert status(old) == 200
        keys_file.write_text(f"client:{new}\n")  # the window ends: the old key is refused
        _eventually(lambda: status(old) == 403)
        assert status(new) == 200


# A broken keys file keeps the last good keys for this long, no longer.
OVERLAP = 1.0


def _watching(services: HarnessServices, keys_file: Path) -> Settings:
    """Settings as the service reads them, the keys from `keys_file`, re-read every 50 ms."""
    return Settings.from_env({
        "DATABASE_URL": services.postgres.url,
        "REDIS_URL": services.redis.url if services.redis else "",
        "API_KEYS_FILE": str(keys_file),
        "SECRETS_RELOAD_MS": "50",
        "API_KEYS_OVERLAP_MS": str(int(OVERLAP * 1000)),
    })  # fmt: skip


def _spoil(keys_file: Path, how: str, good_key: str) -> None:
    if how == "deleted":
        keys_file.unlink()
        return
    broken = {"malformed": "client:short\n", "empty": "", "partly invalid": f"client:{good_key}\nb:short\n"}
    keys_file.write_text(broken[how])


@pytest.mark.parametrize("how", ["malformed", "empty", "deleted", "partly invalid"])
def test_a_broken_keys_file_keeps_the_old_keys_for_the_overlap_window_only(
    harness_clean: HarnessServices, tmp_path: Path, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    old = secrets.token_hex(16)
    keys_file = tmp_path / "api_keys"
    keys_file.write_text(f"client:{old}\n")
    with TestClient(create_app(_watching(harness_clean, keys_file))) as client:
        status = lambda key: client.get("/v1/articles", headers={"X-API-Key": key}).status_code  # noqa: E731
        assert status(old) == 200
        spoiled = time.monotonic()
        _spoil(keys_file, how, old)
        # The window starts when the service notices, so never before the file was spoiled.
        assert status(old) == 200
        _eventually(lambda: status(old) == 403, OVERLAP + 5, f"the old key refused after a {how} keys file")
        assert time.monotonic() - spoiled >= OVERLAP, "the old keys were dropped before the window ended"
        assert status(old) == 403, "the stale keys came back"
        counted = 'secret_reload_errors_total{secret="api_keys"} 1.0'  # pragma: allowlist secret
        assert counted in client.get("/metrics").text
        logged = [r.levelno for r in caplog.records if r.name == "api_gateway.rotation"]
        assert logging.ERROR in logged, "the refused keys file was not logged as an error"
        assert old not in caplog.text
        good = secrets.token_hex(16)
        keys_file.write_text(f"client:{good}\n")  # a good file is applied at once
        _eventually(lambda: status(good) == 200)
        assert status(old) == 403


def test_a_revoked_key_is_refused_even_if_the_rest_of_the_file_is_broken(
    harness_clean: HarnessServices, tmp_path: Path
) -> None:
    revoked, kept = secrets.token_hex(16), secrets.token_hex(16)
    keys_file = tmp_path / "api_keys"
    keys_file.write_text(f"leaked:{revoked}\nclient:{kept}\n")
    with TestClient(create_app(_watching(harness_clean, keys_file))) as client:
        status = lambda key: client.get("/v1/articles", headers={"X-API-Key": key}).status_code  # noqa: E731
        assert (status(revoked), status(kept)) == (200, 200)
        keys_file.write_text(f"client:{kept}\nnew-client:typo\n")  # the leaked key removed, a typo added
        _eventually(lambda: status(revoked) == 403, OVERLAP + 5, "the revoked key refused")
        # The file as a whole was refused: no key of the stale set is accepted any longer.
        assert status(kept) == 403


@pytest.fixture
def app_role(harness_clean: HarnessServices) -> tuple[str, str]:
    """A login role of its own: the worker's own user must keep its password."""
    role, password = f"rot_{secrets.token_hex(4)}", secrets.token_hex(12)
    with psycopg.connect(harness_clean.postgres.url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        conn.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}")
        conn.execute(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}")
    return role, password


def test_database_password_rotates_and_the_pool_reconnects(
    harness_clean: HarnessServices, api_keys: dict[str, str], app_role: tuple[str, str], tmp_path: Path
) -> None:
    pg = harness_clean.postgres
    role, old = app_role
    url = lambda pw: f"postgresql://{role}:{pw}@{pg.host}:{pg.port}/{pg.dbname}"  # noqa: E731
    url_file = tmp_path / "database_url"
    url_file.write_text(url(old))
    settings = make_settings(
        harness_clean, api_keys, database_url=url(old), database_url_file=url_file, reload_seconds=0.05
    )
    key = api_keys["alice"]
    with TestClient(create_app(settings, migrate_on_start=False)) as client:
        assert client.get("/v1/articles", headers={"X-API-Key": key}).status_code == 200
        new = secrets.token_hex(12)
        with psycopg.connect(pg.url, autocommit=True) as admin:
            admin.execute(f"ALTER ROLE {role} PASSWORD '{new}'")
            rotated_at = admin.execute("SELECT now()").fetchone()
        url_file.write_text(url(new))

        def remade() -> bool:
            assert client.get("/v1/articles", headers={"X-API-Key": key}).status_code == 200
            with psycopg.connect(pg.url, autocommit=True) as admin:
                rows = admin.execute(
                    "SELECT backend_start > %s FROM pg_stat_activity WHERE usename = %s",
                    (rotated_at[0] if rotated_at else None, role),
                ).fetchall()
            return bool(rows) and all(r[0] for r in rows)

        _eventually(remade)
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(url(old), connect_timeout=3).close()
        psycopg.connect(url(new), connect_timeout=3).close()
