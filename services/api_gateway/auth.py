"""API-key authentication: constant-time comparison against every configured key."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

__all__ = ["identify"]


def identify(presented: str, keys: Mapping[str, str]) -> str | None:
    """The client owning `presented`, or None.

    Every key is compared, with hmac.compare_digest, whatever matched earlier: the
    time taken does not reveal which key, or which prefix, came close.
    """
    found: str | None = None
    candidate = presented.encode()
    for key, client in keys.items():
        if hmac.compare_digest(candidate, key.encode()):
            found = client
    return found
