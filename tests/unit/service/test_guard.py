"""The request guard, the metric labels, input validation and the OpenAPI document, without
a database: the guard is plain ASGI, the models plain pydantic."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from pydantic import BaseModel, ValidationError

from services.api_gateway.app import ArticleIn, ArticlePatch, create_app, install_middleware
from services.api_gateway.guard import RequestGuard
from services.api_gateway.metrics import Metrics, method_label
from services.api_gateway.settings import Settings

KEY = "k" * 24
KEYS = {KEY: "alice"}


def _call(app: Any, method: str, path: str, headers: dict[str, str]) -> tuple[int, bool]:
    """(status, whether the body was ever asked for) of one request through `app`."""
    read = False
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal read
        read = True
        return {"type": "http.request", "body": b"[" * 1024, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "method": method, "path": path, "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }  # fmt: skip
    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], read


async def _never(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("the application must not be reached")


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"content-length": str(18 << 20)}, 401),
        ({"content-length": str(18 << 20), "x-api-key": "wrong-key-0123456789"}, 403),
        ({"content-length": str(18 << 20), "authorization": "Basic eDp5"}, 401),
        ({"content-length": str(18 << 20), "x-api-key": KEY}, 413),
    ],
)
def test_refused_requests_never_have_their_body_read(headers: dict[str, str], status: int) -> None:
    guard = RequestGuard(_never, api_keys=lambda: KEYS, max_body=1 << 20)
    assert _call(guard, "POST", "/v1/articles", headers) == (status, False)


class Doc(BaseModel):
    text: str


def _echo_app() -> FastAPI:
    app = FastAPI()

    @app.post("/v1/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"size": len(await request.body()), "client": request.state.client == "alice"}

    @app.post("/v1/parsed")
    async def parsed(doc: Doc) -> dict[str, int]:  # FastAPI reads and parses this body itself
        return {"size": len(doc.text)}

    install_middleware(app, Metrics(), lambda: KEYS, 4096)  # as create_app does
    return app


def test_a_streamed_body_past_the_cap_is_413_and_a_small_one_passes() -> None:
    client = TestClient(_echo_app())

    def chunks(n: int) -> Any:
        for _ in range(n):
            yield b"x" * 1024

    big = client.post("/v1/echo", content=chunks(64), headers={"X-API-Key": KEY})  # no Content-Length
    assert big.status_code == 413
    parsed = client.post("/v1/parsed", content=chunks(64), headers={"X-API-Key": KEY})
    assert parsed.status_code == 413
    small = client.post("/v1/echo", content=chunks(2), headers={"Authorization": f"Bearer {KEY}"})
    assert small.status_code == 200
    assert small.json() == {"size": 2048, "client": True}


def test_unprotected_paths_need_no_key() -> None:
    async def ok(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    guard = RequestGuard(ok, api_keys=lambda: KEYS, max_body=1024)
    assert _call(guard, "GET", "/health", {}) == (200, False)


def test_method_label_is_a_fixed_set() -> None:
    assert method_label("GET") == "GET"
    assert method_label("PROPFIND") == "other"
    assert method_label("X" * 1000) == "other"


def test_arbitrary_methods_do_not_grow_the_metrics() -> None:
    metrics = Metrics()
    app = FastAPI()
    app.middleware("http")(metrics.middleware)
    client = TestClient(app)
    for n in range(20):
        client.request(f"M{n}", "/nothing")
    methods = {
        s.labels["method"] for m in metrics.registry.collect() for s in m.samples if "method" in s.labels
    }
    assert methods == {"other"}


@pytest.mark.parametrize(
    "payload",
    [
        {"title": "a\x00b", "body": "x"},
        {"title": "t", "body": "nul \x00 inside"},
        {"title": "t", "body": "lone \ud800 surrogate"},
    ],
)
def test_text_postgres_cannot_store_is_a_validation_error(payload: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        ArticleIn.model_validate(payload)


@pytest.mark.parametrize("field", ["title", "body", "tags"])
def test_null_in_a_patch_is_a_validation_error(field: str) -> None:
    with pytest.raises(ValidationError, match="cannot be null"):
        ArticlePatch.model_validate({field: None})


# --------------------------------------------------------------------------- the document


def _openapi() -> dict[str, Any]:
    settings = Settings(database_url="postgresql://h/db", redis_url="redis://h/0", api_keys=KEYS)
    return create_app(settings, migrate_on_start=False).openapi()


def test_openapi_declares_real_security_schemes_not_header_parameters() -> None:
    doc = _openapi()
    schemes = doc["components"]["securitySchemes"]
    assert {s["type"] for s in schemes.values()} == {"apiKey", "http"}
    for path, item in doc["paths"].items():
        for operation in item.values():
            names = {p["name"].lower() for p in operation.get("parameters", [])}
            assert not names & {"x-api-key", "authorization"}, path
            if path.startswith("/v1/"):
                assert operation["security"], path


def test_openapi_documents_every_error_a_route_can_give() -> None:
    paths = _openapi()["paths"]
    common = {"401", "403", "413", "422", "429"}
    assert common <= set(paths["/v1/articles"]["get"]["responses"])
    assert common | {"400", "409"} <= set(paths["/v1/articles"]["post"]["responses"])
    assert "400" in paths["/v1/articles/{article_id}"]["patch"]["responses"]  # a body that is not UTF-8
    for method in ("get", "patch", "delete"):
        assert common | {"404"} <= set(paths["/v1/articles/{article_id}"][method]["responses"])
    assert "/metrics" not in paths


def test_openapi_patch_fields_are_not_nullable() -> None:
    schema = _openapi()["components"]["schemas"]["ArticlePatch"]["properties"]
    for field in ("title", "body", "tags"):
        assert "null" not in str(schema[field]), field
