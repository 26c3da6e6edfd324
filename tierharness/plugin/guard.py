"""The check before the project's commands run: once per run, in the controller (or the one
process of a run without xdist), before any worker starts and so before any harness_migrate
or harness_seed. A database variable the project reads but the worker's mapping does not set
would send those commands to its default database, a developer's own. The run stops here,
naming it (runtime.envguard)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tierharness.errors import HarnessError
from tierharness.plugin.session import options_of

__all__ = ["guard_before_commands"]


def guard_before_commands(config: pytest.Config) -> None:
    """A pytest.UsageError naming the variables, or nothing."""
    namespace = config.known_args_namespace
    if any(getattr(namespace, flag, False) for flag in ("collectonly", "help", "version")):
        return  # runs no command
    options = options_of(config)
    commands = {
        f"harness_{name}": value
        for name, value in (("migrate", options.migrate), ("seed", options.seed))
        if value
    }
    if not commands:
        return
    from tierharness.plugin.plans import mapping_plan  # noqa: PLC0415  lazy: plugin start-up time (no command, no guard)
    from tierharness.runtime.envguard import guard_commands, parse_ignore  # noqa: PLC0415  lazy: plugin start-up time (no command, no guard)

    rootdir = Path(config.rootpath)
    try:
        mapping = set(mapping_plan(options, rootdir).templates())
    except HarnessError:
        # A broken [tool.harness] table or harness_env line: each worker reports it while making
        # its plan, which comes before any command, as it always has.
        return
    source = str(config.inipath) if config.inipath else "the pytest configuration"
    try:
        ignore = parse_ignore(options.env_ignore, source=source)
        guard_commands(rootdir, mapping, commands=commands, ignore=ignore)
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from None
