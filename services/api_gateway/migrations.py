"""SQL migrations, applied in file-name order under a Postgres advisory lock, so
replicas starting at once apply each migration exactly once."""

from __future__ import annotations

import zlib
from importlib import resources

import psycopg

__all__ = ["LOCK_ID", "applied_versions", "available", "migrate"]

# A fixed 64-bit key for pg_advisory_lock, derived from the service's name.
LOCK_ID = zlib.crc32(b"knowledge-hub/migrations")

_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


def available() -> list[tuple[str, str]]:
    """(version, sql) for every migration shipped with the service, in order."""
    folder = resources.files("services.api_gateway") / "migrations"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [(f.name.removesuffix(".sql"), f.read_text(encoding="utf-8")) for f in files]


def applied_versions(conn: psycopg.Connection) -> set[str]:
    return {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}


def migrate(database_url: str) -> list[str]:
    """Apply what is missing; returns the versions this call applied."""
    done: list[str] = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        # Session-level lock: held across the per-migration transactions below,
        # released on unlock or when the connection drops.
        conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_ID,))
        try:
            conn.execute(_TABLE)
            already = applied_versions(conn)
            for version, sql in available():
                if version in already:
                    continue
                with conn.transaction():
                    conn.execute(sql.encode())
                    conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
                done.append(version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_ID,))
    return done
