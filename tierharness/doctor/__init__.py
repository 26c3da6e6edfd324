"""`python -m tierharness doctor`: can this machine run the harness, and if not, what to do.

Each check is a pure function from facts to `Check` records (PASS, WARN or FAIL, with the
fix for anything not PASS), so tests feed them made-up facts; `diagnose` gathers the real
facts (the engine, the disk, the project's files) and `render` prints the table. The checks,
by topic:

- `verdicts`: `Check`, `render`, `exit_code`;
- `host`: the engine, buildx, the disk, the build cache, the services network;
- `stored_images`: the logical images in the engine, and whether they float;
- `leftovers`: what earlier runs left in the engine;
- `pytest_ini`: the project's pytest configuration, and the plugin's options it sets;
- `project`: the migration command, the test environment's coverage;
- `diagnosis`: the facts gathered, every check run.
"""

from __future__ import annotations

from tierharness.doctor.diagnosis import diagnose
from tierharness.doctor.host import (
    BUILD_CACHE_WARN_ABOVE,
    DISK_FAIL_BELOW,
    DISK_WARN_BELOW,
    GIB,
    MIN_BUILDX,
    MIN_ENGINE,
    EngineFacts,
    build_cache_check,
    build_history_check,
    buildx_check,
    disk_check,
    engine_checks,
    network_check,
)
from tierharness.doctor.leftovers import leftover_checks
from tierharness.doctor.project import env_coverage_checks, env_mapping, migrate_check
from tierharness.doctor.pytest_ini import IniOptions, project_root, read_ini_options
from tierharness.doctor.stored_images import image_checks
from tierharness.doctor.verdicts import Check, exit_code, render
from tierharness.runtime.envguard import EnvRead, is_database_variable, scan_env_reads

__all__ = [
    "BUILD_CACHE_WARN_ABOVE",
    "DISK_FAIL_BELOW",
    "DISK_WARN_BELOW",
    "GIB",
    "MIN_BUILDX",
    "MIN_ENGINE",
    "Check",
    "EngineFacts",
    "EnvRead",
    "IniOptions",
    "build_cache_check",
    "build_history_check",
    "buildx_check",
    "diagnose",
    "disk_check",
    "engine_checks",
    "env_coverage_checks",
    "env_mapping",
    "exit_code",
    "image_checks",
    "is_database_variable",
    "leftover_checks",
    "migrate_check",
    "network_check",
    "project_root",
    "read_ini_options",
    "render",
    "scan_env_reads",
]
