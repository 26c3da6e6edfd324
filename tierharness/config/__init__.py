"""Configuration, read in one place: `[tool.harness]` in pyproject.toml, parsed into typed
dataclasses, and every environment variable the harness honours.

- `variables`: the environment (`environment()`), the secrets withheld from children;
- `tables`: reading TOML, each table checked key by key;
- `logical_images`: the harness's own images and a project's `[tool.harness.images.*]`;
- `sections`: the `[tool.harness.*]` sections, one dataclass each;
- `settings`: `load_settings`, which finds the project and puts it all together.

The pytest plugin's own options live with the plugin (`tierharness.plugin.options`).
docs/reference.md lists every setting, rendered from these declarations.
"""

from __future__ import annotations

from tierharness.config.logical_images import DEFAULT_IMAGES, RECIPES, LogicalImage
from tierharness.config.sections import (
    PERF_OPTIONS,
    BuildConfig,
    DeployConfig,
    LicencePolicy,
    LockConfig,
    PerfConfig,
    PerfOption,
    SecurityConfig,
    StackConfig,
    SupplyConfig,
)
from tierharness.config.settings import Settings, find_project_root, load_settings
from tierharness.config.tables import read_toml
from tierharness.config.variables import (
    Environment,
    child_env,
    environment,
    machine_cache,
    pip_child_env,
    withhold_secrets,
)

__all__ = [
    "DEFAULT_IMAGES",
    "PERF_OPTIONS",
    "RECIPES",
    "BuildConfig",
    "DeployConfig",
    "Environment",
    "LicencePolicy",
    "LockConfig",
    "LogicalImage",
    "PerfConfig",
    "PerfOption",
    "SecurityConfig",
    "Settings",
    "StackConfig",
    "SupplyConfig",
    "child_env",
    "environment",
    "find_project_root",
    "load_settings",
    "machine_cache",
    "pip_child_env",
    "read_toml",
    "withhold_secrets",
]
