"""The set-up on a distribution's stock Python: `bash scripts/bootstrap.sh` with the system's
own /usr/bin/python3 (Debian 12's 3.11.2, Ubuntu 24.04's 3.12; both PEP 668: no `pip install`
outside a venv) gives a working
`.venv/bin/nox`, and the lockfiles install with --require-hashes on that interpreter, by
the uv the bootstrap installs (`requirements/nox.txt`), which is what nox's sessions install
them with.

The engine step is switched off (HARNESS_BOOTSTRAP_ENGINE=0): the engine is already up,
and provisioning it is scripts/provision-docker.sh's job, not this test's; so is the browser
step (HARNESS_BOOTSTRAP_BROWSER=0), which the report's own test needs.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tierharness.config import child_env, machine_cache, pip_child_env
from tierharness.gitrepo import snapshot
from tierharness.imaging.lockfiles import parse_lockfile
from tierharness.process import run

DEBIAN_PYTHON = Path("/usr/bin/python3")
BOOTSTRAP_TIMEOUT = 300.0  # a cold pip cache; a warm one takes a few seconds
INSTALL_TIMEOUT = 300.0


def _debian_python() -> Path:
    """Debian's /usr/bin/python3, installed with apt-get when it is missing and we may."""
    if DEBIAN_PYTHON.exists():
        return DEBIAN_PYTHON
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip(f"{DEBIAN_PYTHON} is absent and cannot be installed here (needs root and apt-get)")
    env = child_env({"DEBIAN_FRONTEND": "noninteractive"})
    fix = "install python3 and python3-venv with apt-get"
    for argv in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "python3", "python3-venv"],
    ):
        proc = run(argv, env=env, what=" ".join(argv), fix=fix, check=False, timeout=INSTALL_TIMEOUT)
        if proc.returncode != 0:
            pytest.skip(f"{DEBIAN_PYTHON} is absent and `{' '.join(argv)}` failed: {proc.stderr[-500:]}")
    return DEBIAN_PYTHON


def _facts(python: Path) -> tuple[str, str, str]:
    """(version, base prefix, stdlib folder) as that interpreter reports them: nothing about
    the system's Python is assumed, so the same test holds on Debian 12 and on Ubuntu 24.04."""
    script = (
        "import sys, sysconfig; print(sys.version.split()[0], sys.base_prefix, sysconfig.get_path('stdlib'))"
    )
    out = run(
        [str(python), "-c", script], what=f"{python}'s version and paths", fix=f"check that {python} runs"
    ).stdout.split()
    return out[0], out[1], out[2]


def _bootstrap(tree: Path, python: Path, cache: Path | None = None) -> subprocess.CompletedProcess[str]:
    settings = {
        "HARNESS_PYTHON": str(python),
        "HARNESS_BOOTSTRAP_ENGINE": "0",
        "HARNESS_BOOTSTRAP_BROWSER": "0",
    }
    return run(
        ["bash", "scripts/bootstrap.sh"],
        cwd=tree,
        env=child_env({**settings, **({"HARNESS_CACHE_DIR": str(cache)} if cache else {})}),
        what="bash scripts/bootstrap.sh with Debian's python3",
        fix="see the script's own error lines above",
        timeout=BOOTSTRAP_TIMEOUT,
    )


def _uv(project_root: Path) -> Path:
    """The uv of the checkout's .venv (the bootstrap's, pinned by requirements/nox.txt)."""
    uv = project_root / ".venv/bin/uv"
    if not uv.is_file():
        pytest.skip(f"{uv} is missing: run `bash scripts/bootstrap.sh` first")
    return uv


def _install(project_root: Path, venv_python: Path, lockfile: Path) -> subprocess.CompletedProcess[str]:
    """`lockfile` installed with --require-hashes into that venv, as a nox session installs it:
    every dependency must be pinned (with its markers evaluated on that interpreter) and every
    file must match its hash. The machine's pip configuration is off: PyPI's hashes."""
    return run(
        [str(_uv(project_root)), "pip", "install", "--quiet", "--require-hashes",
         "--python", str(venv_python), "--requirement", str(lockfile)],
        env=pip_child_env({"UV_NATIVE_TLS": "1"}),
        what=f"uv pip install --require-hashes -r {lockfile.name}",
        fix="see uv's error",
        check=False,
        timeout=INSTALL_TIMEOUT,
    )  # fmt: skip


def _debian_venv(debian_python: Path, where: Path) -> Path:
    """The python of a new venv made by Debian's python3 (uv needs no pip in it)."""
    run([str(debian_python), "-m", "venv", "--without-pip", str(where)], what="a venv of Debian's python3",
        fix="apt-get install python3-venv")  # fmt: skip
    return where / "bin/python"


@pytest.fixture(scope="module")
def debian_python() -> Path:
    return _debian_python()


def test_bootstrap_gives_nox_in_a_venv_of_debians_python(
    tmp_path: Path, project_root: Path, debian_python: Path
) -> None:
    tree = snapshot(project_root, tmp_path / "repo")
    # A cache of its own, with the wheels this machine's bootstrap kept (if any: else all are
    # fetched), but nox's overwritten: a kept wheel that does not match the lockfile's hash is
    # refused, and fetched again.
    cache = tmp_path / "machine-cache"
    if (kept_here := machine_cache("bootstrap-wheels")).is_dir():
        shutil.copytree(kept_here, cache / "bootstrap-wheels")
    (pin,) = [p for p in parse_lockfile(tree / "requirements/nox.txt") if p.name == "nox"]
    for kept in (cache / "bootstrap-wheels").glob(f"nox-{pin.version}-*.whl"):
        kept.write_bytes(b"not the wheel the lockfile pins")
    proc = _bootstrap(tree, debian_python, cache)
    assert proc.stdout.strip().splitlines()[-1] == ".venv/bin/nox -s tests", proc.stdout + proc.stderr
    assert "fetching nox's wheels" in proc.stderr, proc.stderr
    (kept,) = (cache / "bootstrap-wheels").glob(f"nox-{pin.version}-*.whl")
    assert hashlib.sha256(kept.read_bytes()).hexdigest() in pin.hashes
    nox = run([str(tree / ".venv/bin/nox"), "--version"], what="nox --version", fix="rerun the bootstrap")
    assert (nox.stdout + nox.stderr).strip()[:1].isdigit(), nox.stdout + nox.stderr

    probe = run(
        [str(tree / ".venv/bin/python"), "-c",
         "import sys, sysconfig; print(sys.version.split()[0], sys.base_prefix, sys.prefix, "
         "sysconfig.get_path('stdlib'))"],
        what="the venv's interpreter", fix="rerun the bootstrap",
    ).stdout.split()  # fmt: skip
    version, base_prefix, prefix, stdlib = probe
    system_version, system_prefix, system_stdlib = _facts(debian_python)
    assert (version, base_prefix, stdlib) == (system_version, system_prefix, system_stdlib), (
        f"not made by {debian_python}: {probe}"
    )
    assert Path(prefix).resolve() == (tree / ".venv").resolve()
    # The point of the test: the system's interpreter refuses `pip install` outside a venv
    # (PEP 668), as Debian's and Ubuntu's do; one that does not proves nothing here.
    marker = Path(system_stdlib) / "EXTERNALLY-MANAGED"
    assert marker.is_file(), f"{debian_python} ({system_version}) is not externally managed: no {marker}"

    # Idempotent: a second run keeps the venv, installs from the kept wheels (all of them good
    # now: nothing fetched), and ends the same way.
    again = _bootstrap(tree, debian_python, cache)
    assert "reusing .venv" in again.stderr, again.stderr
    assert "fetching" not in again.stderr, again.stderr
    assert again.stdout.strip().splitlines()[-1] == ".venv/bin/nox -s tests"


def test_test_lockfile_installs_with_hashes_on_debians_python(
    debian_python: Path, project_root: Path, tmp_path: Path
) -> None:
    """The check that failed before async-timeout was pinned: redis asks for it below 3.11.3."""
    venv = _debian_venv(debian_python, tmp_path / "venv")
    proc = _install(project_root, venv, project_root / "requirements/test.txt")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run([str(venv), "-c", "import async_timeout, fastapi, redis, testcontainers"],
        what="the installed packages, imported on Debian's python", fix="see the import error")  # fmt: skip


def test_the_check_fails_on_a_lockfile_missing_a_marker_dependency(
    debian_python: Path, project_root: Path, tmp_path: Path
) -> None:
    """The same check can fail: redis alone, hashed as test.txt pins it, without the
    async-timeout it needs below Python 3.11.3 (what test.txt looked like when compiled on 3.11.7)."""
    version = tuple(int(part) for part in _facts(debian_python)[0].split(".")[:3])
    if version >= (3, 11, 3):
        pytest.skip(f"{debian_python} is {version}: redis asks for async-timeout only below 3.11.3")
    (redis,) = [p for p in parse_lockfile(project_root / "requirements/test.txt") if p.name == "redis"]
    lockfile = tmp_path / "redis-only.txt"
    hashes = " ".join(f"--hash=sha256:{h}" for h in redis.hashes)
    lockfile.write_text(f"redis=={redis.version} {hashes}\n", encoding="utf-8")
    proc = _install(project_root, _debian_venv(debian_python, tmp_path / "venv"), lockfile)
    assert proc.returncode != 0, f"redis=={redis.version} no longer needs async-timeout on 3.11.2?"
    assert "async-timeout" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


@pytest.mark.parametrize("value", ["0", "yes"])
def test_without_its_venv_step_the_bootstrap_makes_no_venv(
    project_root: Path, tmp_path: Path, value: str
) -> None:
    """HARNESS_BOOTSTRAP_VENV=0 (root on a CI machine, before its user's set-up) stops before
    .venv; any other value than 0 or 1 is refused before anything is done."""
    tree = snapshot(project_root, tmp_path / "repo")
    settings = {
        "HARNESS_BOOTSTRAP_ENGINE": "0",
        "HARNESS_BOOTSTRAP_BROWSER": "0",
        "HARNESS_BOOTSTRAP_VENV": value,
    }
    proc = subprocess.run(["bash", "scripts/bootstrap.sh"], cwd=tree, env=child_env(settings),
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert not (tree / ".venv").exists()
    if value == "0":
        assert proc.returncode == 0, proc.stderr
        assert "skipping .venv and nox (HARNESS_BOOTSTRAP_VENV=0)" in proc.stderr
    else:
        assert proc.returncode != 0
        assert f"HARNESS_BOOTSTRAP_VENV={value} is neither 0 nor 1" in proc.stderr
        assert "skipping the Docker engine step" not in proc.stderr  # refused before the first step
