"""Installing the harness brings what it imports: [project].dependencies and its extras
cover every third-party module tierharness/ imports."""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# Import name -> distribution name, where they differ.
DISTRIBUTIONS = {"piptools": "pip-tools", "xdist": "pytest-xdist", "cyclonedx": "cyclonedx-python-lib"}


def _third_party_imports(package: Path) -> set[str]:
    found: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return {name for name in found if name not in sys.stdlib_module_names and name != "tierharness"}


def test_every_import_of_the_harness_is_a_declared_dependency(project_root: Path) -> None:
    project = tomllib.loads((project_root / "pyproject.toml").read_text())["project"]
    declared = {canonicalize_name(Requirement(r).name) for r in project["dependencies"]}
    for extra in project.get("optional-dependencies", {}).values():
        declared |= {canonicalize_name(Requirement(r).name) for r in extra}
    imported = _third_party_imports(project_root / "tierharness")
    missing = {name for name in imported if canonicalize_name(DISTRIBUTIONS.get(name, name)) not in declared}
    assert imported, "no third-party import found: the scan itself is broken"
    assert not missing, f"imported by tierharness/ but not declared in [project]: {sorted(missing)}"
