"""The layers contracts ([tool.importlinter] in pyproject.toml) catch an upward import: on a
copy of the package, `lint-imports` passes as it is and fails once a low layer imports a
high one, naming that import."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# A module of the lowest layers, and what it must never import: the command line.
LOW = "tierharness/oci.py"
UPWARD = "tierharness.__main__"


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    command = Path(sys.executable).with_name("lint-imports")
    # The copy, not the installed package, is what grimp must read: it comes first on the path.
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(command), "--config", str(tree / "pyproject.toml"), "--no-cache"],
        cwd=tree, env=env, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip


@pytest.fixture
def tree(project_root: Path, tmp_path: Path) -> Path:
    shutil.copytree(
        project_root / "tierharness", tmp_path / "tierharness", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy2(project_root / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_contracts_hold_for_the_package_as_it_is(tree: Path) -> None:
    result = _lint_imports(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


@pytest.mark.parametrize(
    "statement", [f"import {UPWARD}\n", f"\n\ndef _late() -> None:\n    import {UPWARD}\n"]
)
def test_an_upward_import_breaks_the_contracts(tree: Path, statement: str) -> None:
    low = tree / LOW
    low.write_text(low.read_text() + statement)
    result = _lint_imports(tree)
    assert result.returncode != 0, result.stdout
    assert "BROKEN" in result.stdout
    assert f"tierharness.oci -> {UPWARD}" in result.stdout, result.stdout
