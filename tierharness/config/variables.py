"""Every environment variable the harness honours, read in one place and only when asked
(never at import): `environment()` and its `Environment`, the secrets kept out of children,
and the environment a child process gets."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tierharness.errors import HarnessError

__all__ = ["Environment", "child_env", "environment", "machine_cache", "pip_child_env", "withhold_secrets"]


# eq=False: nothing compares two readings, and an __eq__ and __hash__ over every field are
# compiled at import, in every pytest process the plugin loads in, used or not.
@dataclass(frozen=True, eq=False)
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
    # `harness clean --prune` prunes it (tierharness.engine.retention)
    build_cache_idle: float
    # HARNESS_BUILD_CACHE_KEEP: MiB of that prunable cache `harness clean --prune` leaves in
    # place, pruning nothing until it grows past them (a prune costs every image-based chain of
    # the engine its cache; tierharness.engine.retention)
    build_cache_keep: float
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
            build_cache_keep=_number(env, "HARNESS_BUILD_CACHE_KEEP", 4096.0, "MiB"),
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


def _number(env: Mapping[str, str], name: str, default: float, unit: str = "seconds") -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise HarnessError(
            f"{name}={raw!r} is not a number",
            checked=f"the environment variable {name}",
            fix=f"set {name} to a number of {unit}, or unset it (default {default:g})",
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
