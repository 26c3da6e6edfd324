"""Which environment variables a project reads, found without importing it.

`python -m tierharness doctor` compares them with what the harness sets for a worker. The
scan is static: `os.environ[...]`, `os.environ.get(...)`, `os.getenv(...)`, `environ[...]`
with a literal name, and the fields of pydantic-settings classes (`env_prefix` and aliases
applied).
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["EnvRead", "is_database_variable", "scan_env_reads"]


@dataclass(frozen=True)
class EnvRead:
    """A place where the project reads an environment variable."""

    name: str
    path: str  # relative to the project root
    line: int

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


# Whole words, so UPGRADE_MODE is not mistaken for a Postgres variable ("PG").
_DATABASE_NAME = re.compile(r"POSTGRES|DATABASE|REDIS|SQL|DB_|(?:^|_)DB$|(?:^|_)PG")


def is_database_variable(name: str) -> bool:
    return bool(_DATABASE_NAME.search(name.upper()))


_SKIP_DIRS = {".venv", ".nox", ".tox", "build", "dist", "node_modules", "__pycache__", "tmp", "site-packages"}


def _python_files(root: Path) -> Iterator[Path]:
    for folder, dirs, files in os.walk(root):
        # Hidden folders are caches and tools' state; folders with pyvenv.cfg are virtualenvs
        # whatever their name; pytest-of-*/pytest-N are tests' own temporary trees; a folder
        # with its own pyproject.toml is another project, with its own rootdir and settings.
        dirs[:] = sorted(
            d
            for d in dirs
            if d not in _SKIP_DIRS
            and not d.startswith((".", "pytest-"))
            and not d.endswith(".egg-info")
            and not (Path(folder, d) / "pyvenv.cfg").exists()
            and not (Path(folder, d) / "pyproject.toml").exists()
        )
        yield from (Path(folder, f) for f in sorted(files) if f.endswith(".py"))


def _is_environ(node: ast.expr) -> bool:
    """`os.environ` or a bare `environ`."""
    if isinstance(node, ast.Attribute):
        return node.attr == "environ" and isinstance(node.value, ast.Name) and node.value.id == "os"
    return isinstance(node, ast.Name) and node.id == "environ"


def _string(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _keyword(call: ast.expr, names: Sequence[str]) -> str | None:
    """The string value of the first keyword argument of `call` named in `names`."""
    if not isinstance(call, ast.Call):
        return None
    for keyword in call.keywords:
        value = _string(keyword.value)
        if keyword.arg is not None and keyword.arg in names and value:
            return value
    return None


def _env_prefix(cls: ast.ClassDef) -> str | None:
    """`model_config = SettingsConfigDict(env_prefix=...)` (or a dict), or v1's `class Config`;
    None when the class does not say (it inherits its base's)."""
    for stmt in cls.body:
        if isinstance(stmt, ast.Assign | ast.AnnAssign) and stmt.value is not None:
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            if any(isinstance(t, ast.Name) and t.id == "model_config" for t in targets):
                if isinstance(stmt.value, ast.Dict):
                    for key, value in zip(stmt.value.keys, stmt.value.values, strict=True):
                        if key is not None and _string(key) == "env_prefix":
                            return _string(value) or ""
                return _keyword(stmt.value, ("env_prefix",))
        if isinstance(stmt, ast.ClassDef) and stmt.name == "Config":
            for inner in stmt.body:
                if isinstance(inner, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == "env_prefix" for t in inner.targets
                ):
                    return _string(inner.value) or ""
    return None


def _settings_fields(cls: ast.ClassDef, prefix: str) -> Iterator[tuple[str, int]]:
    for stmt in cls.body:
        if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
            continue
        attr = stmt.target.id
        if attr.startswith("_") or attr == "model_config" or "ClassVar" in ast.unparse(stmt.annotation):
            continue
        # An alias names the variable itself; pydantic-settings does not prefix it.
        alias = _keyword(stmt.value, ("alias", "validation_alias")) if stmt.value else None
        yield (alias or f"{prefix}{attr}").upper(), stmt.lineno


def _reads_in(tree: ast.AST) -> Iterator[tuple[str, int]]:
    prefixes = {"BaseSettings": ""}  # settings classes seen so far, and their env_prefix
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and _is_environ(node.value):
            name = _string(node.slice)
            if name:
                yield name, node.lineno
        elif isinstance(node, ast.Call) and node.args:
            func, name = node.func, _string(node.args[0])
            if not name:
                continue
            if (
                (isinstance(func, ast.Attribute) and func.attr == "get" and _is_environ(func.value))
                or (
                    isinstance(func, ast.Attribute)
                    and func.attr == "getenv"
                    and isinstance(func.value, ast.Name)
                    and func.value.id == "os"
                )
                or (isinstance(func, ast.Name) and func.id == "getenv")
            ):
                yield name, node.lineno
        elif isinstance(node, ast.ClassDef):
            bases = [b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", "") for b in node.bases]
            # ast.walk goes breadth-first, so a subclass defined later in the file sees its base.
            known = [b for b in bases if b in prefixes]
            if known:
                own = _env_prefix(node)
                prefixes[node.name] = own if own is not None else prefixes[known[0]]
                yield from _settings_fields(node, prefixes[node.name])


def scan_env_reads(root: Path) -> list[EnvRead]:
    """Every environment variable the project's Python files read by name: os.environ[...],
    os.environ.get(...), os.getenv(...), environ[...], and pydantic-settings fields."""
    reads: list[EnvRead] = []
    for path in _python_files(root):
        try:
            tree = ast.parse(path.read_bytes(), filename=str(path))
        except (SyntaxError, ValueError, OSError):
            continue  # a file Python cannot parse cannot read the environment either
        rel = path.relative_to(root).as_posix()
        reads.extend(EnvRead(name, rel, line) for name, line in _reads_in(tree))
    return sorted(reads, key=lambda r: (r.path, r.line, r.name))
