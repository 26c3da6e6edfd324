"""The pytest plugin costs nothing when unused: a run that asks for no harness fixture (and has
no early provisioning) starts no process, no thread and no container, writes no file, and does
not import what only provisioning needs. Measured against the same run with `-p no:harness`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from tierharness.engine.labels import LABEL_RUN

# Recorded by the suite's own conftest at the session's end: what the run holds then.
CONFTEST = """
import json, os, sys, threading
from pathlib import Path


def _children(pid):
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def pytest_sessionfinish(session):
    record = {
        "threads": threading.active_count(),
        "children": _children(os.getpid()),
        "modules": sorted(m for m in sys.modules if m.split(".")[0] in ("docker", "testcontainers",
            "psycopg", "redis", "filelock") or m in ("tierharness.engine.reaper",
            "tierharness.runtime.worker", "tierharness.runtime.manifest")),
    }
    Path(os.environ["RECORD"]).write_text(json.dumps(record))
"""


def _run(where: Path, record: Path, run_id: str, *extra: str) -> dict[str, object]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("HARNESS_", "PYTEST_"))},
        "HARNESS_RUN_ID": run_id,
        "HARNESS_STATE_DIR": str(where / "state"),
        "RECORD": str(record),
    }
    argv = [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", *extra]
    proc = subprocess.run(argv, cwd=where, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return dict(json.loads(record.read_text()))


def _files(where: Path) -> set[str]:
    return {str(p.relative_to(where)) for p in where.rglob("*") if "__pycache__" not in p.parts}


def test_an_unused_plugin_starts_and_writes_nothing(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "pyproject.toml").write_text('[project]\nname = "trivial"\nversion = "0"\n')
    (suite / "conftest.py").write_text(CONFTEST)
    (suite / "test_trivial.py").write_text("def test_one():\n    assert 1 == 1\n")
    before = _files(suite)
    run_id = f"unused-{uuid.uuid4().hex[:8]}"

    without = _run(suite, tmp_path / "without.json", run_id, "-p", "no:harness")
    with_plugin = _run(suite, tmp_path / "with.json", run_id)

    assert with_plugin["children"] == [], "the unused plugin started a process"
    assert with_plugin["threads"] == without["threads"], "the unused plugin started a thread"
    assert with_plugin["modules"] == [], "the unused plugin imported what only provisioning needs"
    assert _files(suite) == before, "the unused plugin wrote a file"
    listed = subprocess.run(
        ["docker", "ps", "-a", "-q", "--filter", f"label={LABEL_RUN}={run_id}"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert listed == "", f"containers of the unused plugin's run: {listed}"
