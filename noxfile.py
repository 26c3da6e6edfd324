"""Every tier, locally and in CI, the same way. Thin: the work lives in `harness/`."""

from __future__ import annotations

import os

import nox

nox.needs_version = ">=2024.10.9"
nox.options.error_on_missing_interpreters = True
nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "tests"]

REQ = "requirements"


def install(session: nox.Session, *lockfiles: str) -> None:
    """Pinned dependencies first, with hashes; then the harness itself with --no-deps."""
    # The lockfiles carry PyPI's hashes; the machine's own pip config may add local
    # mirrors and constraints that would only get in the way.
    env = {"PIP_CONSTRAINT": "", "PIP_CONFIG_FILE": os.devnull}
    for name in lockfiles:
        session.install("--require-hashes", "-r", f"{REQ}/{name}.txt", env=env)
    session.install("--no-deps", "--no-build-isolation", "-e", ".", env=env)


@nox.session(tags=["ci"])
def lint(session: nox.Session) -> None:
    """Ruff and mypy over the harness, the service and the tests."""
    install(session, "test", "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")


@nox.session
def lock(session: nox.Session) -> None:
    """Recompile the lockfiles with hashes; `-- --check` fails on a stale one."""
    install(session, "lint")
    session.run("python", "-m", "harness", "lock", *session.posargs)


@nox.session
def images(session: nox.Session) -> None:
    """Make the base, postgres and redis images available (`-- --rebuild` from scratch)."""
    install(session, "test")
    session.run("python", "-m", "harness", "images", *session.posargs)


@nox.session(tags=["ci"])
def tests(session: nox.Session) -> None:
    """Unit and integration tiers under pytest-xdist, one Postgres and Redis per worker."""
    install(session, "test")
    session.run("python", "-m", "harness", "images", "--quiet", "postgres", "redis")
    session.run("coverage", "erase")
    session.run(
        "coverage", "run", "-m", "pytest", "-n", "auto", "--junitxml=build/junit/tests.xml",
        *(session.posargs or ("tests/unit", "tests/integration")),
    )  # fmt: skip
    session.run("coverage", "combine", "--quiet")
    session.run("coverage", "xml", "--quiet", "--fail-under=0", "-o", "build/coverage/coverage.xml")
    session.run("coverage", "report")  # the 80 % gate: [tool.coverage.report] fail_under
