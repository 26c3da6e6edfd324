"""The request guard: an ASGI middleware that runs before routing, so before any body is
read or parsed.

- `/v1/` requests must present a valid API key (`X-API-Key` or `Authorization: Bearer`):
  401 without one, 403 with a wrong one. An unauthenticated request is answered without its
  body ever being read, so it cannot make the service allocate or parse anything.
- Every body is capped: a `Content-Length` above the cap is answered 413 at once, and a
  streamed (chunked) body is cut off with a 413 as soon as it passes the cap.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from fastapi import HTTPException

from services.api_gateway.auth import identify

__all__ = ["BodyTooLarge", "RequestGuard", "presented_key"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PROTECTED_PREFIX = "/v1/"


class BodyTooLarge(HTTPException):
    """Raised from `receive` when a streamed body passes the cap. FastAPI turns any other error
    while it reads a body into a 400, but lets its own HTTPException through: a 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")


def presented_key(headers: Mapping[str, str]) -> str | None:
    key = headers.get("x-api-key")
    if key is None:
        authorization = headers.get("authorization", "")
        if authorization.lower().startswith("bearer "):
            key = authorization[7:].strip()
    return key or None


class RequestGuard:
    def __init__(self, app: ASGIApp, *, api_keys: Callable[[], Mapping[str, str]], max_body: int) -> None:
        self.app = app
        # Read per request: with settings from the environment, the keys arrive at start-up.
        self.api_keys = api_keys
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if scope["path"].startswith(PROTECTED_PREFIX):
            key = presented_key(headers)
            if key is None:
                await _answer(send, 401, "missing API key: send it as X-API-Key or Authorization: Bearer",
                              {"www-authenticate": "Bearer"})  # fmt: skip
                return
            client = identify(key, self.api_keys())
            if client is None:
                await _answer(send, 403, "invalid API key")
                return
            scope.setdefault("state", {})["client"] = client
        length = headers.get("content-length", "")
        # A malformed length never gets here: the HTTP server refuses it first.
        if length.isdigit() and int(length) > self.max_body:
            await _answer(send, 413, f"request body larger than {self.max_body} bytes")
            return
        await self.app(scope, self._capped(receive), send)

    def _capped(self, receive: Receive) -> Receive:
        seen = 0

        async def capped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise BodyTooLarge(self.max_body)
            return message

        return capped


async def _answer(send: Send, status: int, detail: str, extra: Mapping[str, str] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    # The body is left unread: the server closes or drains the connection, we never buffer it.
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
