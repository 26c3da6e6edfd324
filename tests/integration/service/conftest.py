from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from services.api_gateway.app import create_app
from services.api_gateway.settings import Settings
from tierharness.pytest_plugin import HarnessServices


@pytest.fixture(scope="session")
def api_keys() -> dict[str, str]:
    """client name -> key; random per run, like every credential the harness hands out."""
    return {"alice": secrets.token_hex(16), "bob": secrets.token_hex(16)}


def make_settings(services: HarnessServices, api_keys: dict[str, str], **overrides: object) -> Settings:
    base: dict[str, object] = {
        "database_url": services.postgres.url,
        "redis_url": services.redis.url,
        "api_keys": {key: client for client, key in api_keys.items()},
        "rate_limit_per_minute": 10_000,
    }
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def app_client(harness_services: HarnessServices, api_keys: dict[str, str]) -> Iterator[TestClient]:
    # One app per worker: its pool and Redis client live as long as the worker's containers.
    app = create_app(make_settings(harness_services, api_keys))
    with TestClient(app) as client:
        yield client


@pytest.fixture
def client(app_client: TestClient, harness_clean: HarnessServices, api_keys: dict[str, str]) -> TestClient:
    app_client.headers["X-API-Key"] = api_keys["alice"]
    return app_client
