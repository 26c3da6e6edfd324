"""Settings, read once, when this module is first imported: the usual pattern.

Whatever imports `inventory` (the app, Alembic's env.py, a test's conftest) needs the
POSTGRES_* variables in the environment by then.
"""

from __future__ import annotations

import os

from sqlalchemy import URL

POSTGRES_SERVER = os.environ["POSTGRES_SERVER"]
POSTGRES_PORT = int(os.environ.get("POSTGRES_PORT", "5432"))
POSTGRES_USER = os.environ["POSTGRES_USER"]
POSTGRES_PASSWORD = os.environ.get("POSTGRES_PASSWORD", "")
POSTGRES_DB = os.environ.get("POSTGRES_DB", "inventory")

DATABASE_URL = URL.create(
    "postgresql+psycopg",
    username=POSTGRES_USER,
    password=POSTGRES_PASSWORD,
    host=POSTGRES_SERVER,
    port=POSTGRES_PORT,
    database=POSTGRES_DB,
)

SECRET_KEY = os.environ.get("SECRET_KEY", "development-only-not-a-secret")
ACCESS_TOKEN_EXPIRE_MINUTES = int(os.environ.get("ACCESS_TOKEN_EXPIRE_MINUTES", "60"))

FIRST_SUPERUSER = os.environ.get("FIRST_SUPERUSER", "admin@example.com")
FIRST_SUPERUSER_PASSWORD = os.environ.get("FIRST_SUPERUSER_PASSWORD", "change-this-password")
