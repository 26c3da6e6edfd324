"""`build/image.json`, what the last build made, as the commands that use the image read it
back (publish, the verified stack, the independent rebuild)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tierharness.config import Settings
from tierharness.errors import HarnessError

__all__ = ["build_record", "read_record"]


def read_record(path: Path, fix: str) -> dict[str, Any]:
    """A JSON record a command wrote; `fix` says which command makes it."""
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise HarnessError(f"cannot read {path}: {exc}", checked=str(path), fix=fix) from None
    return data


def build_record(settings: Settings) -> dict[str, Any]:
    """build/image.json: what the last build made."""
    return read_record(settings.image_record, "build the image first: `nox -s build`")
