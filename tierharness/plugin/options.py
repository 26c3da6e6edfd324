"""The plugin's options, each declared once (`OPTIONS`): its `--harness-<name>` flag, its ini
key `harness_<name>`, its default, type and help. The plugin registers them from this table,
reads them into one `HarnessOptions` per session, and `harness doctor` reads a project's ini
keys through the same table. No pytest import here: the doctor does not start pytest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import pytest

__all__ = ["MIGRATION_TABLES", "OPTIONS", "HarnessOptions", "Option", "add_options", "option"]

MIGRATION_TABLES = "alembic_version,django_migrations,schema_migrations"
_TRUE = ("1", "true", "yes", "on")


# eq=False here and on HarnessOptions: nothing compares them, and each generated method is
# compiled when the module is imported, in every pytest process, whether the run uses the
# harness or not (`plugin_cost` in docs/benchmarks.md).
@dataclass(frozen=True, eq=False)
class Option:
    """One setting of the plugin: both a command-line option and an ini key."""

    name: str
    help: str
    default: str | None = None
    # "text": a string; "bool": 1/0 (yes/no, on/off); "lines": an ini string's lines or a TOML
    # list, as pytest's "linelist" (a TOML list given to a string option is deprecated by pytest).
    type: Literal["text", "bool", "lines"] = "text"
    switch: bool = False  # on the command line a plain flag (--harness-reuse), not a value

    @property
    def flag(self) -> str:
        return f"--harness-{self.name}"

    @property
    def ini(self) -> str:
        """The ini key, also the command-line option's `dest`."""
        return f"harness_{self.name.replace('-', '_')}"

    @property
    def attr(self) -> str:
        """The field of `HarnessOptions` that holds it."""
        return self.name.replace("-", "_")


OPTIONS: tuple[Option, ...] = (
    Option("postgres-image", "image for the per-worker Postgres (default: the `postgres` logical image)"),
    Option("redis-image", "image for the per-worker Redis (default: the `redis` logical image)"),
    Option("services", "which services each worker gets: postgres,redis or postgres", "postgres,redis"),
    Option("provision", "when: lazy (the first fixture) or early (before conftests are imported)", "lazy"),
    Option("env", "extra VAR=template lines exported for the worker (see [tool.harness.test-env])"),
    Option(
        "env-ignore",
        "variables the project reads that look like database settings but do not choose a database "
        "(DB_POOL_SIZE): names separated by spaces, commas or lines; the guard before harness_migrate "
        "and harness_seed leaves them alone",
        type="lines",
    ),
    Option("migrate", "command applying the project's migrations, run with the worker's environment"),
    Option("seed", "command run after the migrations, before the snapshot"),
    Option("seed-fixture", "session fixture evaluated before the snapshot is taken"),
    Option("keep-tables", "comma-separated tables a reset leaves alone", MIGRATION_TABLES),
    Option("reset", "how a test's database is reset: deletion, truncation or snapshot", "deletion"),
    Option("reset-scope", "how often harness_clean resets: function, module or session", "function"),
    Option("autoclean", "give every test harness_clean (1/0)", "0", type="bool"),
    Option(
        "reuse",
        "keep each worker's containers for the next local run (1/0; never in CI)",
        "0",
        type="bool",
        switch=True,
    ),
    Option(
        "migrate-once",
        "start each worker from a local image of the migrated and seeded database, committed by the "
        "first worker of each migrations' digest (1/0)",
        "1",
        "bool",
    ),
    Option(
        "keep-failed",
        "keep a failed test's database and Redis in labelled containers for a post-mortem "
        "(`python -m tierharness connect <test id>`); with CI set, only from the command line (1/0)",
        "0",
        "bool",
        switch=True,
    ),
    Option("keep-failed-max", "at most this many failed tests kept per run (--harness-keep-failed)", "3"),
    Option(
        "network",
        "how tests reach the worker's services: auto (the engine's host network when the engine runs "
        "on this machine, else ports published on loopback), host or bridge",
        "auto",
    ),
    Option("state-dir", "where run manifests are written", ".harness"),
    Option("image", "image the stack fixture runs (default: the one recorded in build/image.json)"),
    Option(
        "reaper",
        "start the reaper that removes this run's containers if the run is killed (1/0)",
        "1",
        "bool",
    ),
)
_BY_NAME = {o.name: o for o in OPTIONS}


def option(name: str) -> Option:
    """The declaration of `name` ("reset", "env-ignore")."""
    return _BY_NAME[name]


def add_options(parser: pytest.Parser) -> None:
    """Every option, on pytest's command line and in its ini keys."""
    group = parser.getgroup("harness", "per-worker Postgres and Redis containers")
    for o in OPTIONS:
        if o.switch:
            group.addoption(o.flag, dest=o.ini, action="store_const", const="1", help=o.help)
        else:
            group.addoption(o.flag, dest=o.ini, default=None, help=o.help)
        if o.type == "lines":
            parser.addini(o.ini, o.help, type="linelist", default=[])
        else:
            parser.addini(o.ini, o.help, default=o.default)


def _text(value: object) -> str | None:
    return str(value) if value not in (None, "") else None


@dataclass(frozen=True, eq=False)
class HarnessOptions:
    """The options of one session, typed. A text option set to "" reads as unset (None)."""

    postgres_image: str | None
    redis_image: str | None
    services: str | None  # as given (the error names it so): `service_names` splits it
    provision: str
    env: str | None = field(repr=False)  # VAR=template lines: a template may hold a literal password
    env_ignore: str | Sequence[str] | None  # raw: runtime.envguard.parse_ignore reads it
    migrate: str | None
    seed: str | None
    seed_fixture: str | None
    keep_tables: tuple[str, ...]
    reset: str
    reset_scope: str
    autoclean: bool
    reuse: bool
    migrate_once: bool
    keep_failed: bool
    keep_failed_given: bool  # on the command line: the one way to keep anything in CI
    keep_failed_max: str | None  # raw: `keep_failed_limit` checks it
    network: str
    state_dir: str | None  # given on the command line (it beats HARNESS_STATE_DIR), else the ini's
    state_dir_given: bool
    image: str | None
    reaper: bool

    @classmethod
    def read(
        cls, command_line: Callable[[Option], str | None], ini: Callable[[Option], object]
    ) -> HarnessOptions:
        """From the command line, else the ini key (which gives the declared default when unset)."""
        raw: dict[str, object] = {}
        for o in OPTIONS:
            given = command_line(o)
            raw[o.attr] = given if given is not None else ini(o)
        text = {name: _text(value) for name, value in raw.items()}
        return cls(
            postgres_image=text["postgres_image"],
            redis_image=text["redis_image"],
            services=text["services"],
            provision=text["provision"] or "lazy",
            env=text["env"],
            env_ignore=raw["env_ignore"],  # type: ignore[arg-type]
            migrate=text["migrate"],
            seed=text["seed"],
            seed_fixture=text["seed_fixture"],
            keep_tables=tuple(t.strip() for t in (text["keep_tables"] or "").split(",") if t.strip()),
            reset=text["reset"] or "deletion",
            reset_scope=text["reset_scope"] or "function",
            # Set but empty is off, the reaper's default of 1 notwithstanding.
            autoclean=(text["autoclean"] or "0").lower() in _TRUE,
            reuse=(text["reuse"] or "0").lower() in _TRUE,
            migrate_once=(text["migrate_once"] or "0").lower() in _TRUE,
            keep_failed=(text["keep_failed"] or "0").lower() in _TRUE,
            keep_failed_given=command_line(option("keep-failed")) is not None,
            keep_failed_max=text["keep_failed_max"],
            network=text["network"] or "auto",
            state_dir=text["state_dir"],
            state_dir_given=command_line(option("state-dir")) is not None,
            image=text["image"],
            reaper=(text["reaper"] or "0").lower() in _TRUE,
        )

    @property
    def service_names(self) -> set[str]:
        return {s.strip() for s in (self.services or "").split(",") if s.strip()}
