"""Checks of the project: its migration command, and the test environment it reads (every
database variable set by the harness)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from tierharness.doctor.pytest_ini import IniOptions
from tierharness.doctor.verdicts import Check, Status
from tierharness.errors import HarnessError
from tierharness.plugin.options import HarnessOptions, option
from tierharness.runtime.envguard import (
    IGNORE_OPTION,
    EnvRead,
    database_reads,
    parse_ignore,
    unset_fix,
    unset_variables,
)
from tierharness.runtime.plan import DEFAULT_ENV, REDIS_ENV

__all__ = ["commands_set", "env_coverage_checks", "env_mapping", "migrate_check"]


def migrate_check(
    command: str | None,
    *,
    root: Path,
    executable: str,
    search_path: str,
    source: str = "the pytest configuration",
) -> Check:
    """The program of `harness_migrate` exists where the plugin will run it: `python` is the
    test interpreter; anything else is looked up in its venv's bin, then on PATH."""
    name = "migrate command"
    if not command:
        return Check(name, "PASS", "harness_migrate is not set: no migrations run")
    fix = (
        f"install the program into the test environment, or fix harness_migrate in {source} "
        "(a module of the project runs as `python -m package.module`)"
    )
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        return Check(name, "FAIL", f"cannot split {command!r}: {exc}", f"fix harness_migrate in {source}")
    if not argv:
        return Check(name, "FAIL", "harness_migrate is empty", f"fix harness_migrate in {source}")
    program = argv[0]
    if program in ("python", "python3"):
        # The plugin runs these with the test interpreter (runtime.migrations), not PATH's.
        return Check(name, "PASS", f"{command!r}: {program} is {executable}")
    if os.sep in program:
        candidate = Path(program) if Path(program).is_absolute() else root / program
        found = str(candidate) if candidate.is_file() and os.access(candidate, os.X_OK) else None
        looked = str(candidate)
    else:
        venv_bin = os.path.dirname(executable)
        path = os.pathsep.join(p for p in (venv_bin, search_path) if p)
        found = shutil.which(program, path=path)
        looked = f"{venv_bin} and PATH"
    if found is None:
        return Check(name, "FAIL", f"{command!r}: {program!r} not found (looked in {looked})", fix)
    return Check(name, "PASS", f"{command!r}: {program} is {found}")


def env_mapping(ini: IniOptions, test_env_keys: Iterable[str]) -> set[str]:
    """The variables an early-provisioned test run gets: the defaults (REDIS_URL only when the
    run starts Redis), `[tool.harness.test-env]`, and `harness_env` VAR=template lines."""
    mapping = set(DEFAULT_ENV)
    services = re.split(r"[\s,]+", (ini.options.services or "postgres,redis").strip().lower())
    if "redis" in services:
        mapping.update(REDIS_ENV)
    mapping.update(test_env_keys)
    mapping.update(line.partition("=")[0].strip() for line in ini.lines(option("env").ini) if "=" in line)
    return mapping


def commands_set(options: HarnessOptions) -> list[str]:
    """The ini keys of the project's commands that are set: harness_migrate, harness_seed."""
    given = ((option("migrate"), options.migrate), (option("seed"), options.seed))
    return [o.ini for o, value in given if value]


def env_coverage_checks(
    ini: IniOptions,
    test_env_keys: Iterable[str],
    reads: Sequence[EnvRead],
    dotenv: Mapping[str, str] | None = None,
) -> list[Check]:
    """Every database variable the project reads must be in the mapping, or the code falls
    back to its own default database. The plugin's guard (runtime.envguard) refuses to start
    harness_migrate or harness_seed over the same finding: then it is a FAIL here. With only
    `harness_provision = early` (settings read at import time see the mapping), a WARN."""
    name = "test env"
    commands = commands_set(ini.options)
    if not ini.provision_early and not commands:
        why = "not checked: no harness_migrate or harness_seed, and harness_provision is not `early`"
        return [Check(name, "PASS", why)]
    try:
        ignore = parse_ignore(ini.options.env_ignore, source=ini.where)
    except HarnessError as exc:
        return [Check(name, "FAIL", exc.what, exc.fix)]
    unset = unset_variables(reads, env_mapping(ini, test_env_keys), ignore=ignore, dotenv=dotenv)
    if not unset:
        read = [n for n in database_reads(reads, dotenv) if n not in ignore]
        detail = f"{', '.join(read)}: all set by the harness" if read else "none read by name"
        if ignore:
            detail += f"; {IGNORE_OPTION}: {', '.join(sorted(ignore))}"
        return [Check(name, "PASS", detail)]
    status: Status = "FAIL" if commands else "WARN"
    stopped = f": the run stops before {' and '.join(commands)}" if commands else ""
    detail = "read at {} but not set by the harness" + stopped
    return [Check(f"test env {u.name}", status, detail.format(u.where), unset_fix([u])) for u in unset]
