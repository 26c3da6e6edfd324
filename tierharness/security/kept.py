"""Scan results kept as JSON in the machine's cache (`config.machine_cache`): the image's
layer scans and detect-secrets' findings per file. Content-addressed by their callers, so an
entry never goes stale; one that cannot be read is scanned again and replaced."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["keep", "read_kept"]


def read_kept(path: Path) -> Any | None:
    """The JSON kept at `path`, or None when there is none or it is not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def keep(path: Path, data: Any) -> None:
    """`data` as JSON at `path`: written aside, then renamed, so two checkouts scanning the
    same thing never read half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(data), encoding="utf-8")
    partial.replace(path)
