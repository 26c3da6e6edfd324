"""Dependencies going away and coming back; the service restarting."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx


def _wait_for_status(client: httpx.Client, path: str, status: int, seconds: float) -> float:
    started = time.monotonic()
    last = None
    while time.monotonic() - started < seconds:
        try:
            last = client.get(path).status_code
        except httpx.TransportError:
            last = None
        if last == status:
            return time.monotonic() - started
        time.sleep(0.25)
    raise AssertionError(f"{path} answered {last}, not {status}, for {seconds}s")


def test_ready_goes_503_without_postgres_and_recovers(harness_stack: Any, anonymous: httpx.Client) -> None:
    harness_stack.stop_postgres()
    try:
        _wait_for_status(anonymous, "/ready", 503, 15)
        body = anonymous.get("/ready").json()
        assert body["checks"]["postgres"].startswith("unavailable")
        assert body["checks"]["redis"] == "ok"
        assert anonymous.get("/health").status_code == 200  # liveness does not depend on Postgres
    finally:
        harness_stack.start_postgres()
    _wait_for_status(anonymous, "/ready", 200, 30)


def test_no_data_lost_across_a_service_restart(harness_stack: Any, http: httpx.Client) -> None:
    slug = f"durable-{uuid.uuid4().hex[:8]}"
    article = http.post(
        "/v1/articles", json={"title": "Survives restarts", "body": "kept", "slug": slug}
    ).json()
    harness_stack.restart_app()
    with httpx.Client(base_url=harness_stack.base_url, headers=dict(http.headers)) as fresh:
        got = fresh.get(f"/v1/articles/{article['id']}")
    assert got.status_code == 200
    assert got.json()["slug"] == slug
