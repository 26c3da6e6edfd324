"""Rotated secrets picked up without a restart: the API keys file and the database URL file
(`API_KEYS_FILE`, `DATABASE_URL_FILE`) are watched, and a change takes effect in place.

Keys: the new set replaces the old one at once, so a rotation is done in two writes (old and
new keys, then the new only) and clients move in between. Database: new connections read the
URL file when they are made, and a change drains the pool, so every connection is remade with
the new password while requests in flight finish on the old ones.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from services.api_gateway.settings import ConfigError, parse_api_keys

__all__ = ["FileWatch", "SecretReloader", "read_secret"]

log = logging.getLogger("api_gateway.rotation")


def read_secret(path: Path) -> str:
    return path.read_text(encoding="utf-8").strip()


class FileWatch:
    """Says when a file changed: its inode (a rename over it), size or mtime."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen = self._stamp()

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def changed(self) -> bool:
        stamp = self._stamp()
        if stamp is None or stamp == self._seen:
            return False  # a file briefly missing mid-rotation keeps the last good value
        self._seen = stamp
        return True


class SecretReloader:
    """Polls the secret files every `interval` seconds and applies what changed."""

    def __init__(
        self,
        interval: float,
        *,
        keys_file: Path | None,
        on_keys: Callable[[dict[str, str]], None],
        url_file: Path | None,
        on_url: Callable[[], Awaitable[None]],
    ) -> None:
        self.interval = interval
        self.keys = FileWatch(keys_file) if keys_file else None
        self.url = FileWatch(url_file) if url_file else None
        self.on_keys = on_keys
        self.on_url = on_url

    async def check(self) -> None:
        if self.keys is not None and self.keys.changed():
            try:
                keys = parse_api_keys(read_secret(self.keys.path))
            except (OSError, ConfigError) as exc:
                # A half-written or wrong file must not lock every client out: keep the last keys.
                log.error("API keys file %s not applied: %s", self.keys.path, exc)
            else:
                if keys:
                    self.on_keys(keys)
                    log.info("API keys reloaded: %d key(s)", len(keys))
        if self.url is not None and self.url.changed():
            await self.on_url()
            log.info("database URL file changed: pool connections are being remade")

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check()
            except Exception:  # the watcher must outlive any one bad reload
                log.exception("secret reload failed")
