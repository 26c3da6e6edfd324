from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest


@pytest.fixture(scope="session")
def http(harness_stack: Any) -> Iterator[httpx.Client]:
    """A client for the running service, authenticated as the `e2e` key."""
    with httpx.Client(
        base_url=harness_stack.base_url, headers={"X-API-Key": harness_stack.api_keys["e2e"]}, timeout=10
    ) as client:
        yield client


@pytest.fixture(scope="session")
def anonymous(harness_stack: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=harness_stack.base_url, timeout=10) as client:
        yield client
