"""Rotated secrets are picked up in place: the API keys file, and the database password
(new connections use the new URL file, the pool is remade, the old password stops working)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from services.api_gateway.app import create_app
from tierharness.pytest_plugin import HarnessServices

from .conftest import make_settings


def _eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not picked up in time"
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
        keys_file.write_text("client:short\n")  # a broken file keeps the last good keys
        time.sleep(0.3)
        assert status(new) == 200


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
