"""No module of tierharness/ over MAX_MODULE_LINES lines and no function over MAX_FUNCTION_LINES.

Today's offenders are listed with their size then: the lists may only shrink. A listed one
may not grow, and one that no longer exceeds (split, or gone) fails the test too, so that its
entry is removed with it."""

from __future__ import annotations

import ast
from pathlib import Path

MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60

# path: lines when listed (none: a longer module is split, not listed)
KNOWN_LONG_MODULES: dict[str, int] = {}
# path::qualified name: lines when listed (none)
KNOWN_LONG_FUNCTIONS: dict[str, int] = {}


def _modules(project_root: Path) -> dict[str, Path]:
    package = project_root / "tierharness"
    return {path.relative_to(project_root).as_posix(): path for path in sorted(package.rglob("*.py"))}


def _functions(tree: ast.AST, prefix: str = "") -> dict[str, int]:
    """Qualified name -> lines (decorators included) of every function, nested ones too."""
    found: dict[str, int] = {}
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = f"{prefix}{node.name}"
            if not isinstance(node, ast.ClassDef):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                found[name] = (node.end_lineno or node.lineno) - first + 1
            found |= _functions(node, f"{name}.")
    return found


def _long_modules(project_root: Path) -> dict[str, int]:
    lines = {
        rel: len(path.read_text(encoding="utf-8").splitlines())
        for rel, path in _modules(project_root).items()
    }
    return {rel: n for rel, n in lines.items() if n > MAX_MODULE_LINES}


def _long_functions(project_root: Path) -> dict[str, int]:
    found: dict[str, int] = {}
    for rel, path in _modules(project_root).items():
        for name, n in _functions(ast.parse(path.read_text(encoding="utf-8"))).items():
            if n > MAX_FUNCTION_LINES:
                found[f"{rel}::{name}"] = n
    return found


def _judge(long: dict[str, int], known: dict[str, int], limit: int, listed_as: str) -> None:
    new = sorted(set(long) - set(known))
    assert not new, f"over {limit} lines: {[f'{name} ({long[name]})' for name in new]}; split by idea"
    fixed = sorted(set(known) - set(long))
    assert not fixed, f"no longer over {limit} lines, remove from {listed_as}: {fixed}"
    grown = sorted(name for name, n in long.items() if n > known.get(name, n))
    assert not grown, f"known long, and longer still: {[f'{name} ({long[name]})' for name in grown]}"


def test_no_module_is_longer_than_the_limit_but_the_known_ones(project_root: Path) -> None:
    _judge(_long_modules(project_root), KNOWN_LONG_MODULES, MAX_MODULE_LINES, "KNOWN_LONG_MODULES")


def test_no_function_is_longer_than_the_limit_but_the_known_ones(project_root: Path) -> None:
    _judge(_long_functions(project_root), KNOWN_LONG_FUNCTIONS, MAX_FUNCTION_LINES, "KNOWN_LONG_FUNCTIONS")
