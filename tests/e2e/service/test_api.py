"""The production image over HTTP, beside its own Postgres and Redis."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx


def _slug() -> str:
    return f"e2e-{uuid.uuid4().hex[:10]}"


def test_health_and_ready(anonymous: httpx.Client) -> None:
    assert anonymous.get("/health").json()["status"] == "ok"
    ready = anonymous.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"postgres": "ok", "redis": "ok"}


def test_missing_key_is_401_and_wrong_key_is_403(anonymous: httpx.Client) -> None:
    assert anonymous.get("/v1/articles").status_code == 401
    assert anonymous.get("/v1/articles", headers={"X-API-Key": "not-a-real-key-0000"}).status_code == 403


def test_crud_and_search(http: httpx.Client) -> None:
    slug = _slug()
    created = http.post(
        "/v1/articles",
        json={"title": "Reproducible builds explained", "body": "bit for bit", "tags": ["e2e"], "slug": slug},
    )
    assert created.status_code == 201
    article = created.json()
    assert created.headers["Location"] == f"/v1/articles/{article['id']}"
    assert http.get(f"/v1/articles/{article['id']}").json()["slug"] == slug
    found = http.get("/v1/articles", params={"q": "reproducible", "tag": "e2e"}).json()
    assert article["id"] in [a["id"] for a in found["items"]]
    patched = http.patch(f"/v1/articles/{article['id']}", json={"title": "Reproducible builds, revisited"})
    assert patched.json()["title"] == "Reproducible builds, revisited"
    assert http.post("/v1/articles", json={"title": "t", "body": "b", "slug": slug}).status_code == 409
    assert http.post("/v1/articles", json={"title": "", "body": "b"}).status_code == 422
    assert http.delete(f"/v1/articles/{article['id']}").status_code == 204
    assert http.get(f"/v1/articles/{article['id']}").status_code == 404


def test_reads_are_cached_and_writes_invalidate(http: httpx.Client) -> None:
    article = http.post("/v1/articles", json={"title": "Cache me", "body": "v1", "slug": _slug()}).json()
    url = f"/v1/articles/{article['id']}"
    assert http.get(url).headers["X-Cache"] == "miss"
    assert http.get(url).headers["X-Cache"] == "hit"
    http.patch(url, json={"body": "v2"})
    again = http.get(url)
    assert again.headers["X-Cache"] == "miss"
    assert again.json()["body"] == "v2"


def test_rate_limit_answers_429_with_retry_after(harness_stack: Any) -> None:
    # The `limited` client has a quota of 20 a minute (RATE_LIMIT_OVERRIDES in [tool.harness.stack.env]).
    left = 60 - time.time() % 60  # the quota counts per wall-clock minute: stay inside one
    if left < 3:
        time.sleep(left + 0.1)
    with httpx.Client(
        base_url=harness_stack.base_url, headers={"X-API-Key": harness_stack.api_keys["limited"]}
    ) as c:
        codes = [c.get("/v1/articles", params={"limit": 1}).status_code for _ in range(21)]
        refused = c.get("/v1/articles")
    assert codes == [200] * 20 + [429]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60


def test_metrics_count_requests_by_route_and_status(http: httpx.Client, anonymous: httpx.Client) -> None:
    http.get("/v1/articles/987654321")
    text = anonymous.get("/metrics").text
    assert 'http_requests_total{method="GET",route="/v1/articles/{article_id}",status="404"}' in text
    assert 'http_request_duration_seconds_count{method="GET",route="/health",status="200"}' in text
