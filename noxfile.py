"""Every tier, locally and in CI, the same way. Thin: the work lives in `tierharness/`."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import nox

# The checkout's own `tests` package: nox's console script puts no working folder on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from tests.plugin_selection import lean_addopts
from tests.projects import EXAMPLES, example_args

nox.needs_version = ">=2024.10.9"
nox.options.error_on_missing_interpreters = True
# uv fills an environment from the lockfiles in seconds (pip: a minute); plain venv + pip
# where uv is missing. Hash checking is the same either way.
nox.options.default_venv_backend = "uv|venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "tests"]

REQ = "requirements"
# The unit and integration tiers leave out the plugins only the e2e and performance tiers use.
LEAN_PYTEST = {"PYTEST_ADDOPTS": lean_addopts(os.environ.get("PYTEST_ADDOPTS", ""))}
# The sessions' environments are nox's own, so their modules are worth compiling once: with
# PYTHONDONTWRITEBYTECODE set (many container images and CI machines set it, this one among
# them), every process compiled every import from source again. Importing pytest took 0.65 s
# instead of 0.25, and the tests tier used 289 CPU-seconds instead of 252 (175 s -> 152 s).
# Bytecode goes to __pycache__ folders, which git and the image's build context ignore.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


# The lockfiles carry PyPI's hashes; the machine's own pip config may add local
# mirrors and constraints that would only get in the way.
# uv reads no pip configuration; it trusts the platform's certificate store, as pip does.
PIP_ENV = {"PIP_CONSTRAINT": "", "PIP_CONFIG_FILE": os.devnull, "UV_NATIVE_TLS": "1"}


def install(session: nox.Session, *lockfiles: str) -> None:
    """Pinned dependencies first, with hashes; then the harness itself with --no-deps."""
    requirements = [arg for name in lockfiles for arg in ("-r", f"{REQ}/{name}.txt")]
    session.install("--require-hashes", *requirements, env=PIP_ENV)
    session.install("--no-deps", "--no-build-isolation", "-e", ".", env=PIP_ENV)


def harness(session: nox.Session, command: str, *lockfiles: str) -> None:
    """One `python -m tierharness COMMAND` with the session's posargs, after the lockfiles
    (by default `harness`: what the commands need, without the test tiers' packages)."""
    install(session, *(lockfiles or ("harness",)))
    session.run("python", "-m", "tierharness", command, *session.posargs)


@nox.session(tags=["ci"])
def lint(session: nox.Session) -> None:
    """Ruff (lint and format) over everything; mypy (strict) over the harness and the service; the layers."""
    install(session, "test", "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    # mypy's cache in the machine's cache folder: a fresh clone checks in 0.4 s, not 8 s (mypy
    # checks each cached module against its source's hash, so no clone can be misled by another's).
    cache = session.run("python", "-m", "tierharness", "cache-dir", "mypy", silent=True)
    session.run("mypy", env={"MYPY_CACHE_DIR": str(cache).strip()})
    # The packages' layers ([tool.importlinter] in pyproject.toml): imports run downwards only.
    session.run("lint-imports")
    session.notify("docs")  # the docs site and its links are checked with the code


@nox.session
def docs(session: nox.Session) -> None:
    """The docs site, built with --strict into build/site: every relative link and anchor (README's too)."""
    # The hook renders the reference from the harness's own declarations: it imports them.
    install(session, "test", "docs")
    session.run("mkdocs", "build", "--strict", "--clean", "--site-dir", "build/site", *session.posargs)


@nox.session
def lock(session: nox.Session) -> None:
    """Recompile the lockfiles with hashes (`-- --images`: the images' packages.lock); `-- --check`."""
    # `--images` resolves packages through the harness's image code, which imports its
    # runtime dependencies (filelock, the docker SDK): those come with the test lockfile.
    harness(session, "lock", "test", "lint")


@nox.session
def clean(session: nox.Session) -> None:
    """`harness clean --prune`: killed runs' leftovers, stale build cache, pulls, old builds;
    `-- --keep-migrated` leaves the migrated images (.ci/run does: they are keyed by migrations);
    `-- --build-cache` prunes the build cache alone (.ci/run's last stage, beside running stacks)."""
    install(session, "harness")
    prune = () if "--build-cache" in session.posargs else ("--prune",)
    session.run("python", "-m", "tierharness", "clean", *prune, *session.posargs)


@nox.session
def images(session: nox.Session) -> None:
    """Make the logical images available: base, postgres, redis, haproxy, prometheus (`-- --rebuild`)."""
    harness(session, "images")


def _with_default_paths(posargs: list[str], defaults: tuple[str, ...]) -> tuple[list[str], bool]:
    """posargs plus the default test paths unless posargs name paths of their own."""
    named = [a for a in posargs if not a.startswith("-") and Path(a.split("::")[0]).exists()]
    return (list(posargs), False) if named else ([*posargs, *defaults], True)


def _shard(session: nox.Session, posargs: list[str]) -> tuple[list[str], list[str], str | None]:
    """`--shard K/N` taken out of posargs: the rest, pytest-split's arguments for it (the
    harness validates the spec), and the shard's name for its reports (or None)."""
    if "--shard" not in posargs:
        return posargs, [], None
    at = posargs.index("--shard")
    if at + 1 >= len(posargs):
        session.error("Usage: nox -s tests -- --shard K/N")
    out = session.run("python", "-m", "tierharness", "shard", posargs[at + 1], silent=True)
    shard = json.loads(str(out))
    rest = [*posargs[:at], *posargs[at + 2 :]]
    return rest, list(shard["pytest_args"]), str(shard["name"])


@nox.session(tags=["ci"])
def tests(session: nox.Session) -> None:
    """Unit and integration tiers under pytest-xdist, one Postgres and Redis per worker."""
    # The security canaries run the real tools; the distribution's tests build with pypa's build.
    install(session, "test", "security", "dist")
    # The workers' two, and the base that the integration tier's canaries build on.
    session.run("python", "-m", "tierharness", "images", "--quiet", "base", "postgres", "redis")
    posargs, shard_args, shard = _shard(session, session.posargs)
    paths, whole_tier = _with_default_paths(posargs, ("tests/unit", "tests/integration"))
    args = [*paths, *shard_args]
    junit = f"build/junit/tests-{shard}.xml" if shard else "build/junit/tests.xml"
    session.run("coverage", "erase")
    # worksteal: a worker that runs out takes pending tests from the other, where `load` left
    # one worker finishing a batch of long tests while the other idled.
    pytest = ("pytest", "-n", "auto", "--dist", "worksteal", f"--junitxml={junit}", *args)
    session.run("coverage", "run", "-m", *pytest, env=LEAN_PYTEST)
    session.run("coverage", "combine", "--quiet")
    if shard:
        # Kept apart from the parallel files `coverage combine` gathers; merge-reports joins them.
        Path("build/coverage/shards").mkdir(parents=True, exist_ok=True)
        shutil.copy2("build/coverage/.coverage", f"build/coverage/shards/.coverage.{shard}")
    else:
        session.run("coverage", "xml", "--quiet", "--fail-under=0", "-o", "build/coverage/coverage.xml")
        # The 80 % gate ([tool.coverage.report] fail_under) holds for the whole tiers, not a subset.
        session.run("coverage", "report", *(() if whole_tier else ("--fail-under=0",)))


@nox.session
def durations(session: nox.Session) -> None:
    """Refresh tests/durations.json, which balances the shards (pytest-split)."""
    install(session, "test", "security", "dist")  # as the tests session: its canaries run too
    session.run("python", "-m", "tierharness", "images", "--quiet", "base", "postgres", "redis")
    # The whole tiers replace the file; named paths only update their own tests' entries.
    whole = () if session.posargs else ("--clean-durations", "tests/unit", "tests/integration")
    session.run(
        "pytest", "-n", "auto", "--store-durations", "--durations-path", "tests/durations.json",
        *session.posargs, *whole, env=LEAN_PYTEST,
    )  # fmt: skip


@nox.session(name="root-tests")
def root_tests(session: nox.Session) -> None:
    """The tests that need root (a second engine, chown), which a user's run skips: as root."""
    install(session, "test")
    session.run("python", "-m", "tierharness", "images", "--quiet", "base", "postgres", "redis")
    session.run(
        "pytest", "-p", "no:cacheprovider", "-n", "0", "-m", "needs_root",
        "--junitxml=build/junit/root-tests.xml", *(session.posargs or ("tests/unit", "tests/integration")),
        env=LEAN_PYTEST,
    )  # fmt: skip


@nox.session(name="merge-reports", tags=["ci"])
def merge_reports(session: nox.Session) -> None:
    """Merge the shards' JUnit and coverage (build/junit, build/coverage/shards); gate the merged coverage."""
    harness(session, "merge-reports", "test")  # junitparser and coverage


def run_example(
    session: nox.Session, example: str, *args: str, workers: tuple[str, ...] = ("2", "0")
) -> None:
    """One adoption example, as its own project (its own rootdir and ini), at -n 2 and -n 0."""
    for count in workers:
        session.run("pytest", *example_args(example, count, *args), env=LEAN_PYTEST)


@nox.session
def example(session: nox.Session) -> None:
    """examples/inventory (SQLAlchemy + Alembic) and examples/django_app (Django, pytest-django)
    on the harness by configuration only, -n 2 and -n 0 (`-- examples/django_app`: that one)."""
    install(session, "test")
    chosen = [a.rstrip("/") for a in session.posargs if a.rstrip("/") in EXAMPLES] or list(EXAMPLES)
    rest = [a for a in session.posargs if a.rstrip("/") not in EXAMPLES]
    for name in chosen:
        run_example(session, name, *rest)


@nox.session(tags=["ci"])
def build(session: nox.Session) -> None:
    """Build the production image (unit tier inside it); writes build/image.json."""
    harness(session, "build")


@nox.session
def dist(session: nox.Session) -> None:
    """Wheel and sdist of HEAD into build/dist/, reproducibly (sha256 in dist.json); `-- --check`: twice."""
    # Frontend and backend from requirements/dist.txt; the build itself runs --no-isolation.
    harness(session, "dist", "dist")


@nox.session(tags=["ci"])
def e2e(session: nox.Session) -> None:
    """The built image beside its own Postgres and Redis, tested over HTTP."""
    install(session, "test")
    session.run("python", "-m", "tierharness", "build")
    # With verify-before-run on, the stack runs the published image from the registry.
    session.run("python", "-m", "tierharness", "publish", "--if-verifying")
    # Two workers, a file each at a time: each worker runs its own stack, which the tests of a
    # file share (and stop its Postgres); the rehearsals of one file share their folder.
    # `-- -n 0` runs them in one process.
    args, _ = _with_default_paths(session.posargs, ("tests/e2e",))
    session.run("pytest", "-n", "2", "--dist", "loadfile", "--junitxml=build/junit/e2e.xml", *args)


@nox.session(name="remote-engine")
def remote_engine(session: nox.Session) -> None:
    """A second dockerd on 127.0.0.1:RANDOM with TLS: an integration slice and `nox -s e2e` against it."""
    install(session, "test")
    # Pushed to the loopback registry, whence the remote engine resolves them.
    session.run("python", "-m", "tierharness", "images", "--quiet", "base", "postgres", "redis", "registry")
    session.run(
        "pytest", "-p", "no:cacheprovider", "-s", "--junitxml=build/junit/remote-engine.xml",
        *(session.posargs or ("tests/remote",)),
    )  # fmt: skip


@nox.session
def publish(session: nox.Session) -> None:
    """Push the built image to a loopback registry by digest; sign it, attach its SBOM and provenance."""
    install(session, "test")
    session.run("python", "-m", "tierharness", "keys", "--if-missing")
    session.run("python", "-m", "tierharness", "publish", *session.posargs)


@nox.session(name="repro-check", tags=["ci"])
def repro_check(session: nox.Session) -> None:
    """Build the image twice from clean, varied; fail and explain when the digests differ."""
    harness(session, "repro-check")


@nox.session(tags=["ci"])
def perf(session: nox.Session) -> None:
    """Locust against the running stack; fails when a threshold is breached (`-- --p95-ms N`)."""
    harness(session, "perf")


@nox.session(tags=["ci"])
def security(session: nox.Session) -> None:
    """Security gates: source, lockfiles, Dockerfiles, shell, workflows, the built image, SBOM."""
    install(session, "harness", "security")
    session.run("python", "-m", "tierharness", "build")  # reused when nothing that goes into it changed
    session.run("python", "-m", "tierharness", "security", *session.posargs)


@nox.session
def gates(session: nox.Session) -> None:
    """Every quality gate on one page (build/gates.md), and the report around them (build/report/)."""
    # It only reads reports, with the standard library, from the checkout; the report's plots
    # need matplotlib alone, from its own lockfile (without it gates.md is the same, unplotted).
    session.install("--require-hashes", "-r", f"{REQ}/report.txt", env=PIP_ENV)
    session.run("python", "-m", "tierharness", "gates", *session.posargs)


@nox.session(tags=["ci"])
def deploy(session: nox.Session) -> None:
    """Blue-green rehearsal behind HAProxy under load; `-- --candidate broken --expect-rollback`."""
    harness(session, "deploy")


@nox.session(name="perf-gate", tags=["ci"])
def perf_gate(session: nox.Session) -> None:
    """Prove the perf gate fails on breaches: latency, errors, an impossible p95, a slowed knee."""
    install(session, "harness")  # its tests import pytest, Locust, filelock and the harness
    # One at a time: two Locust runs of 4 s side by side can miss their request floor.
    session.run("pytest", "-p", "no:xdist", "--junitxml=build/junit/perf-gate.xml", "tests/performance")


@nox.session(name="rehearse-workflow")
def rehearse_workflow(session: nox.Session) -> None:
    """As root: each job of .github/workflows/ci.yml as a hosted runner's non-root user runs it."""
    install(session, "test")  # PyYAML, to read the workflow
    session.run("python", "scripts/rehearse_workflow.py", *session.posargs)
