"""The adoption examples pass as their own projects: each with its own rootdir and ini, the
command `nox -s example` runs, in this environment. They run here, inside the tier, rather
than after it: at -n 2 the other worker goes on while one waits for an example's run.

examples/inventory runs at -n 0 only: at -n 2 it runs from the built wheel, in a venv of its
own (test_wheel_install.py). examples/django_app runs at -n 2, its workers starting from the
migrated image, then in one process; one test, so its two runs never share its state folder."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.projects import example_args, project_env
from tierharness.engine.client import engine_client
from tierharness.engine.labels import LABEL_RUN
from tierharness.engine.reaper import containers_of, remove_labelled

# As before they ran here, the examples' runs are not measured: the plugin's code they run is
# the workers' too, and coverage would cost each of their processes its start-up.
pytestmark = pytest.mark.usefixtures("untraced_children")

SUITE_TIMEOUT = 300.0


def _run_example(project_root: Path, example: str, workers: str) -> str:
    """pytest on EXAMPLE at -n WORKERS, as `nox -s example` runs it; its output. It must pass,
    and leave none of its containers behind."""
    run_id = f"example-{uuid.uuid4().hex[:8]}"
    env = project_env(run_id)
    cmd = [sys.executable, "-m", "pytest", *example_args(example, workers)]
    try:
        proc = subprocess.run(
            cmd, cwd=project_root, env=env, capture_output=True, text=True, timeout=SUITE_TIMEOUT, check=False
        )
        output = proc.stdout[-6000:] + proc.stderr[-3000:]
        assert proc.returncode == 0, f"{' '.join(cmd)}\n{output}"
        assert re.search(r"\b\d+ passed\b", proc.stdout), output
        assert containers_of(engine_client(), run_id) == [], f"{example} left containers\n{output}"
        return proc.stdout
    finally:
        remove_labelled(engine_client(), {"label": [f"{LABEL_RUN}={run_id}"]})


def test_inventory_passes_in_one_process(project_root: Path) -> None:
    _run_example(project_root, "examples/inventory", "0")


def test_django_app_passes_at_two_workers_and_in_one_process(project_root: Path) -> None:
    out = _run_example(project_root, "examples/django_app", "2")
    assert "created: 2/2 workers" in out, out
    _run_example(project_root, "examples/django_app", "0")
