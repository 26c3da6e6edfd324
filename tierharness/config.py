"""Configuration, read in one place: `[tool.harness]` in pyproject.toml, parsed into typed
dataclasses, and every environment variable the harness honours.

Every table rejects keys it does not know, naming the key and the table, so a typo
is an error and not a silently ignored setting. Every option is declared once: the
perf options below generate both the command-line flags of `harness perf` and the
Locust options of the gate. The README lists every setting.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, TypeVar

from tierharness.errors import HarnessError

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

ImageKind = Literal["rootfs", "dockerfile"]


# --------------------------------------------------------------------------- environment


@dataclass(frozen=True)
class Environment:
    """Every environment variable the harness reads, read when asked (never at import)."""

    project_root: str | None
    state_dir: str | None
    build_dir: str | None
    image_refs: Mapping[str, str]  # HARNESS_IMAGE_<NAME>_REF, by lower-case logical name
    debian_mirror: str | None
    engine_timeout: float
    ready_timeout: float
    reaper_grace: float
    run_id: str | None
    docker_host: str | None
    exec_path: str  # PATH: where `harness doctor` looks for the migration command
    source_date_epoch: int | None
    reuse_idle: float  # seconds a kept (--harness-reuse) worker may stay unused
    # HARNESS_ORPHAN_AGE: seconds after which a run whose owner cannot be judged from here
    # (another pid namespace or host, older labels) is swept all the same (docs/dead-runs.md)
    orphan_age: float
    ci: bool  # a CI run: never keeps containers for reuse
    build_cache_from: str | None  # HARNESS_BUILD_CACHE_FROM: a BuildKit --cache-from (off by default)
    build_cache_to: str | None  # HARNESS_BUILD_CACHE_TO: a BuildKit --cache-to (off by default)
    # HARNESS_BUILD_CACHE_IDLE: seconds a build cache record may go unused before
    # `harness clean --prune` prunes it (tierharness.build.retention)
    build_cache_idle: float
    xdist_worker: str | None  # PYTEST_XDIST_WORKER: set in a worker before its config exists
    controller: str | None  # HARNESS_CONTROLLER: "<run id>:<pid>", from the run's controller
    key_dir: str | None = None  # HARNESS_KEY_DIR: where `harness keys` keeps the signing key pair
    config_home: str | None = None  # XDG_CONFIG_HOME, else ~/.config: the default key folder's parent
    # HARNESS_CACHE_DIR, else $XDG_CACHE_HOME/harness, else ~/.cache/harness: what every checkout
    # of this machine may share, content-addressed (`machine_cache`)
    cache_dir: str = ""
    # HARNESS_KEY_PASSWORD or the file HARNESS_KEY_PASSWORD_FILE names; never in a repr.
    key_password: str | None = field(default=None, repr=False)
    key_password_file: str | None = field(default=None, repr=False)  # a path, kept out of reprs all the same
    verify: bool | Literal["auto"] | None = None  # HARNESS_VERIFY (1, 0 or auto): overrides the table's
    builder: str | None = None  # HARNESS_BUILDER: the buildx builder to build with (default: the engine's)
    docker_tls_verify: bool = False  # DOCKER_TLS_VERIFY: TLS to DOCKER_HOST, the engine's CA checked
    docker_cert_path: str | None = None  # DOCKER_CERT_PATH: ca.pem, cert.pem, key.pem for DOCKER_HOST
    docker_context: str | None = None  # DOCKER_CONTEXT: the docker context, when DOCKER_HOST is unset

    @classmethod
    def read(cls, environ: Mapping[str, str] | None = None) -> Environment:
        env = os.environ if environ is None else environ
        refs = {
            key[len("HARNESS_IMAGE_") : -len("_REF")].lower(): value
            for key, value in env.items()
            if key.startswith("HARNESS_IMAGE_") and key.endswith("_REF") and value
        }
        sde = env.get("SOURCE_DATE_EPOCH") or None
        cache_home = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".cache")
        return cls(
            project_root=env.get("HARNESS_PROJECT_ROOT") or None,
            state_dir=env.get("HARNESS_STATE_DIR") or None,
            build_dir=env.get("HARNESS_BUILD_DIR") or None,
            image_refs=refs,
            debian_mirror=env.get("HARNESS_DEBIAN_MIRROR") or None,
            engine_timeout=_number(env, "HARNESS_ENGINE_TIMEOUT", 5.0),
            ready_timeout=_number(env, "HARNESS_READY_TIMEOUT", 60.0),
            reaper_grace=_number(env, "HARNESS_REAPER_GRACE", 12.0),
            run_id=env.get("HARNESS_RUN_ID") or None,
            docker_host=env.get("DOCKER_HOST") or None,
            exec_path=env.get("PATH") or os.defpath,
            source_date_epoch=int(_number(env, "SOURCE_DATE_EPOCH", 0)) if sde else None,
            reuse_idle=_number(env, "HARNESS_REUSE_IDLE", 4 * 3600.0),
            orphan_age=_number(env, "HARNESS_ORPHAN_AGE", 24 * 3600.0),
            ci=env.get("CI", "").lower() not in ("", "0", "false", "no"),
            build_cache_from=env.get("HARNESS_BUILD_CACHE_FROM") or None,
            build_cache_to=env.get("HARNESS_BUILD_CACHE_TO") or None,
            build_cache_idle=_number(env, "HARNESS_BUILD_CACHE_IDLE", 6 * 3600.0),
            xdist_worker=env.get("PYTEST_XDIST_WORKER") or None,
            controller=env.get("HARNESS_CONTROLLER") or None,
            key_dir=env.get("HARNESS_KEY_DIR") or None,
            config_home=env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config"),
            cache_dir=env.get("HARNESS_CACHE_DIR") or str(Path(cache_home) / "harness"),
            key_password=env.get("HARNESS_KEY_PASSWORD") or None,
            key_password_file=env.get("HARNESS_KEY_PASSWORD_FILE") or None,
            verify="auto" if env.get("HARNESS_VERIFY", "").strip().lower() == "auto" else _flag(env, _VERIFY),
            builder=env.get("HARNESS_BUILDER") or None,
            # Set at all means TLS, as for the docker CLI and SDK ("0" too: they test presence).
            docker_tls_verify=bool(env.get("DOCKER_TLS_VERIFY")),
            docker_cert_path=env.get("DOCKER_CERT_PATH") or None,
            docker_context=env.get("DOCKER_CONTEXT") or None,
        )

    def signing_password(self) -> str:
        """The signing key's password: HARNESS_KEY_PASSWORD, else the first line of the file
        HARNESS_KEY_PASSWORD_FILE names (what CI secrets and Docker secrets give)."""
        if self.key_password:
            return self.key_password
        if self.key_password_file:
            try:
                text = Path(self.key_password_file).read_text(encoding="utf-8")
            except OSError as exc:
                raise HarnessError(
                    f"HARNESS_KEY_PASSWORD_FILE names a file that cannot be read: {exc.strerror}",
                    checked=f"HARNESS_KEY_PASSWORD_FILE={self.key_password_file}",
                    fix="point it at a readable file holding the key password",
                ) from None
            password = text.splitlines()[0] if text.strip() else ""
            if password:
                return password
        raise HarnessError(
            "no password for the signing key",
            checked="HARNESS_KEY_PASSWORD, then the file named by HARNESS_KEY_PASSWORD_FILE",
            fix="export HARNESS_KEY_PASSWORD, or HARNESS_KEY_PASSWORD_FILE=/path/to/a/file holding it",
        )

    @property
    def engine_is_local(self) -> bool:
        """A unix socket (or the default one): published ports are reached on loopback."""
        return self.docker_host is None or self.docker_host.startswith("unix://")


_VERIFY = "HARNESS_VERIFY"


def _flag(env: Mapping[str, str], name: str) -> bool | None:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return None
    if raw in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        return raw in ("1", "true", "yes", "on")
    raise HarnessError(
        f"{name}={raw!r} is not a yes/no value",
        checked=f"the environment variable {name}",
        fix=f"set {name} to 1 or 0, or unset it",
    )


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise HarnessError(
            f"{name}={raw!r} is not a number",
            checked=f"the environment variable {name}",
            fix=f"set {name} to a number of seconds, or unset it (default {default:g})",
        ) from None


# Variables only one child needs (the key password: cosign, as COSIGN_PASSWORD), kept by the
# harness instead of its environment, which every child inherits: xdist workers, the project's
# migrate and seed commands, Locust.
_SECRET_VARS = ("HARNESS_KEY_PASSWORD",)
_withheld: dict[str, str] = {}


def withhold_secrets() -> None:
    """Take the secrets out of this process's environment, keeping them for `environment()`.
    Called first by the command line and the pytest plugin, before any child is started."""
    for name in _SECRET_VARS:
        value = os.environ.pop(name, None)
        if value is not None:
            _withheld[name] = value


def environment() -> Environment:
    """The environment as it is now (tests change it with monkeypatch; nothing is cached),
    with the secrets `withhold_secrets` took out of it; a value set since then wins."""
    return Environment.read({**_withheld, **os.environ})


def machine_cache(name: str = "") -> Path:
    """A folder of the machine's cache, which every checkout shares: `wheels`, `layer-scans`, `mypy`."""
    base = Path(environment().cache_dir)
    return base / name if name else base


def child_env(
    extra: Mapping[str, str] | None = None,
    *,
    drop: Iterable[str] = (),
    prepend: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """This process's environment for a child process: `extra` set, `drop` removed, and each
    `prepend` value put in front of that path-like variable (PATH, PYTHONPATH). Never the
    secrets, even when set in this process since `withhold_secrets`: a child that needs one
    gets it in `extra`, under the name it reads."""
    dropped = {*drop, *_SECRET_VARS}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(extra or {})
    for name, first in (prepend or {}).items():
        env[name] = os.pathsep.join(p for p in (first, env.get(name, "")) if p)
    return env


def pip_child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a pip that must see PyPI's files, whose hashes the lockfiles carry:
    the machine's own pip configuration (local indexes, find-links, constraints) switched off."""
    return child_env(
        {"PIP_CONFIG_FILE": os.devnull, **(extra or {})},
        drop=("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_INDEX_URL", "PIP_CONSTRAINT"),
    )


# --------------------------------------------------------------------------- tables


def _table(value: Any, where: str, known: Iterable[str], path: Path) -> Mapping[str, Any]:
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


def _typed(table: Mapping[str, Any], key: str, kind: type[T], default: T, where: str) -> T:
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


def _strings(table: Mapping[str, Any], key: str, default: tuple[str, ...], where: str) -> tuple[str, ...]:
    value = table.get(key, list(default))
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise HarnessError(
            f"[{where}].{key} must be a list of strings, not {value!r}",
            checked=f"[{where}].{key}",
            fix=f'write {key} = ["a", "b"]',
        )
    return tuple(value)


@dataclass(frozen=True)
class LogicalImage:
    """A logical image: a registry reference and an offline recipe that both yield `local`.
    Only a reference pinned by digest is pulled, or a tag-only one whose image table says
    `allow-floating = true` (tierharness.build.images)."""

    name: str
    ref: str
    local: str
    recipe: Path
    kind: ImageKind  # "rootfs" (mmdebstrap + FROM scratch) or "dockerfile"
    depends_on: str | None = None
    suite: str = "trixie"
    packages: tuple[str, ...] = ()
    source_date_epoch: int = 0
    # `allow-floating`: a tag-only `ref` may be pulled, and a copy pulled from it trusted. Off by
    # default: a tag is whatever the registry says today, which no lockfile or recipe pins.
    allow_floating: bool = False

    @property
    def pinned_digest(self) -> str | None:
        """The digest of `ref` when it is pinned (`name:tag@sha256:...`), else None."""
        return self.ref.partition("@")[2] or None

    @property
    def floating(self) -> bool:
        """`ref` names a tag only (`postgres:17`): what it points at can change under us."""
        return bool(self.ref) and self.pinned_digest is None


def _images_table(value: Any, path: Path) -> Mapping[str, Any]:
    """`[tool.harness.images]`: any name, each a table of its own."""
    if not isinstance(value, Mapping):
        raise HarnessError(
            "[tool.harness.images] must be a table of images",
            checked=str(path),
            fix="write one [tool.harness.images.<name>] table per logical image",
        )
    return value


RECIPES = Path(__file__).resolve().parent / "recipes"
# The harness's own logical images, used unless a project's [tool.harness.images.<name>]
# says otherwise (key by key). Their offline recipes ship inside the package. Each `ref` is the
# upstream image its recipe stands in for, as a tag: never pulled unless the project pins it by
# digest or sets `allow-floating = true` for that image, so by default, online or not, every
# image is built from its recipe and its packages.lock.
DEFAULT_IMAGES: Mapping[str, Mapping[str, Any]] = {
    "base": {
        "ref": "python:3.13-slim-trixie",
        "local": "harness/base:3.13-trixie",
        "kind": "rootfs",
        "suite": "trixie",
        "packages": ["python3", "python3-venv", "ca-certificates", "tzdata"],
        # 2026-01-01: fixed, so the base is a pure function of its inputs.
        "source-date-epoch": 1767225600,
    },
    # For Dockerfile images, `packages` is what `nox -s lock -- --images` resolves on `base`
    # into the recipe's packages.lock, which the recipe installs.
    "postgres": {
        "ref": "postgres:17",
        "local": "harness/postgres:17",
        "kind": "dockerfile",
        "depends-on": "base",
        "packages": ["postgresql-17"],
    },
    "redis": {
        "ref": "redis:7",
        "local": "harness/redis:7",
        "kind": "dockerfile",
        "depends-on": "base",
        "packages": ["redis-server", "redis-tools"],
    },
    # The loopback registry `harness publish` pushes to (distribution 2.8, Debian's package).
    # Always the offline recipe: its entrypoint and config paths are the harness's own, which
    # an upstream `registry:2` does not have.
    "registry": {
        "ref": "harness/registry:2.8",
        "local": "harness/registry:2.8",
        "kind": "dockerfile",
        "depends-on": "base",
        "packages": ["docker-registry", "apache2-utils"],
    },
    # The second engine in a privileged container, for users who are not root
    # (tierharness/supply/engines.py). Always the offline recipe, like `registry`.
    "engine": {
        "ref": "harness/engine:26",
        "local": "harness/engine:26",
        "kind": "dockerfile",
        "depends-on": "base",
        "packages": ["docker.io", "containerd", "runc", "docker-buildx", "docker-cli", "iptables", "pigz"],
    },
    # The deploy rehearsal's proxy and monitoring (tierharness/deploy/).
    "haproxy": {
        "ref": "haproxy:3.0",
        "local": "harness/haproxy:3",
        "kind": "dockerfile",
        "depends-on": "base",
        "packages": ["haproxy"],
    },
    "prometheus": {
        "ref": "prom/prometheus:v2.53.3",
        "local": "harness/prometheus:2",
        "kind": "dockerfile",
        "depends-on": "base",
        "packages": ["prometheus"],
    },
}

_PINNED = re.compile(r"sha256:[0-9a-f]{64}")
_IMAGE_KEYS = (
    "ref", "local", "recipe", "kind", "depends-on", "suite", "packages", "source-date-epoch",
    "allow-floating",
)  # fmt: skip


def _image_specs(
    root: Path, path: Path, table: Mapping[str, Any], env: Environment
) -> dict[str, LogicalImage]:
    specs: dict[str, LogicalImage] = {}
    for name in [*DEFAULT_IMAGES, *(n for n in table if n not in DEFAULT_IMAGES)]:
        where = f"tool.harness.images.{name}"
        own = _table(table.get(name, {}), where, _IMAGE_KEYS, path)
        default = DEFAULT_IMAGES.get(name, {})
        body = {**default, "recipe": str(RECIPES / name), **own} if default else dict(own)
        missing = [k for k in ("ref", "local", "recipe", "kind") if k not in body]
        if missing:
            raise HarnessError(
                f"image {name!r} is missing {', '.join(missing)}",
                checked=f"[{where}] in {path}",
                fix="give every logical image of your own ref, local, recipe and kind "
                f"(the harness's own, {', '.join(DEFAULT_IMAGES)}, need none of them)",
            )
        kind = body["kind"]
        if kind not in ("rootfs", "dockerfile"):
            raise HarnessError(
                f"image {name!r} has unknown kind {kind!r}",
                checked=f"[{where}].kind",
                fix='use kind = "rootfs" or kind = "dockerfile"',
            )
        depends_on = body.get("depends-on")
        ref = env.image_refs.get(name.lower(), _typed(body, "ref", str, "", where))
        if "@" in ref and not _PINNED.fullmatch(ref.partition("@")[2]):
            raise HarnessError(
                f"image {name!r}: {ref!r} is not pinned by a sha256 digest",
                checked=f"[{where}].ref (or HARNESS_IMAGE_{name.upper()}_REF)",
                fix="write it as name:tag@sha256:<64 hex digits>, or drop the @ part",
            )
        specs[name] = LogicalImage(
            name=name,
            # A registry reference can be overridden per image, e.g. to pin a digest in CI.
            ref=ref,
            local=_typed(body, "local", str, "", where),
            recipe=root / _typed(body, "recipe", str, "", where),
            kind=kind,
            depends_on=str(depends_on) if depends_on else None,
            suite=_typed(body, "suite", str, "trixie", where),
            packages=_strings(body, "packages", (), where),
            source_date_epoch=_typed(body, "source-date-epoch", int, 0, where),
            # With a pinned ref (say from HARNESS_IMAGE_<NAME>_REF in CI) the pin decides and this
            # is moot, so the two are not refused together.
            allow_floating=_typed(body, "allow-floating", bool, False, where),
        )
    for spec in specs.values():
        if spec.depends_on and spec.depends_on not in specs:
            raise HarnessError(
                f"image {spec.name!r} depends on unknown image {spec.depends_on!r}",
                checked="[tool.harness.images.*].depends-on",
                fix=f"define [tool.harness.images.{spec.depends_on}] or drop depends-on",
            )
    return specs


@dataclass(frozen=True)
class LockConfig:
    """`[tool.harness.lock]`: where the lockfile inputs live, and their compile order."""

    dir: Path
    files: tuple[str, ...]


@dataclass(frozen=True)
class BuildConfig:
    """`[tool.harness.build]`: what image to build, from which Dockerfile and lockfiles."""

    image: str = "app"
    dockerfile: str = "Dockerfile"
    target: str = "production"
    test_target: str | None = None
    lockfiles: tuple[str, ...] = ("app",)
    base_image: str = "base"
    python_version: str = "3.13"
    setuid_allowlist: tuple[str, ...] = ()
    source_url: str = "unknown"  # used when the checkout has no remote
    keep_images: int = 3  # per-commit tags of `image` kept in the engine (tierharness.build.retention)

    @classmethod
    def parse(cls, raw: Any, path: Path) -> BuildConfig:
        where = "tool.harness.build"
        table = _table(raw, where, [f.name.replace("_", "-") for f in fields(cls)], path)
        d = cls()
        test_target = table.get("test-target")
        keep_images = _typed(table, "keep-images", int, d.keep_images, where)
        if isinstance(keep_images, bool) or keep_images < 1:
            raise HarnessError(
                f"[{where}].keep-images must be 1 or more, not {keep_images!r}",
                checked=f"[{where}].keep-images in {path}",
                fix="the image just built is always kept: write keep-images = 1 or more",
            )
        return cls(
            image=_typed(table, "image", str, d.image, where),
            dockerfile=_typed(table, "dockerfile", str, d.dockerfile, where),
            target=_typed(table, "target", str, d.target, where),
            test_target=str(test_target) if test_target else None,
            lockfiles=_strings(table, "lockfiles", d.lockfiles, where),
            base_image=_typed(table, "base-image", str, d.base_image, where),
            python_version=_typed(table, "python-version", str, d.python_version, where),
            setuid_allowlist=_strings(table, "setuid-allowlist", d.setuid_allowlist, where),
            source_url=_typed(table, "source-url", str, d.source_url, where),
            keep_images=keep_images,
        )


def _templates(value: Any, where: str, path: Path) -> dict[str, str]:
    """A table of environment variable -> template string."""
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        raise HarnessError(
            f"[{where}] must map variable names to template strings",
            checked=f"[{where}] in {path}",
            fix='write VARIABLE = "template with {postgres.host} and the like"',
        )
    return dict(value)


@dataclass(frozen=True)
class StackConfig:
    """`[tool.harness.stack]`: how to run the built image beside its Postgres and Redis."""

    port: int = 8000
    health_timeout: float = 90.0
    env: Mapping[str, str] = field(default_factory=dict)  # templates, see runtime.stack
    api_key_names: tuple[str, ...] = ("e2e",)

    @classmethod
    def parse(cls, raw: Any, path: Path) -> StackConfig:
        where = "tool.harness.stack"
        table = _table(raw, where, ("port", "health-timeout", "api-keys", "env"), path)
        env = _templates(table.get("env", {}), f"{where}.env", path)
        d = cls()
        return cls(
            port=_typed(table, "port", int, d.port, where),
            health_timeout=_typed(table, "health-timeout", float, d.health_timeout, where),
            env=env,
            api_key_names=_strings(table, "api-keys", d.api_key_names, where),
        )


@dataclass(frozen=True)
class PerfOption:
    """One perf option, declared once: its `[tool.harness.perf]` key is `name`, its flag `--name`
    (both for `harness perf` and, when `gate` is set, for Locust, where the gate reads it)."""

    name: str
    kind: type[float] | type[int] | type[str]
    default: float | int | str
    help: str
    gate: bool = False

    @property
    def attr(self) -> str:
        return self.name.replace("-", "_")


PERF_OPTIONS: tuple[PerfOption, ...] = (
    PerfOption("users", int, 10, "simulated users"),
    PerfOption("spawn-rate", float, 10.0, "users started per second"),
    PerfOption("duration", str, "30s", "Locust run time, e.g. 30s or 2m"),
    PerfOption("p95-ms", float, 100.0, "fail when the p95 response time (ms) exceeds this", gate=True),
    PerfOption("max-fail-ratio", float, 0.01, "fail when more than this share of requests fail", gate=True),
    PerfOption("min-rps", float, 50.0, "fail when fewer requests per second were served", gate=True),
    PerfOption("min-requests", int, 200, "declare the run invalid below this many requests", gate=True),
)
_PERF_DEFAULTS = {o.attr: o.default for o in PERF_OPTIONS}


@dataclass(frozen=True)
class PerfConfig:
    """`[tool.harness.perf]`: the load shape and the thresholds that gate it (see PERF_OPTIONS)."""

    locustfile: str = "tests/performance/locustfile.py"
    users: int = int(_PERF_DEFAULTS["users"])
    spawn_rate: float = float(_PERF_DEFAULTS["spawn_rate"])
    duration: str = str(_PERF_DEFAULTS["duration"])
    p95_ms: float = float(_PERF_DEFAULTS["p95_ms"])
    max_fail_ratio: float = float(_PERF_DEFAULTS["max_fail_ratio"])
    min_rps: float = float(_PERF_DEFAULTS["min_rps"])
    min_requests: int = int(_PERF_DEFAULTS["min_requests"])

    @classmethod
    def parse(cls, raw: Any, path: Path) -> PerfConfig:
        where = "tool.harness.perf"
        table = _table(raw, where, ["locustfile", *(o.name for o in PERF_OPTIONS)], path)
        values: dict[str, Any] = {"locustfile": _typed(table, "locustfile", str, cls.locustfile, where)}
        for option in PERF_OPTIONS:
            if option.name in table:
                values[option.attr] = _typed(table, option.name, option.kind, option.default, where)
        return cls(**values)

    def override(self, **values: Any) -> PerfConfig:
        return replace(self, **{k: v for k, v in values.items() if v is not None})


_SEVERITY_NAMES = ("low", "medium", "high", "critical")


@dataclass(frozen=True)
class LicencePolicy:
    """`[tool.harness.security.licences]`: allowed licences (SPDX ids or the names packages
    state), and packages accepted whatever their licence, each with its reason."""

    allow: tuple[str, ...] = ()
    exceptions: Mapping[str, str] = field(default_factory=dict)  # package -> reason

    @classmethod
    def parse(cls, raw: Any, path: Path) -> LicencePolicy:
        where = "tool.harness.security.licences"
        table = _table(raw, where, ("allow", "exceptions"), path)
        exceptions = table.get("exceptions", {})
        if not isinstance(exceptions, Mapping) or not all(
            isinstance(v, str) and v.strip() for v in exceptions.values()
        ):
            raise HarnessError(
                f"[{where}.exceptions] must map package names to a reason",
                checked=f"[{where}.exceptions] in {path}",
                fix='write package = "why this licence is acceptable here"',
            )
        return cls(
            allow=_strings(table, "allow", (), where),
            exceptions={k.lower().replace("_", "-"): v for k, v in exceptions.items()},
        )


@dataclass(frozen=True)
class SecurityConfig:
    """`[tool.harness.security]`: what `nox -s security` checks and where it gates."""

    fail_on: str = "medium"  # findings at or above this severity fail the gate
    baseline: str = "security-baseline.toml"
    source: tuple[str, ...] = ("tierharness", "services")  # bandit's paths
    dockerfiles: tuple[str, ...] = ("Dockerfile", "Dockerfile.*")  # globs
    workflows: str = ".github/workflows"
    secrets_exclude: tuple[str, ...] = ()  # regexes of paths detect-secrets skips
    licences: LicencePolicy = field(default_factory=LicencePolicy)

    @classmethod
    def parse(cls, raw: Any, path: Path) -> SecurityConfig:
        where = "tool.harness.security"
        keys = ("fail-on", "baseline", "source", "dockerfiles", "workflows", "secrets-exclude", "licences")
        table = _table(raw, where, keys, path)
        d = cls()
        fail_on = _typed(table, "fail-on", str, d.fail_on, where)
        if fail_on not in _SEVERITY_NAMES:
            raise HarnessError(
                f"[{where}].fail-on = {fail_on!r} is not a severity",
                checked=f"[{where}].fail-on in {path}",
                fix=f"use one of: {', '.join(_SEVERITY_NAMES)}",
            )
        return cls(
            fail_on=fail_on,
            baseline=_typed(table, "baseline", str, d.baseline, where),
            source=_strings(table, "source", d.source, where),
            dockerfiles=_strings(table, "dockerfiles", d.dockerfiles, where),
            workflows=_typed(table, "workflows", str, d.workflows, where),
            secrets_exclude=_strings(table, "secrets-exclude", d.secrets_exclude, where),
            licences=LicencePolicy.parse(table.get("licences", {}), path),
        )


@dataclass(frozen=True)
class SupplyConfig:
    """`[tool.harness.supply]`: the loopback registry, the signing key, verify-before-run."""

    repository: str | None = None  # default: [tool.harness.build] image
    registry_image: str = "registry"  # the logical image the registry runs from
    registry_port: int = 0  # 0: a random free port on 127.0.0.1
    registry_timeout: float = 30.0  # seconds the registry has to answer
    key_dir: str | None = None  # default: $XDG_CONFIG_HOME/harness/keys/<repository>
    # Stacks run the image by digest from the registry, verified first: true, false, or "auto"
    # (verified wherever the signing key pair is there: see Settings.verification).
    verify: bool | Literal["auto"] = "auto"

    @classmethod
    def parse(cls, raw: Any, path: Path) -> SupplyConfig:
        where = "tool.harness.supply"
        table = _table(raw, where, [f.name.replace("_", "-") for f in fields(cls)], path)
        d = cls()
        repository, key_dir = table.get("repository"), table.get("key-dir")
        port = _typed(table, "registry-port", int, d.registry_port, where)
        if not 0 <= port <= 65535:
            raise HarnessError(
                f"[{where}].registry-port = {port} is not a port",
                checked=f"[{where}].registry-port in {path}",
                fix="use 0 (a random free port) or a port between 1 and 65535",
            )
        return cls(
            repository=str(repository) if repository else None,
            registry_image=_typed(table, "registry-image", str, d.registry_image, where),
            registry_port=port,
            registry_timeout=_typed(table, "registry-timeout", float, d.registry_timeout, where),
            key_dir=str(key_dir) if key_dir else None,
            verify=_verify_setting(table.get("verify", d.verify), where, path),
        )


def _verify_setting(value: Any, where: str, path: Path) -> bool | Literal["auto"]:
    if isinstance(value, bool) or value == "auto":
        return value  # type: ignore[no-any-return]
    raise HarnessError(
        f'[{where}].verify = {value!r} is not true, false or "auto"',
        checked=f"[{where}].verify in {path}",
        fix='write verify = true, verify = false, or verify = "auto" (the default)',
    )


@dataclass(frozen=True)
class DeployConfig:
    """`[tool.harness.deploy]`: the blue-green rehearsal, its alerts and secret rotation."""

    alerts: str = "monitoring/alerts.yml"  # the rules that page, and that roll a deploy back
    alert_tests: str = "monitoring/tests/alerts_test.yml"  # promtool rule tests
    candidates: str = "deploy/candidates"  # recipes of broken candidates, one folder each
    proxy_port: int = 0  # 0: a free port on 127.0.0.1
    settle_seconds: float = 10.0  # green watched against the alerts after the switch
    alert_hold: str = "1s"  # each rule's `for:` during the rehearsal (minutes would not fit)
    scrape_interval: str = "1s"
    drain_timeout: float = 10.0  # seconds blue gets to finish its requests
    rollback_limit: float = 10.0  # seconds from a bad signal to blue serving alone, at most
    health_interval: float = 1.0  # the candidate's HEALTHCHECK interval during the rehearsal
    smoke_requests: int = 5
    users: int = 10  # Locust users throughout the rehearsal
    reload_seconds: float = 1.0  # how often the service re-reads rotated secret files
    k8s: str = "deploy/k8s"

    @classmethod
    def parse(cls, raw: Any, path: Path) -> DeployConfig:
        where = "tool.harness.deploy"
        table = _table(raw, where, [f.name.replace("_", "-") for f in fields(cls)], path)
        d = cls()
        values: dict[str, Any] = {}
        for f in fields(cls):
            default = getattr(d, f.name)
            values[f.name] = _typed(table, f.name.replace("_", "-"), type(default), default, where)
        return cls(**values)


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    root: Path
    state_dir: Path
    build_dir: Path
    images: Mapping[str, LogicalImage]
    lock: LockConfig
    build: BuildConfig
    stack: StackConfig
    perf: PerfConfig
    deploy: DeployConfig = field(default_factory=DeployConfig)
    test_env: Mapping[str, str] = field(default_factory=dict)  # [tool.harness.test-env] templates
    security: SecurityConfig = field(default_factory=SecurityConfig)
    supply: SupplyConfig = field(default_factory=SupplyConfig)

    @property
    def repository(self) -> str:
        """The repository the image is published under in the registry."""
        return self.supply.repository or self.build.image

    @property
    def verify_before_run(self) -> bool:
        """Whether stacks run the image verified, by digest, from the registry."""
        return self.verification()[0]

    def verification(self) -> tuple[bool, str]:
        """(on, why): HARNESS_VERIFY, else [tool.harness.supply] verify. "auto" (the default) is
        on wherever the signing key pair is there (`key_files`), a sign that this machine
        publishes, off elsewhere. On by choice without the pair is an error: nothing could
        be verified, and running the image unverified is what was ruled out."""
        env = environment().verify
        chosen, source = (
            (self.supply.verify, "[tool.harness.supply] verify") if env is None else (env, "HARNESS_VERIFY")
        )
        missing = [str(p) for p in self.key_files if not p.is_file()]
        if chosen is False:
            return False, f"verify-before-run is off ({source})"
        if chosen == "auto":
            if missing:
                return False, f"no signing key pair ({', '.join(missing)} missing), and {source} is auto"
            return True, f"the signing key pair is in {self.key_dir}, and {source} is auto"
        if missing:
            raise HarnessError(
                f"verify-before-run is on ({source}), but there is no key pair to verify with: "
                f"{', '.join(missing)} missing",
                checked=f"{source}, then the key files in {self.key_dir} "
                "(HARNESS_KEY_DIR, [tool.harness.supply] key-dir)",
                fix="make the pair and publish the image (`python -m tierharness keys`, `nox -s publish`), "
                'point HARNESS_KEY_DIR at the pair, or set verify = "auto" (unverified where there is none)',
            )
        return True, f"{source} is on"

    @property
    def key_files(self) -> tuple[Path, Path]:
        """The signing key pair: the private key (cosign.key) and the public one (cosign.pub)."""
        return self.key_dir / "cosign.key", self.key_dir / "cosign.pub"

    @property
    def key_dir(self) -> Path:
        """Where the signing key pair lives: outside the checkout unless configured there
        (and then refused by `harness keys`)."""
        env = environment()
        chosen = env.key_dir or self.supply.key_dir
        if chosen:
            return (self.root / Path(chosen).expanduser()).resolve()
        name = self.repository.replace("/", "-")
        return Path(env.config_home or Path.home() / ".config") / "harness" / "keys" / name

    @property
    def image_record(self) -> Path:
        """`build/image.json`: what the last build made (image, digest, inputs)."""
        return self.build_dir / "image.json"

    def image(self, name: str) -> LogicalImage:
        try:
            return self.images[name]
        except KeyError:
            raise HarnessError(
                f"no logical image named {name!r}",
                checked=f"[tool.harness.images] in {self.root / 'pyproject.toml'}",
                fix=f"use one of: {', '.join(sorted(self.images)) or '(none defined)'}",
            ) from None


_TOP_KEYS = (
    "state-dir", "build-dir", "images", "lock", "build", "stack", "perf", "deploy", "test-env", "security",
    "supply",
)  # fmt: skip


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file's tables, or an error naming the file and the fix."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise HarnessError(
            f"cannot read {path}: {exc}", checked=str(path), fix="fix the TOML syntax"
        ) from exc


def find_project_root(start: Path | None = None) -> Path:
    """The nearest folder, from `start` upwards, whose pyproject.toml has `[tool.harness]`."""
    explicit = environment().project_root
    if explicit:
        return Path(explicit).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file() and "[tool.harness" in candidate.read_text(encoding="utf-8"):
            return folder
    raise HarnessError(
        "no project configuration found",
        checked=f"pyproject.toml with a [tool.harness] table in {here} and its parents",
        fix="run from inside the project, or set HARNESS_PROJECT_ROOT",
    )


def load_settings(root: Path | None = None, *, required: bool = True) -> Settings:
    """The settings of the project at `root` (found upwards from the cwd when None). With
    `required=False`, a folder without pyproject.toml gets the defaults."""
    root = root or find_project_root()
    path = root / "pyproject.toml"
    if not required and not path.is_file():
        data: dict[str, Any] = {}
    else:
        data = read_toml(path)
    env = environment()

    table = _table(data.get("tool", {}).get("harness", {}), "tool.harness", _TOP_KEYS, path)
    lock = _table(table.get("lock", {}), "tool.harness.lock", ("dir", "files"), path)
    return Settings(
        root=root,
        state_dir=root / (env.state_dir or _typed(table, "state-dir", str, ".harness", "tool.harness")),
        build_dir=root / (env.build_dir or _typed(table, "build-dir", str, "build", "tool.harness")),
        images=_image_specs(root, path, _images_table(table.get("images", {}), path), env),
        lock=LockConfig(
            dir=root / _typed(lock, "dir", str, "requirements", "tool.harness.lock"),
            files=_strings(lock, "files", (), "tool.harness.lock"),
        ),
        build=BuildConfig.parse(table.get("build", {}), path),
        stack=StackConfig.parse(table.get("stack", {}), path),
        perf=PerfConfig.parse(table.get("perf", {}), path),
        supply=SupplyConfig.parse(table.get("supply", {}), path),
        deploy=DeployConfig.parse(table.get("deploy", {}), path),
        test_env=_templates(table.get("test-env", {}), "tool.harness.test-env", path),
        security=SecurityConfig.parse(table.get("security", {}), path),
    )
