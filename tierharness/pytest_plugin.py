"""The pytest plugin: each xdist worker (or a run without xdist) gets its own Postgres (and
Redis) container, migrated once, reset before every test that asks for it.

Registered through the `pytest11` entry point. Fixtures are built by factories
(`services_fixture`, `clean_fixture`, `stack_fixture`); the default ones are created at
the bottom. Every setting is both a command-line option and an ini key (see README).

Two ways to provision, one code path (`tierharness.runtime.worker`):
- lazy (default): the first fixture that asks starts the worker's services;
- early (`harness_provision = early`): each worker starts them before conftests and test
  modules are imported, and exports the environment mapping into its own environment, so a
  project that reads its settings at import time sees the worker's database.
Nothing is started, no reaper runs and no state is written until one of them happens.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pytest

from tierharness.config import environment, withhold_secrets
from tierharness.errors import HarnessError
from tierharness.runtime.labels import RunIdentity, new_run_id

if TYPE_CHECKING:
    from tierharness.config import Settings
    from tierharness.runtime.containers import PostgresInfo, RedisInfo
    from tierharness.runtime.reset import StateReset
    from tierharness.runtime.stack import Stack
    from tierharness.runtime.worker import Worker, WorkerPlan

__all__ = ["HarnessServices", "clean_fixture", "services_fixture", "stack_fixture"]

Scope = Literal["session", "package", "module", "class", "function"]

_RUN_ID = pytest.StashKey[str]()
_OWNER_PID = pytest.StashKey[int]()
_STARTED = pytest.StashKey[str]()
_SUMMARY = pytest.StashKey[str]()
_EARLY = pytest.StashKey["Worker | HarnessError"]()
_FAILURES = pytest.StashKey[dict[str, list[str]]]()

# Handed from the controller to its xdist workers (their parent) through the environment:
# early provisioning runs before xdist gives a worker anything else.
_CONTROLLER_VAR = "HARNESS_CONTROLLER"
_MIGRATION_TABLES = "alembic_version,django_migrations,schema_migrations"

# (name, help, default); each is --harness-<name> and ini harness_<name>.
_SETTINGS: list[tuple[str, str, str | None]] = [
    ("postgres-image", "image for the per-worker Postgres (default: the `postgres` logical image)", None),
    ("redis-image", "image for the per-worker Redis (default: the `redis` logical image)", None),
    ("services", "which services each worker gets: postgres,redis or postgres", "postgres,redis"),
    ("provision", "when: lazy (the first fixture) or early (before conftests are imported)", "lazy"),
    ("env", "extra VAR=template lines exported for the worker (see [tool.harness.test-env])", None),
    (
        "env-ignore",
        "variables the project reads that look like database settings but do not choose a database "
        "(DB_POOL_SIZE): names separated by spaces, commas or lines; the guard before harness_migrate "
        "and harness_seed leaves them alone",
        None,
    ),
    ("migrate", "command applying the project's migrations, run with the worker's environment", None),
    ("seed", "command run after the migrations, before the snapshot", None),
    ("seed-fixture", "session fixture evaluated before the snapshot is taken", None),
    ("keep-tables", "comma-separated tables a reset leaves alone", _MIGRATION_TABLES),
    ("reset", "how a test's database is reset: deletion, truncation or snapshot", "deletion"),
    ("reset-scope", "how often harness_clean resets: function, module or session", "function"),
    ("autoclean", "give every test harness_clean (1/0)", "0"),
    ("reuse", "keep each worker's containers for the next local run (1/0; never in CI)", "0"),
    (
        "network",
        "how tests reach the worker's services: auto (the engine's host network when the engine runs "
        "on this machine, else ports published on loopback), host or bridge",
        "auto",
    ),
    ("state-dir", "where run manifests are written", ".harness"),
    ("image", "image the stack fixture runs (default: the one recorded in build/image.json)", None),
    ("reaper", "start the reaper that removes this run's containers if the run is killed (1/0)", "1"),
]
_FLAGS = {"reuse"}  # also plain flags on the command line: --harness-reuse
# Lists: an ini string's lines or a TOML list, as pytest's "linelist" (a TOML list given to a
# string option is deprecated by pytest).
_LISTS = {"env-ignore"}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "per-worker Postgres and Redis containers")
    for name, help_text, default in _SETTINGS:
        key = name.replace("-", "_")
        if name in _FLAGS:
            group.addoption(
                f"--harness-{name}", dest=f"harness_{key}", action="store_const", const="1", help=help_text
            )
        else:
            group.addoption(f"--harness-{name}", dest=f"harness_{key}", default=None, help=help_text)
        if name in _LISTS:
            parser.addini(f"harness_{key}", help_text, type="linelist", default=[])
        else:
            parser.addini(f"harness_{key}", help_text, default=default)


def _setting(config: pytest.Config, name: str) -> str | None:
    """A setting: the command-line option, else the ini key, else its default. Works before
    the command line is fully parsed too (early provisioning)."""
    value = _setting_option(config, name)
    if value is None:
        value = config.getini(f"harness_{name.replace('-', '_')}")
    return str(value) if value not in (None, "") else None


def _flag(config: pytest.Config, name: str) -> bool:
    return (_setting(config, name) or "0").lower() in ("1", "true", "yes", "on")


def _worker_id() -> str:
    """The xdist way: PYTEST_XDIST_WORKER in a worker (set before its config exists), else
    "master"."""
    return environment().xdist_worker or "master"


def _controller_of_this_worker() -> tuple[str, int] | None:
    """(run id, controller pid) when this process is an xdist worker of a harness run: the
    variable is inherited from the controller, and the controller is our parent (a pytest
    started by a test inherits the variable too, but not that parent)."""
    env = environment()
    run_id, _, pid = (env.controller or "").rpartition(":")
    if not env.xdist_worker or not pid.isdigit() or int(pid) != os.getppid():
        return None
    return run_id, int(pid)


def _runs_tests_here(config: pytest.Config) -> bool:
    """False in an xdist controller whose workers run the tests, and under --collect-only."""
    namespace = config.known_args_namespace
    if getattr(namespace, "collectonly", False):
        return False
    if environment().xdist_worker:
        return True
    # xdist's -n (its --dist is not settled yet at this point): workers will run the tests.
    return not getattr(namespace, "numprocesses", None)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> Generator[None]:
    """The run's identity, then (early mode) the worker's services, all before pytest imports
    the initial conftests, which is what the `yield` does."""
    # First, before xdist starts its workers or early provisioning runs harness_migrate and
    # harness_seed: none of them inherits the key password.
    withhold_secrets()
    config = early_config
    inherited = _controller_of_this_worker()
    if inherited is not None:
        config.stash[_RUN_ID], config.stash[_OWNER_PID] = inherited
    else:
        config.stash[_RUN_ID] = environment().run_id or new_run_id()
        config.stash[_OWNER_PID] = os.getpid()
        os.environ[_CONTROLLER_VAR] = f"{config.stash[_RUN_ID]}:{os.getpid()}"
    config.stash[_STARTED] = datetime.now(UTC).isoformat(timespec="seconds")
    if inherited is None:
        _guard(config)
    if (_setting(config, "provision") or "lazy") == "early":
        if _runs_tests_here(config):
            config.stash[_EARLY] = _provision_or_error(config)
            config.pluginmanager.register(_EarlyCloser(), "harness-early-closer")
        else:
            _export_placeholders(config)
    return (yield)


def pytest_configure(config: pytest.Config) -> None:
    """The plugin registered from a conftest (`pytest_plugins`) misses the hook above."""
    withhold_secrets()


def _guard(config: pytest.Config) -> None:
    """Once per run, in the controller (or the one process of a run without xdist), before
    any worker starts and so before any harness_migrate or harness_seed: a database variable
    the project reads but the worker's mapping does not set would send those commands to its
    default database, a developer's own. The run stops here, naming it (runtime.envguard)."""
    from tierharness.runtime.envguard import IGNORE_OPTION, guard_commands, parse_ignore

    namespace = config.known_args_namespace
    if any(getattr(namespace, flag, False) for flag in ("collectonly", "help", "version")):
        return  # runs no command
    commands = {f"harness_{name}": value for name in ("migrate", "seed") if (value := _setting(config, name))}
    if not commands:
        return
    try:
        mapping = set(_mapping_plan(config).templates())
    except HarnessError:
        # A broken [tool.harness] table or harness_env line: each worker reports it while making
        # its plan, which comes before any command, as it always has.
        return
    source = str(config.inipath) if config.inipath else "the pytest configuration"
    try:
        raw = _setting_option(config, "env-ignore")
        ignore = parse_ignore(raw if raw is not None else config.getini(IGNORE_OPTION), source=source)
        guard_commands(Path(config.rootpath), mapping, commands=commands, ignore=ignore)
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from None


def _mapping_plan(config: pytest.Config) -> WorkerPlan:
    """A plan with the worker's mapping (its `templates()`) and no images: what the guard and
    the placeholders need, without resolving or building an image."""
    from tierharness.runtime.worker import WorkerPlan

    return WorkerPlan(
        rootdir=Path(config.rootpath),
        state_dir=_state_dir(config),
        postgres_image="",
        redis_image="" if "redis" in _service_names(config) else None,
        env_templates={**_settings(config).test_env, **_env_lines(config)},
    )


def _service_names(config: pytest.Config) -> set[str]:
    return {s.strip() for s in (_setting(config, "services") or "").split(",") if s.strip()}


def _export_placeholders(config: pytest.Config) -> None:
    """An xdist controller (or --collect-only) imports the conftests too but runs no test:
    settings read at import get values that point nowhere (an .invalid host), never a real
    database, and never a KeyError."""
    from tierharness.runtime.containers import PostgresInfo, RedisInfo
    from tierharness.runtime.worker import export_mapping, render_mapping

    host = "harness-not-provisioned.invalid"
    try:
        plan = _mapping_plan(config)
        postgres = PostgresInfo("", host, 5432, "harness", "", "harness", 0.0)
        redis_info = RedisInfo("", host, 6379, "", 0.0) if plan.redis_image is not None else None
        export_mapping(render_mapping(plan, postgres, redis_info))
    except HarnessError:
        pass  # a broken setting is reported by the workers, where tests run


def _provision_or_error(config: pytest.Config) -> Worker | HarnessError:
    """A failure is kept, not raised: raising here would crash the worker (and xdist would
    start it again); the services fixture reports it, once."""
    from tierharness.runtime.worker import provision, worker_error

    try:
        plan = _plan(config)
        _ensure_reaper(config)
        worker = provision(plan, _identity(config))
    except Exception as exc:
        return worker_error(exc)
    _write_manifest(config, worker)
    return worker


class _EarlyCloser:
    """Stops the early-provisioned services last in the session's end, after the session's
    fixtures are torn down (they may still use them), and not at unconfigure: an xdist worker
    reports "finished" when this hook returns, and the run may end (and its caller go on) once
    every worker has. Removed at unconfigure, the containers were still listed, mid-removal,
    after the run had ended."""

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        early = session.config.stash.get(_EARLY, None)
        if early is not None and not isinstance(early, HarnessError):
            early.close()
            _write_manifest(session.config, early)


def _state_dir(config: pytest.Config) -> Path:
    explicit = _setting_option(config, "state-dir") or environment().state_dir
    return Path(config.rootpath) / (explicit or _setting(config, "state-dir") or ".harness")


def _setting_option(config: pytest.Config, name: str) -> str | None:
    """The command-line value only. Before the command line is fully parsed (early
    provisioning) `config.option` holds the defaults; the known args hold what was given."""
    key = f"harness_{name.replace('-', '_')}"
    value = getattr(config.option, key, None)
    if value is None:
        value = getattr(config.known_args_namespace, key, None)
    return str(value) if value else None


def _identity(config: pytest.Config) -> RunIdentity:
    return RunIdentity(config.stash[_RUN_ID], _worker_id(), config.stash[_OWNER_PID])


def _ensure_reaper(config: pytest.Config) -> None:
    """Start the run's reaper once, the first time anything is started: whichever process
    gets here first (a worker, or the controller without xdist) starts it for the run's
    controller. A marker file created exclusively makes "once" hold across workers."""
    if not _flag(config, "reaper"):
        return
    from tierharness.runtime.reaper import spawn_reaper

    run_id = config.stash[_RUN_ID]
    state_dir = _state_dir(config)
    marker = state_dir / "runs" / run_id / ".reaper"
    marker.parent.mkdir(parents=True, exist_ok=True)
    try:
        marker.touch(exist_ok=False)
    except FileExistsError:
        return
    spawn_reaper(run_id, config.stash[_OWNER_PID], state_dir / "reaper.log")


def _settings(config: pytest.Config) -> Settings:
    """The rootdir's [tool.harness] (the defaults where it has none)."""
    from tierharness.config import load_settings

    return load_settings(Path(config.rootpath), required=False)


def _plan(config: pytest.Config) -> WorkerPlan:
    """What this worker should start, from the settings; images made available first."""
    from tierharness.runtime.worker import WorkerPlan

    services = _service_names(config)
    unknown = services - {"postgres", "redis"}
    if unknown or "postgres" not in services:
        raise HarnessError(
            f"harness_services = {_setting(config, 'services')!r} is not a set of services it can start",
            checked="--harness-services / ini harness_services",
            fix='use "postgres,redis" or "postgres"',
        )
    settings = _settings(config)
    extra = _env_lines(config)
    return WorkerPlan(
        rootdir=Path(config.rootpath),
        state_dir=_state_dir(config),
        postgres_image=_image(config, settings, "postgres"),
        redis_image=_image(config, settings, "redis") if "redis" in services else None,
        migrate=_setting(config, "migrate"),
        seed=_setting(config, "seed"),
        env_templates={**settings.test_env, **extra},
        keep_tables=tuple(t.strip() for t in (_setting(config, "keep-tables") or "").split(",") if t.strip()),
        reset=_setting(config, "reset") or "deletion",
        reuse=_flag(config, "reuse"),
        network=_setting(config, "network") or "auto",
    )


def _env_lines(config: pytest.Config) -> dict[str, str]:
    """harness_env: one VAR=template a line."""
    extra: dict[str, str] = {}
    for line in (ln.strip() for ln in (_setting(config, "env") or "").splitlines() if ln.strip()):
        name, sep, template = line.partition("=")
        if not sep or not name.strip().isidentifier():
            raise HarnessError(
                f"harness_env line {line!r} is not VAR=template",
                checked="--harness-env / ini harness_env",
                fix="write one VARIABLE={postgres.host}-style line per variable",
            )
        extra[name.strip()] = template.strip()
    return extra


def _image(config: pytest.Config, settings: Settings, role: str) -> str:
    """The image for a worker's `role`: the setting, made available (local, else pulled), or
    else the harness's own logical image (local, pulled, or built offline)."""
    from tierharness.build.images import ensure_image, resolve_images

    explicit = _setting(config, f"{role}-image")
    if explicit:
        ensure_image(explicit, option=f"--harness-{role}-image (ini harness_{role}_image)")
        return explicit
    (image,) = resolve_images(settings, [role], log=lambda _m: None)
    return image.ref


@dataclass
class HarnessServices:
    """What a worker got: its Postgres (and Redis), how to reset them, what was exported."""

    identity: RunIdentity
    postgres: PostgresInfo
    redis: RedisInfo | None
    reset: StateReset = field(repr=False)
    exported: dict[str, str] = field(default_factory=dict, repr=False)
    reused: bool = False
    _last_reset: object = field(default=None, repr=False)

    def env(self) -> dict[str, str]:
        """The environment mapping exported for this worker (DATABASE_URL, PG*, ...)."""
        return dict(self.exported)


def _services_of(worker: Worker) -> HarnessServices:
    return HarnessServices(
        worker.identity, worker.postgres, worker.redis, worker.reset, dict(worker.env), worker.reused
    )


def services_fixture(
    *, scope: Scope = "session"
) -> Callable[[pytest.FixtureRequest], Iterator[HarnessServices]]:
    """A fixture factory: this worker's services, provisioned early or now, migrated once."""

    @pytest.fixture(scope=scope)
    def _services(request: pytest.FixtureRequest) -> Iterator[HarnessServices]:
        from tierharness.runtime.worker import provision, worker_error

        config = request.config
        early = config.stash.get(_EARLY, None)
        if isinstance(early, HarnessError):
            raise early
        if early is not None:
            yield _services_of(early)
            return
        try:
            plan = _plan(config)
            _ensure_reaper(config)
            worker = provision(plan, _identity(config))
        except Exception as exc:
            raise worker_error(exc) from exc
        _write_manifest(config, worker)
        try:
            yield _services_of(worker)
        finally:
            worker.close()
            _write_manifest(config, worker)

    return _services


def _write_manifest(config: pytest.Config, worker: Worker) -> None:
    from tierharness.runtime import manifest

    manifest.write_worker(_state_dir(config), worker.identity.run_id, worker.identity.worker, worker.record)


def clean_fixture(
    services_name: str = "harness_services",
) -> Callable[[pytest.FixtureRequest], HarnessServices]:
    """A fixture factory: the worker's services, reset for this test (or this module, or once,
    by harness_reset_scope). With a seed fixture configured, it runs before the first reset,
    so a "snapshot" reset keeps what it committed."""

    @pytest.fixture
    def _clean(request: pytest.FixtureRequest) -> HarnessServices:
        config = request.config
        services: HarnessServices = request.getfixturevalue(services_name)
        seed = _setting(config, "seed-fixture")
        if seed:
            request.getfixturevalue(seed)
        scope = _setting(config, "reset-scope") or "function"
        if scope not in ("function", "module", "session"):
            raise HarnessError(
                f"harness_reset_scope = {scope!r} is not a scope",
                checked="--harness-reset-scope / ini harness_reset_scope",
                fix='use "function", "module" or "session"',
            )
        marker: object = {"function": request.node, "module": request.node.module, "session": True}[scope]
        if services._last_reset is not marker:
            services.reset.reset()
            services._last_reset = marker
        return services

    return _clean


def stack_fixture(
    image: str | None = None, scope: Scope = "session"
) -> Callable[[pytest.FixtureRequest], Iterator[Stack]]:
    """A fixture factory: the built image running beside its own Postgres and Redis."""

    @pytest.fixture(scope=scope)
    def _stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
        import json

        from tierharness.engine import local_image_id
        from tierharness.runtime.stack import running_stack

        config = request.config
        settings = _settings(config)
        ref = image or _setting(config, "image")
        if ref is None:
            record = settings.image_record
            if not record.exists():
                raise pytest.UsageError(
                    f"no image to test: {record} does not exist. Build it first (`nox -s build`), "
                    "or name one with --harness-image"
                )
            ref = str(json.loads(record.read_text())["image"])
        if local_image_id(ref) is None:
            raise pytest.UsageError(
                f"the image under test, {ref}, is not in the engine "
                f"(checked: docker image inspect {ref}). Build it with `nox -s build` "
                "(or `python -m tierharness build`), or name another with --harness-image"
            )
        _ensure_reaper(config)
        from tierharness.supply.run import image_to_run

        # Verified in the registry and run by digest; a failure starts nothing. Unverified, a
        # warning says so (xdist brings workers' warnings to the run's summary).
        ref = image_to_run(settings, ref, _identity(config), log=lambda m: warnings.warn(m, stacklevel=2))
        pg_image = _image(config, settings, "postgres")
        rd_image = _image(config, settings, "redis")
        with running_stack(ref, pg_image, rd_image, _identity(config), settings.stack) as stack:
            yield stack

    return _stack


@pytest.fixture(scope="session")
def harness_reaper(request: pytest.FixtureRequest) -> None:
    """The run's reaper, for tests that start labelled resources of their own: if the run is
    killed, it removes the run's resources and sweeps every run whose owner is gone."""
    _ensure_reaper(request.config)


@pytest.fixture(scope="session", autouse=True)
def _harness_early(request: pytest.FixtureRequest) -> None:
    """With early provisioning, the worker's services come before any other session fixture
    (a project's seed, say), so a failure to provision is the error every test reports."""
    if request.config.stash.get(_EARLY, None) is not None:
        request.getfixturevalue("harness_services")


@pytest.fixture(autouse=True)
def _harness_autoclean(request: pytest.FixtureRequest) -> None:
    """With harness_autoclean, every test gets harness_clean without asking for it."""
    if _flag(request.config, "autoclean"):
        request.getfixturevalue("harness_clean")


class HarnessWarning(UserWarning):
    """Something the harness noticed that does not stop the run."""


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A shard's durations file naming tests that no longer exist: a warning, not an error."""
    durations = getattr(config.option, "durations_path", None)
    if not getattr(config.option, "splits", None) or not durations:
        return
    from tierharness.scale.shards import stale_durations

    stale = stale_durations(Path(durations), {item.nodeid for item in items})
    if stale:
        config.issue_config_time_warning(
            HarnessWarning(
                f"{durations} names {len(stale)} test(s) that no longer exist (e.g. {stale[0]}); "
                "the shards are balanced without them: refresh it with `nox -s durations`"
            ),
            stacklevel=2,
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """A harness setup failure is shown in full once; every other test it stopped says
    "same error" in one line, instead of the same 5 KB again."""
    report = yield
    error = call.excinfo.value if call.excinfo is not None else None
    if report.when == "setup" and report.failed and isinstance(error, HarnessError):
        failures = item.config.stash.setdefault(_FAILURES, {})
        key = error.what.splitlines()[0]
        if key in failures:
            report.longrepr = f"harness: same error as {failures[key][0]} ({key})"
        failures.setdefault(key, []).append(item.nodeid)
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    early = config.stash.get(_EARLY, None)
    if early is not None and not isinstance(early, HarnessError):
        early.record["isolation"] = early.reset.stats()  # before the controller merges the manifest
        _write_manifest(config, early)
    if hasattr(config, "workerinput"):
        return
    from tierharness.runtime import manifest

    state_dir = _state_dir(config)
    merged = manifest.merge_run(
        state_dir, config.stash[_RUN_ID], {"started": config.stash.get(_STARTED, ""), "pid": os.getpid()}
    )
    if merged is not None:
        config.stash[_SUMMARY] = manifest.summary_line(merged, state_dir / "last-run.json")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    # Counted from the reports, which xdist brings back from every worker.
    repeats: dict[str, int] = {}
    for report in terminalreporter.stats.get("error", []):
        text = str(getattr(report, "longrepr", ""))
        if text.startswith("harness: same error as "):
            key = text.split(" (", 1)[1].rstrip(")") if " (" in text else text
            repeats[key] = repeats.get(key, 0) + 1
    for key, count in repeats.items():
        terminalreporter.write_line(
            f"harness: same error for {count + 1} tests (shown once per worker): {key}"
        )
    line = config.stash.get(_SUMMARY, None)
    if line:
        terminalreporter.write_line(line)


# The default fixtures.
harness_services = services_fixture()
harness_clean = clean_fixture()
harness_stack = stack_fixture()
