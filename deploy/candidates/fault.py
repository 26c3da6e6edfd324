"""A broken candidate for the deploy rehearsal (`nox -s deploy -- --candidate broken`): the real
service, with one fault added inside its metrics middleware, so Prometheus sees what clients see.

CANDIDATE_FAULT:
- `unhealthy`: /health answers 503, so the image's HEALTHCHECK never passes;
- `errors`: healthy, and after the first CANDIDATE_FAULT_AFTER API requests (more than a smoke
  check makes) answers 500 to a third of them;
- `slow`: healthy, and after as many requests takes 2.5 s for each (p95 above the 2 s alert).
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Awaitable, Callable

import uvicorn
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.api_gateway.app import create_app
from services.api_gateway.settings import Settings

FAULT = os.environ.get("CANDIDATE_FAULT", "")
AFTER = int(os.environ.get("CANDIDATE_FAULT_AFTER", "30"))
_seen = [0]  # API requests so far (a list: the middleware only mutates it)


async def fault(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    path = request.url.path
    if FAULT == "unhealthy" and path == "/health":
        return JSONResponse({"status": "broken"}, 503)
    if path.startswith("/v1/"):
        _seen[0] += 1
        if _seen[0] > AFTER and FAULT == "errors" and random.random() < 1 / 3:  # noqa: S311
            return JSONResponse({"detail": "injected fault"}, 500)
        if _seen[0] > AFTER and FAULT == "slow":
            await asyncio.sleep(2.5)
    return await call_next(request)


def main() -> None:
    settings = Settings.from_env()
    app = create_app(settings)
    # Innermost: the service's own metrics middleware counts the injected 500s and delays.
    app.user_middleware.append(Middleware(BaseHTTPMiddleware, dispatch=fault))
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
