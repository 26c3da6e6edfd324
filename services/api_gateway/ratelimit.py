"""A fixed-window rate limit per API key, counted in Redis."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from redis.asyncio import Redis

__all__ = ["Decision", "RateLimiter", "window"]

WINDOW_SECONDS = 60


def window(now: float, size: int = WINDOW_SECONDS) -> tuple[int, int]:
    """(window number, seconds until it ends; at least 1)."""
    number = int(now // size)
    return number, max(1, int((number + 1) * size - now + 0.999))


@dataclass(frozen=True)
class Decision:
    allowed: bool
    remaining: int
    retry_after: int


class RateLimiter:
    def __init__(
        self, redis: Redis, limit: int, prefix: str, overrides: Mapping[str, int] | None = None
    ) -> None:
        self.redis = redis
        self.limit = limit
        self.prefix = prefix
        self.overrides = dict(overrides or {})

    async def hit(self, client: str, now: float | None = None) -> Decision:
        number, left = window(time.time() if now is None else now)
        key = f"{self.prefix}rl:{client}:{number}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, WINDOW_SECONDS + 1)
            count, _ = await pipe.execute()
        limit = self.overrides.get(client, self.limit)
        return Decision(count <= limit, max(0, limit - count), left)
