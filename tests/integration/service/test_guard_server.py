"""The body cap under a real server: uvicorn delivers a streamed body in pieces, and the 413
must survive the middleware stack (the test client does not show this; uvicorn does)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

from services.api_gateway.app import install_middleware
from services.api_gateway.metrics import Metrics

KEY = "k" * 24


class Doc(BaseModel):
    text: str


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    app = FastAPI()

    @app.post("/v1/parsed")
    async def parsed(doc: Doc) -> dict[str, int]:
        return {"size": len(doc.text)}

    install_middleware(app, Metrics(), lambda: {KEY: "alice"}, 4096)  # as create_app does
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def _chunks(kib: int) -> Iterator[bytes]:
    yield b'{"text": "'
    for _ in range(kib):
        yield b"x" * 1024
    yield b'"}'


def test_a_streamed_body_past_the_cap_is_413_not_400(server_url: str) -> None:
    headers: dict[str, Any] = {"X-API-Key": KEY, "Content-Type": "application/json"}
    response = httpx.post(f"{server_url}/v1/parsed", content=_chunks(64), headers=headers)
    assert (response.status_code, response.json()["detail"]) == (413, "request body larger than 4096 bytes")
    small = httpx.post(f"{server_url}/v1/parsed", content=_chunks(2), headers=headers)
    assert small.json() == {"size": 2048}
