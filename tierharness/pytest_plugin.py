"""The pytest plugin: each xdist worker (or a run without xdist) gets its own Postgres (and
Redis) container, migrated once, reset before every test that asks for it.

Registered through the `pytest11` entry point. This module holds the hooks and the public
API; the machinery is in `tierharness.plugin` (its options, each declared once in
`tierharness.plugin.options.OPTIONS`, both a command-line option and an ini key: docs/reference.md).
Fixtures are built by factories (`services_fixture`, `clean_fixture`, `stack_fixture`); the
default ones are created at the bottom.

Provisioning is lazy (the first fixture that asks starts the worker's services) or early
(`harness_provision = early`: before conftests and test modules are imported). Nothing is
started, no reaper runs and no state is written until one of them happens.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from tierharness.config import withhold_secrets
from tierharness.errors import HarnessError
from tierharness.plugin.failures import repeat_lines, shorten_repeat
from tierharness.plugin.fixtures import HarnessServices, clean_fixture, services_fixture, stack_fixture
from tierharness.plugin.identity import claim_identity
from tierharness.plugin.options import add_options
from tierharness.plugin.postmortem import keep_failed_limit, keep_if_failed, summary_lines
from tierharness.plugin.session import EARLY, RUN_ID, SUMMARY, options_of

__all__ = ["HarnessServices", "HarnessWarning", "clean_fixture", "services_fixture", "stack_fixture"]


class HarnessWarning(UserWarning):
    """Something the harness noticed that does not stop the run."""


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> Generator[None]:
    """The run's identity, then (early mode) the worker's services, all before pytest imports
    the initial conftests, which is what the `yield` does."""
    # First, before xdist starts its workers or early provisioning runs harness_migrate and
    # harness_seed: none of them inherits the key password.
    withhold_secrets()
    if claim_identity(early_config):
        from tierharness.plugin.guard import guard_before_commands  # noqa: PLC0415  lazy: plugin start-up time (an unused plugin costs nothing)

        guard_before_commands(early_config)
    if options_of(early_config).provision == "early":
        from tierharness.plugin.provisioning import provision_early  # noqa: PLC0415  lazy: plugin start-up time (an unused plugin costs nothing)

        _register_early(early_config)  # before the conftests: its autouse fixture comes first
        provision_early(early_config)
    return (yield)


def pytest_configure(config: pytest.Config) -> None:
    """The plugin registered from a conftest (`pytest_plugins`) misses the hook above."""
    withhold_secrets()
    if options_of(config).keep_failed:
        try:  # at the start, not at the first failure
            keep_failed_limit(options_of(config).keep_failed_max)
        except HarnessError as exc:
            raise pytest.UsageError(str(exc)) from exc
    if options_of(config).provision == "early":
        _register_early(config)
    if options_of(config).autoclean and not config.pluginmanager.has_plugin(_AUTOCLEAN):
        config.pluginmanager.register(_AutoClean(), _AUTOCLEAN)


@pytest.fixture(scope="session")
def harness_reaper(request: pytest.FixtureRequest) -> None:
    """The run's reaper, for tests that start labelled resources of their own: if the run is
    killed, it removes the run's resources and sweeps every run whose owner is gone."""
    from tierharness.plugin.records import ensure_reaper  # noqa: PLC0415  lazy: plugin start-up time (an unused plugin costs nothing)

    ensure_reaper(request.config)


_EARLY = "harness-early"
_AUTOCLEAN = "harness-autoclean"


class _EarlyServices:
    """Registered only with early provisioning: an autouse fixture, even a session one, costs
    every test's fixture resolution, whether it does anything or not."""

    # A class method: pytest deprecates session fixtures that are instance methods.
    @pytest.fixture(scope="session", autouse=True)
    @classmethod
    def _harness_early(cls, request: pytest.FixtureRequest) -> None:
        """The worker's services come before any other session fixture (a project's seed,
        say), so a failure to provision is the error every test reports."""
        if request.config.stash.get(EARLY, None) is not None:
            request.getfixturevalue("harness_services")


def _register_early(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin(_EARLY):
        config.pluginmanager.register(_EarlyServices(), _EARLY)


class _AutoClean:
    """Registered only with harness_autoclean: an autouse fixture costs every test a setup and
    a teardown, whether it does anything or not."""

    @pytest.fixture(autouse=True)
    def _harness_autoclean(self, request: pytest.FixtureRequest) -> None:
        """Every test gets harness_clean without asking for it."""
        request.getfixturevalue("harness_clean")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A shard's durations file naming tests that no longer exist: a warning, not an error."""
    durations = getattr(config.option, "durations_path", None)
    if not getattr(config.option, "splits", None) or not durations:
        return
    from tierharness.scale.shards import stale_durations  # noqa: PLC0415  lazy: plugin start-up time (only with shards)

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
    "same error" in one line. With --harness-keep-failed, a failed test's state is kept."""
    report = yield
    shorten_repeat(item, call, report)
    keep_if_failed(item, report)  # before the next test's reset wipes what explains the failure
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    early = config.stash.get(EARLY, None)
    if early is not None and not isinstance(early, HarnessError):
        from tierharness.plugin.records import write_manifest  # noqa: PLC0415  lazy: plugin start-up time (an unused plugin costs nothing)

        early.record["isolation"] = early.reset.stats()  # before the controller merges the manifest
        write_manifest(config, early)
    if not hasattr(config, "workerinput"):
        # Even when it started nothing itself: its workers may have.
        from tierharness.plugin.records import merge_manifests  # noqa: PLC0415  lazy: plugin start-up time (only the controller merges)

        merge_manifests(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    """The run is over: after every session fixture and its workers. The controller releases the
    run's reaper, so it sweeps once rather than for the grace period a killed run needs."""
    if hasattr(config, "workerinput") or RUN_ID not in config.stash:
        return
    from tierharness.plugin.records import release_reaper  # noqa: PLC0415  lazy: plugin start-up time (an unused plugin costs nothing)

    release_reaper(config)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    for line in [*repeat_lines(terminalreporter), *summary_lines(terminalreporter)]:
        terminalreporter.write_line(line)
    summary = config.stash.get(SUMMARY, None)
    if summary:
        terminalreporter.write_line(summary)


# The default fixtures.
harness_services = services_fixture()
harness_clean = clean_fixture()
harness_stack = stack_fixture()
