"""The checkout's own files, for unit tests that read them."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def repo_file(name: str) -> Path:
    """A file of the checkout; the unit tier also runs inside the image's test stage, which
    holds only what the Dockerfile copies."""
    path = ROOT / name
    if not path.is_file():
        pytest.skip(f"{name} is not here (the image's test stage copies only what it needs)")
    return path
