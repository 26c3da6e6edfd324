"""Configuration from the environment. Secrets may come from `*_FILE` variables
(Docker/Kubernetes secrets); nothing secret has a default."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SECRETS", "ConfigError", "Settings", "body_limit", "parse_api_keys", "parse_limits"]

# The settings that are secrets: each from `NAME` or `NAME_FILE`, never with a default.
SECRETS = ("DATABASE_URL", "REDIS_URL", "API_KEYS")


class ConfigError(Exception):
    """The service cannot start with the configuration it was given."""


def _secret(env: Mapping[str, str], name: str, *, required: bool) -> str | None:
    """`NAME` or the contents of the file named by `NAME_FILE` (not both)."""
    direct, path = env.get(name), env.get(f"{name}_FILE")
    if direct and path:
        raise ConfigError(f"both {name} and {name}_FILE are set: set only one")
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE={path} cannot be read: {exc.strerror}") from exc
    if direct:
        return direct
    if required:
        raise ConfigError(f"{name} (or {name}_FILE) is required")
    return None


def parse_api_keys(raw: str) -> dict[str, str]:
    """`client:key` entries separated by commas or newlines -> {key: client}.

    A bare `key` gets the client name `client-N`. Keys shorter than 16 characters
    are refused: an API key is a secret, not a password someone remembers.
    """
    keys: dict[str, str] = {}
    entries = [e.strip() for e in raw.replace("\n", ",").split(",")]
    for n, entry in enumerate((e for e in entries if e and not e.startswith("#")), start=1):
        client, sep, key = entry.partition(":")
        if not sep:
            client, key = f"client-{n}", entry
        client, key = client.strip(), key.strip()
        if len(key) < 16:
            raise ConfigError(f"API key for {client!r} is shorter than 16 characters")
        if key in keys:
            raise ConfigError(f"API key for {client!r} duplicates the key of {keys[key]!r}")
        keys[key] = client
    return keys


def parse_limits(raw: str) -> dict[str, int]:
    """`client:limit` entries -> {client: requests per minute}: per-client quotas."""
    limits: dict[str, int] = {}
    for entry in (e.strip() for e in raw.split(",")):
        if not entry:
            continue
        client, sep, value = entry.partition(":")
        if not sep or not value.strip().isdigit() or int(value) < 1:
            raise ConfigError(f"RATE_LIMIT_OVERRIDES entry {entry!r} is not `client:requests-per-minute`")
        limits[client.strip()] = int(value)
    return limits


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} is below the minimum of {minimum}")
    return value


def body_limit(env: Mapping[str, str] | None = None) -> int:
    """MAX_BODY_BYTES: the largest request body the service reads."""
    return _int(os.environ if env is None else env, "MAX_BODY_BYTES", 1 << 20, minimum=1024)


@dataclass(frozen=True)
class Settings:
    database_url: str
    redis_url: str
    api_keys: Mapping[str, str] = field(repr=False)  # key -> client name
    rate_limit_per_minute: int = 600
    rate_limit_overrides: Mapping[str, int] = field(default_factory=dict)
    cache_ttl_seconds: int = 300
    db_pool_min: int = 1
    db_pool_max: int = 10
    # A container's service listens on all of its interfaces; the engine decides what is published.
    host: str = "0.0.0.0"  # noqa: S104  # nosec B104
    port: int = 8000
    redis_prefix: str = "kh:"
    max_body_bytes: int = 1 << 20  # larger request bodies are refused with 413, unread
    max_concurrency: int = 100  # requests in flight (idle connections count): 503 beyond it
    # Where rotated secrets are re-read from (None: given directly, never rotated).
    api_keys_file: Path | None = None
    database_url_file: Path | None = None
    reload_seconds: float = 1.0
    # How long the last good keys outlive a keys file that is refused (deleted, empty, invalid).
    api_keys_overlap: float = 10.0

    def __repr__(self) -> str:  # never print credentials embedded in URLs
        limit = self.rate_limit_per_minute
        return f"Settings(port={self.port}, api_keys={len(self.api_keys)}, rate_limit={limit})"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        secret = {name: _secret(env, name, required=True) or "" for name in SECRETS}
        keys = parse_api_keys(secret["API_KEYS"])
        if not keys:
            raise ConfigError("API_KEYS (or API_KEYS_FILE) holds no key")
        return cls(
            database_url=secret["DATABASE_URL"],
            redis_url=secret["REDIS_URL"],
            api_keys=keys,
            rate_limit_per_minute=_int(env, "RATE_LIMIT_PER_MINUTE", 600, minimum=1),
            rate_limit_overrides=parse_limits(env.get("RATE_LIMIT_OVERRIDES", "")),
            cache_ttl_seconds=_int(env, "CACHE_TTL_SECONDS", 300, minimum=1),
            db_pool_min=_int(env, "DB_POOL_MIN", 1, minimum=1),
            db_pool_max=_int(env, "DB_POOL_MAX", 10, minimum=1),
            host=env.get("HOST", "0.0.0.0"),  # noqa: S104  # nosec B104
            port=_int(env, "PORT", 8000, minimum=1),
            redis_prefix=env.get("REDIS_PREFIX", "kh:"),
            max_body_bytes=body_limit(env),
            max_concurrency=_int(env, "MAX_CONCURRENCY", 100, minimum=1),
            api_keys_file=Path(env["API_KEYS_FILE"]) if env.get("API_KEYS_FILE") else None,
            database_url_file=Path(env["DATABASE_URL_FILE"]) if env.get("DATABASE_URL_FILE") else None,
            reload_seconds=_int(env, "SECRETS_RELOAD_MS", 1000, minimum=50) / 1000,
            api_keys_overlap=_int(env, "API_KEYS_OVERLAP_MS", 10_000, minimum=0) / 1000,
        )
