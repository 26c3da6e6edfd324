"""`python -m services.api_gateway [serve|migrate|healthcheck]`."""

from __future__ import annotations

import logging
import os
import sys

from services.api_gateway.settings import ConfigError, Settings


def _serve() -> int:
    import uvicorn  # noqa: PLC0415  lazy: `migrate` and `healthcheck` need no server

    from services.api_gateway.app import create_app  # noqa: PLC0415  lazy: `migrate` and `healthcheck` need no app

    settings = Settings.from_env()
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=os.environ.get("LOG_LEVEL", "info"),
        access_log=os.environ.get("ACCESS_LOG", "0") == "1",
        proxy_headers=False,
        # Requests in flight beyond this get a 503 at once instead of queueing without bound.
        # uvicorn counts the open connections with the one asking among them, so its limit N
        # admits N - 1 requests on connections of their own: one more makes MAX_CONCURRENCY exact.
        limit_concurrency=settings.max_concurrency + 1,
    )
    return 0


def _migrate() -> int:
    from services.api_gateway.migrations import migrate  # noqa: PLC0415  lazy: serving needs no migration code

    url = os.environ.get("DATABASE_URL")
    if not url and os.environ.get("DATABASE_URL_FILE"):
        url = open(os.environ["DATABASE_URL_FILE"], encoding="utf-8").read().strip()  # noqa: SIM115
    if not url:
        raise ConfigError("DATABASE_URL (or DATABASE_URL_FILE) is required")
    applied = migrate(url)
    print(f"applied {len(applied)} migration(s){': ' + ', '.join(applied) if applied else ''}")
    return 0


def _healthcheck() -> int:
    """For the image's HEALTHCHECK: no curl in a production image."""
    import http.client  # noqa: PLC0415  lazy: `migrate` runs once per test worker, and needs none of it

    # http.client, not urlopen: a fixed host and scheme, nothing a URL could redirect elsewhere.
    connection = http.client.HTTPConnection("127.0.0.1", int(os.environ.get("PORT", "8000")), timeout=2)
    try:
        connection.request("GET", "/health")
        return 0 if connection.getresponse().status == 200 else 1
    except (OSError, http.client.HTTPException):
        return 1
    finally:
        connection.close()


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    command = argv[0] if argv else "serve"
    commands = {"serve": _serve, "migrate": _migrate, "healthcheck": _healthcheck}
    if command not in commands:
        print(f"usage: python -m services.api_gateway [{'|'.join(commands)}]", file=sys.stderr)
        return 2
    try:
        return commands[command]()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
