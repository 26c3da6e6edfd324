"""The guard: which database variables the project reads that the harness does not set.

A project's settings read POSTGRES_SERVER, REDIS_URL, ... and fall back to a default (its own
`.env`, localhost:5432) when a variable is unset. A migration command given the worker's
mapping but not such a variable migrates the default database: a developer's own. The
migration's table count notices only afterwards. So before `harness_migrate` or
`harness_seed` starts, the plugin scans the project's Python files for variables read by
name and stops the run when a database variable among them is neither in the worker's
mapping nor in `harness_env_ignore`. `python -m tierharness doctor` reports the same scan,
through the same functions, as its "test env" rows.

The scan is static (nothing of the project is imported): `os.environ[...]`,
`os.environ.get(...)`, `os.getenv(...)`, `environ[...]` with a literal name, and the fields of
pydantic-settings classes (`env_prefix` and aliases applied).
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from tierharness.errors import HarnessError, UnsetVariableError
from tierharness.runtime.templates import PLACEHOLDERS

__all__ = [
    "IGNORE_OPTION",
    "EnvRead",
    "UnsetVariable",
    "database_reads",
    "guard_commands",
    "is_database_variable",
    "parse_ignore",
    "read_dotenv",
    "scan_env_reads",
    "suggested_template",
    "unset_error",
    "unset_fix",
    "unset_variables",
]

# The ini option (and --harness-env-ignore) naming variables the guard leaves alone; declared
# with the plugin's other settings (tierharness.plugin.options.OPTIONS).
IGNORE_OPTION = "harness_env_ignore"


@dataclass(frozen=True)
class EnvRead:
    """A place where the project reads an environment variable."""

    name: str
    path: str  # relative to the project root
    line: int
    # The literal default next to the read (os.environ.get(NAME, "redis://...")), for its URL
    # scheme only; it may hold a password, so it never shows in a repr.
    default: str | None = field(default=None, repr=False, compare=False)

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


# --------------------------------------------------------------------------- what counts

# A name that says it configures a connection to a database, a cache or a broker. POSTGRES,
# DATABASE, REDIS, SQL (SQLALCHEMY_*, MYSQL_*) and BROKER (CELERY_BROKER_URL) anywhere in the
# name; DB and PG only as whole words, or as libpq spells them (PGHOST, DBNAME), so UPGRADE_MODE,
# MONGODB_URI, DBUS_SESSION_BUS_ADDRESS and PGID (a container's group id) do not count.
_DATABASE_NAME = re.compile(
    r"POSTGRES|DATABASE|REDIS|SQL|BROKER"
    r"|(?:^|_)DB(?:HOST|PORT|USER|PASS|PASSWORD|NAME|URL|URI|DSN)?(?:_|$)"
    r"|(?:^|_)PG(?:HOST|HOSTADDR|PORT|DATABASE|USER|PASSWORD|PASSFILE|SERVICE|SERVICEFILE|BOUNCER)?(?:_|$)"
)
# URL schemes of the services the harness gives a worker ("postgresql+psycopg" counts as
# "postgresql"): a variable whose default is such a URL is a database variable, whatever its name.
_SCHEMES = {"postgres": "postgres", "postgresql": "postgres", "redis": "redis", "rediss": "redis"}


def _service_of_url(value: str | None) -> str | None:
    """The service whose URL `value` is ("postgres" or "redis"), else None."""
    if not value or "://" not in value:
        return None
    try:
        scheme = urlsplit(value.strip()).scheme
    except ValueError:
        return None
    return _SCHEMES.get(scheme.split("+", 1)[0].lower())


def is_database_variable(name: str, value: str | None = None) -> bool:
    """By its name (see _DATABASE_NAME), or by its default `value` being a Postgres or Redis URL."""
    return bool(_DATABASE_NAME.search(name.upper())) or _service_of_url(value) is not None


# The placeholder a variable most likely wants, by the last word of its name.
_PART_BY_WORD = {
    "HOST": "host",
    "HOSTNAME": "host",
    "SERVER": "host",
    "PORT": "port",
    "USER": "user",
    "USERNAME": "user",
    "PASSWORD": "password",  # pragma: allowlist secret  (a template field's name, not a value)
    "PASS": "password",
    "DB": "dbname",
    "DBNAME": "dbname",
    "NAME": "dbname",
    "DATABASE": "dbname",
    "URL": "url",
    "URI": "url",
    "DSN": "url",
}
_REDIS_PARTS = ("host", "port", "password", "url")  # RedisInfo has no user or database name


def suggested_template(name: str, value: str | None = None) -> str | None:
    """The template to map `name` with ("{postgres.host}" for POSTGRES_SERVER), or None when
    its name does not say which part of a connection it holds (DB_POOL_SIZE)."""
    words = name.upper().split("_")
    last = words[-1]
    part = _PART_BY_WORD.get(last) or (_PART_BY_WORD.get(last[2:]) if last.startswith("PG") else None)
    by_url = _service_of_url(value)
    service = by_url or ("redis" if any("REDIS" in w or "BROKER" in w for w in words) else "postgres")
    if part is None and by_url:
        part = "url"  # its default is a whole URL: CACHE = "redis://..."
    if part is None or (service == "redis" and part not in _REDIS_PARTS):
        return None
    return f"{{{service}.{part}}}"


# --------------------------------------------------------------------------- the scan

_SKIP_DIRS = {".venv", ".nox", ".tox", "build", "dist", "node_modules", "__pycache__", "tmp", "site-packages"}
# A file without one of these cannot read a variable in any way the scan recognises, so it is
# not parsed (parsing is the scan's cost: in this repository 54 of 164 files hold one, and the
# filter takes about a third off the scan, which runs once per run).
_MARKERS = (b"environ", b"getenv", b"BaseSettings")


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


def _field_default(value: ast.expr | None) -> str | None:
    """A field's literal default: `= "..."`, or `Field("...")` / `Field(default="...")`."""
    if value is None:
        return None
    if isinstance(value, ast.Call):
        return (_string(value.args[0]) if value.args else None) or _keyword(value, ("default",))
    return _string(value)


def _settings_fields(cls: ast.ClassDef, prefix: str) -> Iterator[tuple[str, int, str | None]]:
    for stmt in cls.body:
        if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
            continue
        attr = stmt.target.id
        if attr.startswith("_") or attr == "model_config" or "ClassVar" in ast.unparse(stmt.annotation):
            continue
        # An alias names the variable itself; pydantic-settings does not prefix it.
        alias = _keyword(stmt.value, ("alias", "validation_alias")) if stmt.value else None
        yield (alias or f"{prefix}{attr}").upper(), stmt.lineno, _field_default(stmt.value)


def _reads_in(tree: ast.AST) -> Iterator[tuple[str, int, str | None]]:
    prefixes = {"BaseSettings": ""}  # settings classes seen so far, and their env_prefix
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and _is_environ(node.value):
            name = _string(node.slice)
            if name:
                yield name, node.lineno, None
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
                default = _string(node.args[1]) if len(node.args) > 1 else _keyword(node, ("default",))
                yield name, node.lineno, default
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
            source = path.read_bytes()
            if not any(marker in source for marker in _MARKERS):
                continue
            tree = ast.parse(source, filename=str(path))
        except (SyntaxError, ValueError, OSError):
            continue  # a file Python cannot parse cannot read the environment either
        rel = path.relative_to(root).as_posix()
        reads.extend(EnvRead(name, rel, line, default) for name, line, default in _reads_in(tree))
    return sorted(reads, key=lambda r: (r.path, r.line, r.name))


def read_dotenv(root: Path) -> dict[str, str]:
    """`root/.env` as NAME -> value (`export`, quotes and comments handled; no interpolation):
    what a settings loader falls back to. Only the values' URL schemes are looked at."""
    try:
        text = (root / ".env").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    values = {}
    for raw in text.splitlines():
        line = raw.strip().removeprefix("export ").strip()
        name, sep, value = line.partition("=")
        if not sep or line.startswith("#") or not name.strip().isidentifier():
            continue
        value = value.strip()
        if value[:1] in ("'", '"') and value[-1:] == value[:1] and len(value) > 1:
            value = value[1:-1]
        else:
            value = value.split(" #", 1)[0].strip()
        values[name.strip()] = value
    return values


# --------------------------------------------------------------------------- the check


@dataclass(frozen=True)
class UnsetVariable:
    """A database variable the project reads and the harness does not set."""

    name: str
    places: tuple[EnvRead, ...]  # every read, in file and line order
    template: str | None  # what to map it to, when its name says

    @property
    def where(self) -> str:
        more = f" (and {len(self.places) - 1} more)" if len(self.places) > 1 else ""
        return f"{self.places[0].where}{more}"


def _split_names(raw: str | Sequence[str] | None) -> list[str]:
    if raw is None:
        return []
    lines = raw.splitlines() if isinstance(raw, str) else [str(item) for item in raw]
    words: list[str] = []
    for line in lines:
        words.extend(w for w in re.split(r"[\s,]+", line.split("#", 1)[0]) if w)
    return words


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_ignore(raw: str | Sequence[str] | None, *, source: str) -> frozenset[str]:
    """`harness_env_ignore`: variable names separated by spaces, commas or lines (a TOML list
    too); `#` starts a comment. Anything that is not a variable name is refused."""
    names = _split_names(raw)
    bad = [n for n in names if not _NAME.fullmatch(n)]
    if bad:
        raise HarnessError(
            f"{IGNORE_OPTION} lists {', '.join(repr(b) for b in bad)}, which "
            f"{'is not a variable name' if len(bad) == 1 else 'are not variable names'}",
            checked=f"--harness-env-ignore / ini {IGNORE_OPTION} in {source}",
            fix=f'list variable names only, e.g. {IGNORE_OPTION} = "DB_POOL_SIZE REDIS_KEY_PREFIX"',
        )
    return frozenset(names)


def unset_variables(
    reads: Sequence[EnvRead],
    mapping: Collection[str],
    *,
    ignore: Collection[str] = (),
    dotenv: Mapping[str, str] | None = None,
) -> list[UnsetVariable]:
    """The database variables in `reads` that `mapping` (the names the harness sets for a
    worker) does not cover and `ignore` does not name, by name. `dotenv` (the project's .env)
    makes a variable whose value there is a Postgres or Redis URL a database variable too."""
    dotenv = dotenv or {}
    read_names = {r.name for r in reads}
    by_name: dict[str, list[EnvRead]] = {}
    for read in reads:
        by_name.setdefault(read.name, []).append(read)

    def covered(var: str) -> bool:
        # X_FILE is the secrets-file spelling of X: read only when X is unset, so it is
        # covered when X is both provided and read.
        base = var.removesuffix("_FILE")
        return var in mapping or (base != var and base in mapping and base in read_names)

    unset = []
    for var, places in sorted(by_name.items()):
        value = next((p.default for p in places if p.default), None) or dotenv.get(var)
        if var in ignore or covered(var) or not is_database_variable(var, value):
            continue
        ordered = tuple(sorted(places, key=lambda r: (r.path, r.line)))
        unset.append(UnsetVariable(var, ordered, suggested_template(var, value)))
    return unset


def database_reads(reads: Sequence[EnvRead], dotenv: Mapping[str, str] | None = None) -> list[str]:
    """The names of the database variables among `reads`, sorted (for a PASS line)."""
    dotenv = dotenv or {}
    names = {r.name for r in reads if is_database_variable(r.name, r.default or dotenv.get(r.name))}
    return sorted(names)


def unset_fix(unset: Sequence[UnsetVariable]) -> str:
    """How to cover `unset`: what to add to [tool.harness.test-env], or else the ignore list."""
    lines = ", ".join(f'{u.name} = "{u.template or "<a placeholder>"}"' for u in unset)
    fix = f"map {'it' if len(unset) == 1 else 'each'} in [tool.harness.test-env] in pyproject.toml: {lines}"
    if any(not u.template for u in unset):
        fix += f" (placeholders: {PLACEHOLDERS})"
    example = next((u.name for u in unset if not u.template), "DB_POOL_SIZE")
    return (
        f"{fix}, or as harness_env lines (VAR=template); a variable that does not choose which database "
        f'to use goes in the ini option {IGNORE_OPTION} instead (e.g. {IGNORE_OPTION} = "{example}")'
    )


def unset_error(
    unset: Sequence[UnsetVariable],
    *,
    root: Path,
    commands: Mapping[str, str],
    mapping: Iterable[str],
    ignore: Collection[str],
) -> UnsetVariableError:
    """The error that stops a run before `commands` (setting -> command) start."""
    names = ", ".join(f"{u.name} (read at {u.where})" for u in unset)
    ran = " and ".join(f"{setting} `{command}`" for setting, command in commands.items())
    ignored = ", ".join(sorted(ignore)) or "none"
    return UnsetVariableError(
        f"the project reads database variables that the harness does not set: {names}. "
        f"Not started: {ran}; with them unset it would use whatever they default to (a .env file, a "
        "server on localhost), not the worker's database",
        checked=f"variables read by name (os.environ, os.getenv, pydantic-settings fields) in the Python "
        f"files under {root}, against what the harness sets for a worker: {', '.join(sorted(mapping))} "
        f"([tool.harness.test-env], harness_env and the defaults); {IGNORE_OPTION}: {ignored}",
        fix=unset_fix(unset),
    )


def guard_commands(
    root: Path,
    mapping: Collection[str],
    *,
    commands: Mapping[str, str],
    ignore: Collection[str] = (),
) -> None:
    """Before the project's `commands` (setting -> command) run for a worker: raise when the
    project reads a database variable that `mapping` does not set and `ignore` does not name."""
    if not commands:
        return
    unset = unset_variables(scan_env_reads(root), mapping, ignore=ignore, dotenv=read_dotenv(root))
    if unset:
        raise unset_error(unset, root=root, commands=commands, mapping=mapping, ignore=ignore)
