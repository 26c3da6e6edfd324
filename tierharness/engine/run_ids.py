"""Run ids: what names a run's resources, labels and manifests. Apart from the labels, so the
pytest plugin's controller makes one without importing what only a started resource needs."""

from __future__ import annotations

import os
from datetime import UTC, datetime

__all__ = ["new_run_id"]


def new_run_id(prefix: str = "") -> str:
    """A run id: sortable by time, unique by a random suffix (names, labels, manifests)."""
    # os.urandom is what secrets.token_hex reads; importing secrets also imports hmac.
    return f"{prefix}{datetime.now(UTC):%m%d%H%M%S}-{os.urandom(3).hex()}"
