"""The pytest plugin costs nothing when unused: a run that asks for no harness fixture (and has
no early provisioning) starts no process, no thread and no container, writes no file, and does
not import what only provisioning needs, in the one process of `-n 0` and in the controller and
each worker of `-n 2`. Measured against the same run with `-p no:harness`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tierharness.engine.labels import LABEL_RUN

# Recorded by the suite's own conftest at the session's end, one file per process (the xdist
# controller and each worker): what the process holds then.
CONFTEST = """
import json, os, sys, threading
from pathlib import Path

WATCHED = ("docker", "testcontainers", "psycopg", "redis", "filelock")
WATCHED_HARNESS = ("tierharness.engine.client", "tierharness.engine.reaper", "tierharness.runtime.worker",
    "tierharness.runtime.manifest", "tierharness.plugin.provisioning", "tierharness.config.settings")


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
        "pid": os.getpid(),
        "threads": threading.active_count(),
        "children": _children(os.getpid()),
        "modules": sorted(m for m in sys.modules if m.split(".")[0] in WATCHED or m in WATCHED_HARNESS),
    }
    who = os.environ.get("PYTEST_XDIST_WORKER", "controller")
    Path(os.environ["RECORD"], who + ".json").write_text(json.dumps(record))
"""


def _run(where: Path, record: Path, run_id: str, workers: int, *extra: str) -> dict[str, dict[str, Any]]:
    """Each process's record, by "controller" or the xdist worker's id."""
    record.mkdir()
    # PYTEST_ADDOPTS stays: under `nox -s tests` it leaves out the plugins no tier here uses,
    # which cost each of these processes about a second and a half of imports.
    inherited = {
        k: v
        for k, v in os.environ.items()
        if k == "PYTEST_ADDOPTS" or not k.startswith(("HARNESS_", "PYTEST_"))
    }
    env = {
        **inherited,
        "HARNESS_RUN_ID": run_id,
        "HARNESS_STATE_DIR": str(where / "state"),
        "RECORD": str(record),
    }
    argv = [sys.executable, "-m", "pytest", "-q", "-n", str(workers), "-p", "no:cacheprovider", *extra]
    proc = subprocess.run(argv, cwd=where, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {f.stem: json.loads(f.read_text()) for f in record.glob("*.json")}


def _files(where: Path) -> set[str]:
    return {str(p.relative_to(where)) for p in where.rglob("*") if "__pycache__" not in p.parts}


@pytest.mark.parametrize("workers", [0, 2])
def test_an_unused_plugin_starts_and_writes_nothing(tmp_path: Path, workers: int) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "pyproject.toml").write_text('[project]\nname = "trivial"\nversion = "0"\n')
    (suite / "conftest.py").write_text(CONFTEST)
    (suite / "test_trivial.py").write_text(
        "".join(f"def test_{i}():\n    assert {i} == {i}\n\n" for i in range(4))
    )
    before = _files(suite)
    run_id = f"unused-{uuid.uuid4().hex[:8]}"

    without = _run(suite, tmp_path / "without", run_id, workers, "-p", "no:harness")
    with_plugin = _run(suite, tmp_path / "with", run_id, workers)

    processes = ["controller"] + [f"gw{i}" for i in range(workers)]
    assert sorted(with_plugin) == sorted(without) == sorted(processes)
    # The controller's children are its xdist workers, whose pids they recorded themselves.
    workers_pids = {with_plugin[name]["pid"] for name in processes[1:]}
    for name in processes:
        record = with_plugin[name]
        started = set(record["children"]) - (workers_pids if name == "controller" else set())
        assert not started, f"the unused plugin started a process in {name}: {sorted(started)}"
        assert record["threads"] == without[name]["threads"], f"the unused plugin started a thread in {name}"
        assert record["modules"] == [], f"the unused plugin imported what only provisioning needs in {name}"
    assert _files(suite) == before, "the unused plugin wrote a file"
    listed = subprocess.run(
        ["docker", "ps", "-a", "-q", "--filter", f"label={LABEL_RUN}={run_id}"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert listed == "", f"containers of the unused plugin's run: {listed}"


def test_the_guard_before_the_projects_commands_imports_no_engine_client(tmp_path: Path) -> None:
    """With harness_migrate set, the process that runs the guard (an xdist controller, which
    starts no container) reads the worker's mapping without importing the docker SDK or
    testcontainers: they cost it a CPU-second of start-up, before any worker starts."""
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "pyproject.toml").write_text(
        '[project]\nname = "guarded"\nversion = "0"\n\n'
        '[tool.pytest.ini_options]\nharness_migrate = "python -c pass"\n'
    )
    (suite / "conftest.py").write_text(CONFTEST)
    (suite / "test_trivial.py").write_text("def test_one():\n    assert 1 == 1\n")
    records = _run(suite, tmp_path / "guarded", f"guarded-{uuid.uuid4().hex[:8]}", 2)
    assert set(records) == {"controller", "gw0", "gw1"}
    for who, record in records.items():
        heavy = [m for m in record["modules"] if m.split(".")[0] in ("docker", "testcontainers")]
        assert not heavy, (who, heavy)
        assert "tierharness.runtime.worker" not in record["modules"], who
