"""Settings, read once, when Django first imports this module: the usual pattern.

Whatever configures Django (manage.py, pytest-django, a WSGI server) needs the DB_* variables
and CACHE_REDIS_URL in the environment by then.
"""

from __future__ import annotations

import os

SECRET_KEY = os.environ.get("SECRET_KEY", "development-only-not-a-secret")
DEBUG = False
ALLOWED_HOSTS = ["localhost", "testserver"]

INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "shop"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "shop.urls"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

_DB_NAME = os.environ.get("DB_NAME", "shop")
# pytest-django names each xdist worker's test database TEST["NAME"] plus "_gw0", "_gw1", ...
# and, with --reuse-db, uses it as it finds it. The tests' database is the one the worker's
# Postgres was migrated in (DB_NAME, which already ends in that suffix): naming it without
# the suffix makes pytest-django use it, neither creating nor dropping a database.
_XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
_TEST_DB_NAME = _DB_NAME.removesuffix(f"_{_XDIST_WORKER}") if _XDIST_WORKER else _DB_NAME

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": os.environ.get("DB_HOST", "localhost"),
        "PORT": os.environ.get("DB_PORT", "5432"),
        "USER": os.environ.get("DB_USER", "shop"),
        "PASSWORD": os.environ.get("DB_PASSWORD", ""),
        "NAME": _DB_NAME,
        "TEST": {"NAME": _TEST_DB_NAME},
    }
}

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": os.environ.get("CACHE_REDIS_URL", "redis://localhost:6379/0"),
    }
}
