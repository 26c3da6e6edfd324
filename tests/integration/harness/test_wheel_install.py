"""The built wheel works on its own: installed as README's adoption step says (a fresh venv,
requirements/example.txt with --require-hashes, then the wheel with --no-deps), never editable
and with no checkout on sys.path, it runs examples/inventory's suite at -n 2, each worker with
its own Postgres from the recipes the wheel ships.

The wheel is built from HEAD (as `nox -s dist` builds it): uncommitted changes are not tested
here. The pinned wheels come from the machine's wheel cache (tierharness.imaging.wheelhouse):
the first run on a machine downloads them, the next ones install offline."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tierharness.config import child_env, machine_cache, pip_child_env
from tierharness.distribution import build_dists
from tierharness.engine.client import engine_client
from tierharness.engine.labels import LABEL_RUN
from tierharness.engine.reaper import containers_of, remove_labelled
from tierharness.gitrepo import source_date_epoch
from tierharness.imaging.wheelhouse import fill_wheelhouse, manylinux_platforms
from tierharness.process import run

# pip and the builds are other projects' code; the example runs in a venv without coverage.
pytestmark = pytest.mark.usefixtures("untraced_children")

EXAMPLE = "examples/inventory"
LOCKFILE = "requirements/example.txt"
SUITE_TIMEOUT = 300.0


def _host_platforms() -> list[str]:
    """This machine's wheel platforms, for the wheelhouse (which defaults to the image's)."""
    libc, version = platform.libc_ver()
    if libc != "glibc":
        pytest.skip(f"the wheelhouse knows manylinux (glibc) platforms only, not {libc or 'this libc'}")
    major, minor = (int(part) for part in version.split(".")[:2])
    return manylinux_platforms((major, minor))


def _as_a_user(venv: Path, project_root: Path, run_id: str) -> dict[str, str]:
    """The environment of someone who activated the venv: nothing of this checkout (its
    virtualenvs on PATH, the tests session's settings) and nothing of this run's workers."""
    path = [str(venv / "bin")] + [
        p
        for p in os.environ.get("PATH", "").split(os.pathsep)
        if p and not Path(p).is_relative_to(project_root)
    ]
    drop = ("PYTHONPATH", "PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER", "COV_CORE_SOURCE", "HARNESS_CONTROLLER",
            "HARNESS_PROJECT_ROOT", "HARNESS_STATE_DIR", "HARNESS_BUILD_DIR", "PGHOST", "PGPORT", "PGUSER",
            "PGPASSWORD", "PGDATABASE", "DATABASE_URL", "REDIS_URL")  # fmt: skip
    extra = {"PATH": os.pathsep.join(path), "VIRTUAL_ENV": str(venv), "HARNESS_RUN_ID": run_id}
    return child_env(extra, drop=drop)


@pytest.fixture
def run_id() -> Iterator[str]:
    run_id = f"wheel-{uuid.uuid4().hex[:8]}"
    yield run_id
    remove_labelled(engine_client(), {"label": [f"{LABEL_RUN}={run_id}"]})


def test_the_built_wheel_runs_the_example_suite_from_a_fresh_venv(
    project_root: Path, tmp_path: Path, run_id: str
) -> None:
    wheel, _ = build_dists(
        project_root, tmp_path / "dist", revision="HEAD", source_date_epoch=source_date_epoch(project_root)
    )
    lockfile = project_root / LOCKFILE
    wheels = fill_wheelhouse(
        [lockfile], tmp_path / "wheels", python_version=f"{sys.version_info.major}.{sys.version_info.minor}",
        platforms=_host_platforms(), cache=machine_cache("wheels"),
    )  # fmt: skip

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], what="python -m venv", fix="see above")
    python = venv / "bin" / "python"
    # This environment's pip installs into the venv (--python): the venv needs no pip of its own.
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-index"]
    run(
        [*pip, "--find-links", str(wheels), "--require-hashes", "--requirement", str(lockfile)],
        env=pip_child_env(), what=f"installing {LOCKFILE} into a fresh venv", fix="see pip's error",
    )  # fmt: skip
    run(
        [*pip, "--no-deps", str(wheel.path)],
        env=pip_child_env(),
        what="installing the wheel",
        fix="see above",
    )

    # Without the checkout's state folder: test_examples.py may be running the example in it.
    skipped = shutil.ignore_patterns("__pycache__", ".pytest_cache", ".harness")
    example = shutil.copytree(project_root / EXAMPLE, tmp_path / "inventory", ignore=skipped)
    env = _as_a_user(venv, project_root, run_id)
    code = "import sysconfig, tierharness; print(tierharness.__file__, sysconfig.get_paths()['purelib'])"
    where = run(
        [str(python), "-c", code], cwd=example, env=env, what="importing tierharness", fix="see above"
    )
    module, purelib = (Path(p) for p in where.stdout.split())
    assert module.is_relative_to(purelib), f"tierharness imported from {module}, not the venv's {purelib}"
    assert not module.is_relative_to(project_root)

    proc = subprocess.run(
        [str(python), "-m", "pytest", "-n", "2", "-p", "no:cacheprovider"],
        cwd=example, env=env, capture_output=True, text=True, timeout=SUITE_TIMEOUT, check=False,
    )  # fmt: skip
    output = proc.stdout[-6000:] + proc.stderr[-3000:]
    assert proc.returncode == 0, output
    assert re.search(r"\b\d+ passed\b", proc.stdout), output
    assert "created: 2/2 workers" in proc.stdout, output
    assert containers_of(engine_client(), run_id) == []  # the run removed its own Postgres
