from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from filelock import FileLock

ROOT = Path(__file__).resolve().parent.parent
# A test's tier is the folder it lives in; its marker says so, for `-m`.
TIERS = ("unit", "integration", "e2e", "performance", "remote")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(item.path).relative_to(ROOT).parts
        if len(parts) > 1 and parts[0] == "tests" and parts[1] in TIERS:
            item.add_marker(getattr(pytest.mark, parts[1]))


@pytest.fixture(scope="session")
def project_root() -> Path:
    return ROOT


@pytest.fixture
def untraced_children(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test's child processes run untraced by coverage (which the tests session turns on
    for every child): for other projects' tools, whose code is not ours to measure, and for
    runs that only repeat what the workers measure. Traced, check-jsonschema takes 7.1 s
    instead of 2.6 and a collection of the whole suite 30 % longer."""
    monkeypatch.delenv("COVERAGE_PROCESS_CONFIG", raising=False)


@pytest.fixture
def kept_lock() -> Iterator[None]:
    """`clean` removes every kept container of the user: the tests that keep containers and
    call it take turns, in this checkout and in any other of the same user on the machine."""
    lock = Path(tempfile.gettempdir()) / f"tierharness-tests-kept-{os.getuid()}.lock"
    with FileLock(str(lock)):
        yield
