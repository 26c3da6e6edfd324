"""What a session keeps on pytest's config (its stash): the options, read once and shared by
every part of the plugin, the run's identity, the early worker, the summary line."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tierharness.plugin.options import HarnessOptions, Option

if TYPE_CHECKING:
    from tierharness.errors import HarnessError
    from tierharness.runtime.worker import Worker

__all__ = ["EARLY", "FAILURES", "LAZY", "OWNER_PID", "RUN_ID", "STARTED", "SUMMARY", "options_of"]

RUN_ID = pytest.StashKey[str]()
OWNER_PID = pytest.StashKey[int]()
STARTED = pytest.StashKey[str]()
SUMMARY = pytest.StashKey[str]()
EARLY: pytest.StashKey[Worker | HarnessError] = pytest.StashKey()
# The worker the first fixture started (lazy provisioning), while it runs: a failed test's
# post-mortem copies its services.
LAZY: pytest.StashKey[Worker] = pytest.StashKey()
FAILURES = pytest.StashKey[dict[str, list[str]]]()
_OPTIONS = pytest.StashKey[HarnessOptions]()


def options_of(config: pytest.Config) -> HarnessOptions:
    """The session's options, read the first time they are asked for. That may be before the
    command line is fully parsed (early provisioning): `_command_line` copes."""
    found = config.stash.get(_OPTIONS, None)
    if found is None:
        found = HarnessOptions.read(lambda o: _command_line(config, o), lambda o: config.getini(o.ini))
        config.stash[_OPTIONS] = found
    return found


def _command_line(config: pytest.Config, option: Option) -> str | None:
    """The command-line value only. Before the command line is fully parsed (early
    provisioning) `config.option` holds the defaults; the known args hold what was given."""
    value = getattr(config.option, option.ini, None)
    if value is None:
        value = getattr(config.known_args_namespace, option.ini, None)
    return str(value) if value else None
