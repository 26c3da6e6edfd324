from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# A test's tier is the folder it lives in; its marker says so, for `-m`.
TIERS = ("unit", "integration", "e2e", "performance", "remote")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(item.path).relative_to(ROOT).parts
        if len(parts) > 1 and parts[0] == "tests" and parts[1] in TIERS:
            item.add_marker(getattr(pytest.mark, parts[1]))
    _longest_files_first(items)


def _longest_files_first(items: list[pytest.Item]) -> None:
    """The files in order of their recorded durations (tests/durations.json), longest first; a
    file's tests stay together and in order, so module fixtures are set up once. xdist hands
    tests out in this order: the short ones come last and the workers end together, where a
    long test handed out late kept one worker busy while the other idled."""
    recorded = ROOT / "tests" / "durations.json"
    if not recorded.exists():
        return
    durations: dict[str, float] = json.loads(recorded.read_text())
    per_file: dict[str, float] = {}
    for item in items:
        path = item.nodeid.split("::", 1)[0]
        per_file[path] = per_file.get(path, 0.0) + durations.get(item.nodeid, 0.0)
    first_seen = {path: n for n, path in enumerate(dict.fromkeys(i.nodeid.split("::", 1)[0] for i in items))}
    items.sort(key=lambda i: (-per_file[i.nodeid.split("::", 1)[0]], first_seen[i.nodeid.split("::", 1)[0]]))


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
