"""Prometheus metrics, labelled by route template (not raw path, which is unbounded)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.requests import Request
from starlette.responses import Response

__all__ = ["METHODS", "Metrics", "method_label"]

# The method is the client's to choose: any other word becomes "other", so a client cannot
# grow the metric's label set (and the process's memory) without bound.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def method_label(method: str) -> str:
    return method if method in METHODS else "other"


class Metrics:
    def __init__(self) -> None:
        # One registry per app: several apps in one process (tests) must not collide.
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "http_requests_total", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "HTTP request duration",
            ["method", "route", "status"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
        )
        self.cache = Counter(
            "cache_requests_total", "Article cache lookups", ["result"], registry=self.registry
        )
        self.degraded = Counter(
            "dependency_errors_total",
            "Calls to a dependency that failed",
            ["dependency"],
            registry=self.registry,
        )
        self.secret_reload_errors = Counter(
            "secret_reload_errors_total",
            "Rotated secret files refused (deleted, empty or invalid); the last good value is kept briefly",
            ["secret"],
            registry=self.registry,
        )

    async def middleware(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = request.scope.get("route")
            template = getattr(route, "path", "unmatched")
            labels = (method_label(request.method), template, str(status))
            self.requests.labels(*labels).inc()
            self.duration.labels(*labels).observe(time.perf_counter() - started)
