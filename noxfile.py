"""Every tier, locally and in CI, the same way. Thin: the work lives in `harness/`."""

from __future__ import annotations

import os
from pathlib import Path

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


def harness(session: nox.Session, command: str, *lockfiles: str) -> None:
    """One `python -m harness COMMAND` with the session's posargs, after the lockfiles."""
    install(session, *(lockfiles or ("test",)))
    session.run("python", "-m", "harness", command, *session.posargs)


@nox.session(tags=["ci"])
def lint(session: nox.Session) -> None:
    """Ruff (lint and format) over everything; mypy (strict) over the harness and the service."""
    install(session, "test", "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")


@nox.session
def lock(session: nox.Session) -> None:
    """Recompile the lockfiles with hashes; `-- --check` fails on a stale one."""
    harness(session, "lock", "lint")


@nox.session
def images(session: nox.Session) -> None:
    """Make the logical images available: base, postgres, redis, haproxy, prometheus (`-- --rebuild`)."""
    harness(session, "images")


def _with_default_paths(posargs: list[str], defaults: tuple[str, ...]) -> tuple[list[str], bool]:
    """posargs plus the default test paths unless posargs name paths of their own."""
    named = [a for a in posargs if not a.startswith("-") and Path(a.split("::")[0]).exists()]
    return (list(posargs), False) if named else ([*posargs, *defaults], True)


@nox.session(tags=["ci"])
def tests(session: nox.Session) -> None:
    """Unit and integration tiers under pytest-xdist, one Postgres and Redis per worker."""
    install(session, "test")
    session.run("python", "-m", "harness", "images", "--quiet", "postgres", "redis")
    args, whole_tier = _with_default_paths(session.posargs, ("tests/unit", "tests/integration"))
    session.run("coverage", "erase")
    session.run("coverage", "run", "-m", "pytest", "-n", "auto", "--junitxml=build/junit/tests.xml", *args)
    session.run("coverage", "combine", "--quiet")
    session.run("coverage", "xml", "--quiet", "--fail-under=0", "-o", "build/coverage/coverage.xml")
    # The 80 % gate ([tool.coverage.report] fail_under) holds for the whole tiers, not a subset.
    session.run("coverage", "report", *(() if whole_tier else ("--fail-under=0",)))
    if whole_tier:
        run_example(session)  # in the same environment: a project that adopts the harness


EXAMPLE = "examples/inventory"


def run_example(session: nox.Session, *args: str) -> None:
    """The adoption example, as its own project (its own rootdir and ini), at -n 2 and -n 0."""
    common = ("-p", "no:cacheprovider", "--rootdir", EXAMPLE, "-c", f"{EXAMPLE}/pyproject.toml", *args)
    for workers in ("2", "0"):
        session.run("pytest", "-n", workers, *common, f"{EXAMPLE}/tests")


@nox.session
def example(session: nox.Session) -> None:
    """examples/inventory (SQLAlchemy + Alembic) on the harness by configuration only, -n 2 and -n 0."""
    install(session, "test")
    run_example(session, *session.posargs)


@nox.session(tags=["ci"])
def build(session: nox.Session) -> None:
    """Build the production image (unit tier inside it); writes build/image.json."""
    harness(session, "build")


@nox.session(tags=["ci"])
def e2e(session: nox.Session) -> None:
    """The built image beside its own Postgres and Redis, tested over HTTP."""
    install(session, "test")
    session.run("python", "-m", "harness", "build")
    # One stack for the tier: the tests share it (and stop its Postgres), so no xdist.
    session.run(
        "pytest", "-p", "no:xdist", "--junitxml=build/junit/e2e.xml", *(session.posargs or ("tests/e2e",))
    )


@nox.session(name="repro-check", tags=["ci"])
def repro_check(session: nox.Session) -> None:
    """Build the image twice from clean, varied; fail and explain when the digests differ."""
    harness(session, "repro-check")


@nox.session(tags=["ci"])
def perf(session: nox.Session) -> None:
    """Locust against the running stack; fails when a threshold is breached (`-- --p95-ms N`)."""
    harness(session, "perf")


@nox.session(tags=["ci"])
def deploy(session: nox.Session) -> None:
    """Blue-green rehearsal behind HAProxy under load; `-- --candidate broken --expect-rollback`."""
    harness(session, "deploy")


@nox.session(name="perf-gate", tags=["ci"])
def perf_gate(session: nox.Session) -> None:
    """Prove the perf gate fails on breaches: latency, errors, an impossible p95."""
    install(session, "test")
    session.run("pytest", "-p", "no:xdist", "--junitxml=build/junit/perf-gate.xml", "tests/performance")
