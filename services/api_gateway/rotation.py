"""Rotated secrets picked up without a restart: the API keys file and the database URL file
(`API_KEYS_FILE`, `DATABASE_URL_FILE`) are watched, and a change takes effect in place.

Keys: the new set replaces the old one at once, so a rotation is done in two writes (old and
new keys, then the new only) and clients move in between. A keys file that cannot be applied
(deleted, empty, or with any entry invalid) is refused as a whole: the last good set stays in
force for the overlap window only, then no key is accepted until a good file is written. It
fails closed, so a revocation is never undone by a mistake in the same file.

Database: new connections read the URL file when they are made, and a change drains the pool,
so every connection is remade with the new password while requests in flight finish on the
old ones.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from services.api_gateway.settings import ConfigError, parse_api_keys

__all__ = ["FileWatch", "KeySet", "SecretReloader", "read_secret"]

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
        """Whether the file changed since the last call; its disappearance is a change too."""
        stamp = self._stamp()
        if stamp == self._seen:
            return False
        self._seen = stamp
        return True

    @property
    def present(self) -> bool:
        return self._seen is not None


class KeySet:
    """The API keys in force: the last good set, which a refused keys file makes stale. A
    stale set is still accepted for `overlap` seconds (a file briefly missing or half-written
    mid-rotation locks nobody out), and after that not at all."""

    def __init__(self, keys: Mapping[str, str], overlap: float) -> None:
        self._keys: Mapping[str, str] = dict(keys)
        self.overlap = overlap
        self._stale_until: float | None = None

    def replace(self, keys: Mapping[str, str]) -> None:
        self._keys, self._stale_until = dict(keys), None

    def stale(self) -> None:
        """The keys file was refused: the window runs from the first refusal, and a second
        refusal within it does not extend it."""
        if self._stale_until is None:
            self._stale_until = time.monotonic() + self.overlap

    def seconds_left(self) -> float:
        """How long the stale set is still accepted (the whole window while it is not stale)."""
        if self._stale_until is None:
            return self.overlap
        return max(0.0, self._stale_until - time.monotonic())

    def current(self) -> Mapping[str, str]:
        # Checked at every request, not by the poller: the window ends on time, whatever the interval.
        if self._stale_until is not None and time.monotonic() >= self._stale_until:
            return {}
        return self._keys


class SecretReloader:
    """Polls the secret files every `interval` seconds and applies what changed."""

    def __init__(
        self,
        interval: float,
        *,
        keys_file: Path | None,
        keys: KeySet,
        url_file: Path | None,
        on_url: Callable[[], Awaitable[None]],
        on_refused: Callable[[str], None],
    ) -> None:
        self.interval = interval
        self.keys_watch = FileWatch(keys_file) if keys_file else None
        self.url = FileWatch(url_file) if url_file else None
        self.keys = keys
        self.on_url = on_url
        self.on_refused = on_refused  # called with the secret's name, e.g. to count it

    def _reload_keys(self, path: Path) -> None:
        try:
            keys = parse_api_keys(read_secret(path))
            if not keys:
                raise ConfigError("it holds no key")
        except (OSError, ConfigError) as exc:
            self.keys.stale()
            self.on_refused("api_keys")
            # The reason names the client, never a key; it says how long the old keys last.
            log.error(
                "API keys file %s refused: %s. The last good keys are accepted for %.1fs more at most, "
                "then none: write a valid file (one `client:key` per line, keys of 16+ characters)",
                path, exc.strerror if isinstance(exc, OSError) else exc, self.keys.seconds_left(),
            )  # fmt: skip
            return
        self.keys.replace(keys)
        log.info("API keys reloaded: %d key(s)", len(keys))

    async def check(self) -> None:
        if self.keys_watch is not None and self.keys_watch.changed():
            self._reload_keys(self.keys_watch.path)
        # A missing URL file drains nothing: new connections would fail to read it.
        if self.url is not None and self.url.changed() and self.url.present:
            await self.on_url()
            log.info("database URL file changed: pool connections are being remade")

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check()
            except Exception:  # the watcher must outlive any one bad reload
                log.exception("secret reload failed")
