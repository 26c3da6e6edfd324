"""Configuration, read in one place: `[tool.harness]` in pyproject.toml, parsed into typed
dataclasses, and every environment variable the harness honours.

- `variables`: the environment (`environment()`), the secrets withheld from children;
- `tables`: reading TOML, each table checked key by key;
- `logical_images`: the harness's own images and a project's `[tool.harness.images.*]`;
- `sections`: the `[tool.harness.*]` sections, one dataclass each;
- `settings`: `load_settings`, which finds the project and puts it all together.

The pytest plugin's own options live with the plugin (`tierharness.plugin.options`).
docs/reference.md lists every setting, rendered from these declarations.

Each name is imported from its submodule the first time it is asked for (`__getattr__`), not
when the package is: the pytest plugin needs only `variables` in every process of a run that
uses no harness fixture, and parsing the sections there would be paid once per xdist worker.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# Which submodule holds each public name (the imports above say the same to the type checker).
_HOME = {
    "logical_images": ("DEFAULT_IMAGES", "RECIPES", "LogicalImage"),
    "sections": (
        "PERF_OPTIONS",
        "BuildConfig",
        "DeployConfig",
        "LicencePolicy",
        "LockConfig",
        "PerfConfig",
        "PerfOption",
        "SecurityConfig",
        "StackConfig",
        "SupplyConfig",
    ),
    "settings": ("Settings", "find_project_root", "load_settings"),
    "tables": ("read_toml",),
    "variables": (
        "Environment",
        "child_env",
        "environment",
        "machine_cache",
        "pip_child_env",
        "withhold_secrets",
    ),
}
_MODULE_OF = {name: module for module, names in _HOME.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # asked once: later look-ups find it without this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
