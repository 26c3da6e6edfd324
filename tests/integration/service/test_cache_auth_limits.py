from __future__ import annotations

import time

from fastapi.testclient import TestClient

from services.api_gateway.app import create_app
from tierharness.pytest_plugin import HarnessServices

from .conftest import make_settings
from .test_articles import create


def test_get_is_read_through_cached_and_writes_invalidate(
    client: TestClient, harness_clean: HarnessServices
) -> None:
    made = create(client, "Cached", "v1")
    first = client.get(f"/v1/articles/{made['id']}")
    second = client.get(f"/v1/articles/{made['id']}")
    assert first.headers["X-Cache"] == "miss"
    assert second.headers["X-Cache"] == "hit"
    assert second.json() == first.json()
    keys = harness_clean.reset.redis.keys("kh:article:*")
    assert keys == [f"kh:article:{made['id']}".encode()]
    client.patch(f"/v1/articles/{made['id']}", json={"body": "v2"})
    third = client.get(f"/v1/articles/{made['id']}")
    assert third.headers["X-Cache"] == "miss"
    assert third.json()["body"] == "v2"


def test_cache_starts_empty_in_every_test(client: TestClient, harness_clean: HarnessServices) -> None:
    assert harness_clean.reset.redis.dbsize() == 0


def test_missing_key_is_401_and_wrong_key_is_403(client: TestClient) -> None:
    anonymous = client.get("/v1/articles", headers={"X-API-Key": ""})
    assert anonymous.status_code == 401
    assert "X-API-Key" in anonymous.json()["detail"]
    assert client.get("/v1/articles", headers={"X-API-Key": "x" * 32}).status_code == 403


def test_bearer_token_is_accepted(
    app_client: TestClient, harness_clean: HarnessServices, api_keys: dict[str, str]
) -> None:
    app_client.headers.pop("X-API-Key", None)
    assert (
        app_client.get("/v1/articles", headers={"Authorization": f"Bearer {api_keys['bob']}"}).status_code
        == 200
    )
    assert app_client.get("/v1/articles", headers={"Authorization": "Bearer " + "y" * 32}).status_code == 403


def _not_at_a_window_edge() -> None:
    """The limit counts per wall-clock minute: a burst must not straddle two windows."""
    left = 60 - time.time() % 60
    if left < 3:
        time.sleep(left + 0.1)


def test_rate_limit_is_per_key_and_exact(harness_clean: HarnessServices, api_keys: dict[str, str]) -> None:
    # Exact counts: a Redis shared with another worker using the same key would break them.
    app = create_app(make_settings(harness_clean, api_keys, rate_limit_per_minute=5), migrate_on_start=False)
    with TestClient(app) as limited:
        alice = {"X-API-Key": api_keys["alice"]}
        _not_at_a_window_edge()
        codes = [limited.get("/v1/articles", headers=alice).status_code for _ in range(6)]
        assert codes == [200] * 5 + [429]
        refused = limited.get("/v1/articles", headers=alice)
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert limited.get("/v1/articles", headers={"X-API-Key": api_keys["bob"]}).status_code == 200


def test_health_ready_and_metrics(client: TestClient) -> None:
    assert client.get("/health").json()["status"] == "ok"
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"postgres": "ok", "redis": "ok"}
    client.get("/v1/articles")
    client.get("/v1/articles/999999")
    text = client.get("/metrics").text
    assert 'http_requests_total{method="GET",route="/v1/articles",status="200"}' in text
    assert 'http_requests_total{method="GET",route="/v1/articles/{article_id}",status="404"}' in text
    assert "http_request_duration_seconds_bucket" in text
