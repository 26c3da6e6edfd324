"""Reading `[tool.harness]` TOML: the file, and its tables checked key by key.

Every table rejects keys it does not know, naming the key and the table, so a typo is an
error and not a silently ignored setting; every value is checked against its type.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from tierharness.errors import HarnessError

__all__ = ["known_table", "read_toml", "strings", "templates", "typed"]


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file's tables, or an error naming the file and the fix."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise HarnessError(
            f"cannot read {path}: {exc}", checked=str(path), fix="fix the TOML syntax"
        ) from exc


def known_table(value: Any, where: str, known: Iterable[str], path: Path) -> Mapping[str, Any]:
    """`value` as a table whose keys are all in `known`, or an error naming the stray ones."""
    if not isinstance(value, Mapping):
        raise HarnessError(
            f"[{where}] must be a table, not {type(value).__name__}",
            checked=str(path),
            fix=f"write it as [{where}] with key = value lines",
        )
    allowed = set(known)
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise HarnessError(
            f"unknown key(s) in [{where}]: {', '.join(unknown)}",
            checked=str(path),
            fix=f"use only: {', '.join(sorted(allowed))}",
        )
    return value


T = TypeVar("T")


def typed(table: Mapping[str, Any], key: str, kind: type[T], default: T, where: str) -> T:
    value = table.get(key, default)
    # TOML has no separate int/float literal for "100": accept ints where floats are asked.
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind):
        raise HarnessError(
            f"[{where}].{key} must be a {kind.__name__}, not {value!r}",
            checked=f"[{where}].{key}",
            fix=f"write {key} as a {kind.__name__}",
        )
    return value


def strings(table: Mapping[str, Any], key: str, default: tuple[str, ...], where: str) -> tuple[str, ...]:
    value = table.get(key, list(default))
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise HarnessError(
            f"[{where}].{key} must be a list of strings, not {value!r}",
            checked=f"[{where}].{key}",
            fix=f'write {key} = ["a", "b"]',
        )
    return tuple(value)


def templates(value: Any, where: str, path: Path) -> dict[str, str]:
    """A table of environment variable -> template string."""
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        raise HarnessError(
            f"[{where}] must map variable names to template strings",
            checked=f"[{where}] in {path}",
            fix='write VARIABLE = "template with {postgres.host} and the like"',
        )
    return dict(value)
