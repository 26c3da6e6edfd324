"""The `[tool.harness.*]` sections as typed dataclasses, each parsing (and checking) its own
table: lock, build, stack, perf, security (and its licences), supply, deploy.

Every option is declared once: the perf options below generate both the command-line flags
of `harness perf` and the Locust options of the gate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from tierharness.config.tables import known_table, strings, templates, typed
from tierharness.errors import HarnessError

__all__ = [
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
]


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
    keep_images: int = 3  # per-commit tags of `image` kept in the engine (tierharness.engine.retention)

    @classmethod
    def parse(cls, raw: Any, path: Path) -> BuildConfig:
        where = "tool.harness.build"
        table = known_table(raw, where, [f.name.replace("_", "-") for f in fields(cls)], path)
        d = cls()
        test_target = table.get("test-target")
        keep_images = typed(table, "keep-images", int, d.keep_images, where)
        if isinstance(keep_images, bool) or keep_images < 1:
            raise HarnessError(
                f"[{where}].keep-images must be 1 or more, not {keep_images!r}",
                checked=f"[{where}].keep-images in {path}",
                fix="the image just built is always kept: write keep-images = 1 or more",
            )
        return cls(
            image=typed(table, "image", str, d.image, where),
            dockerfile=typed(table, "dockerfile", str, d.dockerfile, where),
            target=typed(table, "target", str, d.target, where),
            test_target=str(test_target) if test_target else None,
            lockfiles=strings(table, "lockfiles", d.lockfiles, where),
            base_image=typed(table, "base-image", str, d.base_image, where),
            python_version=typed(table, "python-version", str, d.python_version, where),
            setuid_allowlist=strings(table, "setuid-allowlist", d.setuid_allowlist, where),
            source_url=typed(table, "source-url", str, d.source_url, where),
            keep_images=keep_images,
        )


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
        table = known_table(raw, where, ("port", "health-timeout", "api-keys", "env"), path)
        env = templates(table.get("env", {}), f"{where}.env", path)
        d = cls()
        return cls(
            port=typed(table, "port", int, d.port, where),
            health_timeout=typed(table, "health-timeout", float, d.health_timeout, where),
            env=env,
            api_key_names=strings(table, "api-keys", d.api_key_names, where),
        )


@dataclass(frozen=True)
class PerfOption:
    """One perf option, declared once: its `[tool.harness.perf]` key is `name`, its flag `--name`
    (both for `harness perf` and, when `gate` or `shape` is set, for Locust, where the gate or the
    capacity run's step shape reads it)."""

    name: str
    kind: type[float] | type[int] | type[str]
    default: float | int | str
    help: str
    gate: bool = False  # passed to Locust on every run; the gate and the capacity steps read it
    shape: bool = False  # passed to Locust on capacity runs only; the step shape reads it

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
    # `--capacity` runs: users step up until a step's own p95 or fail ratio breaks its threshold above.
    PerfOption("capacity-start-users", int, 20, "capacity run: users in the first step", shape=True),
    PerfOption("capacity-step-users", int, 20, "capacity run: users added at each step", shape=True),
    PerfOption(
        "capacity-step-seconds", float, 10.0, "capacity run: how long each step is measured", shape=True
    ),
    PerfOption(
        "capacity-max-users", int, 120, "capacity run: stop stepping up at this many users", shape=True
    ),
    PerfOption("knee-tolerance", float, 0.2, "fail when the knee's RPS is this share below the baseline's"),
    PerfOption("knee-baseline", str, "perf-baseline.json", "the recorded knee (committed), from the root"),
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
    capacity_start_users: int = int(_PERF_DEFAULTS["capacity_start_users"])
    capacity_step_users: int = int(_PERF_DEFAULTS["capacity_step_users"])
    capacity_step_seconds: float = float(_PERF_DEFAULTS["capacity_step_seconds"])
    capacity_max_users: int = int(_PERF_DEFAULTS["capacity_max_users"])
    knee_tolerance: float = float(_PERF_DEFAULTS["knee_tolerance"])
    knee_baseline: str = str(_PERF_DEFAULTS["knee_baseline"])

    @classmethod
    def parse(cls, raw: Any, path: Path) -> PerfConfig:
        where = "tool.harness.perf"
        table = known_table(raw, where, ["locustfile", *(o.name for o in PERF_OPTIONS)], path)
        values: dict[str, Any] = {"locustfile": typed(table, "locustfile", str, cls.locustfile, where)}
        for option in PERF_OPTIONS:
            if option.name in table:
                values[option.attr] = typed(table, option.name, option.kind, option.default, where)
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
        table = known_table(raw, where, ("allow", "exceptions"), path)
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
            allow=strings(table, "allow", (), where),
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
        table = known_table(raw, where, keys, path)
        d = cls()
        fail_on = typed(table, "fail-on", str, d.fail_on, where)
        if fail_on not in _SEVERITY_NAMES:
            raise HarnessError(
                f"[{where}].fail-on = {fail_on!r} is not a severity",
                checked=f"[{where}].fail-on in {path}",
                fix=f"use one of: {', '.join(_SEVERITY_NAMES)}",
            )
        return cls(
            fail_on=fail_on,
            baseline=typed(table, "baseline", str, d.baseline, where),
            source=strings(table, "source", d.source, where),
            dockerfiles=strings(table, "dockerfiles", d.dockerfiles, where),
            workflows=typed(table, "workflows", str, d.workflows, where),
            secrets_exclude=strings(table, "secrets-exclude", d.secrets_exclude, where),
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
        table = known_table(raw, where, [f.name.replace("_", "-") for f in fields(cls)], path)
        d = cls()
        repository, key_dir = table.get("repository"), table.get("key-dir")
        port = typed(table, "registry-port", int, d.registry_port, where)
        if not 0 <= port <= 65535:
            raise HarnessError(
                f"[{where}].registry-port = {port} is not a port",
                checked=f"[{where}].registry-port in {path}",
                fix="use 0 (a random free port) or a port between 1 and 65535",
            )
        return cls(
            repository=str(repository) if repository else None,
            registry_image=typed(table, "registry-image", str, d.registry_image, where),
            registry_port=port,
            registry_timeout=typed(table, "registry-timeout", float, d.registry_timeout, where),
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
    candidates: str = "deploy/candidates"  # recipes of broken candidates, one <name>.Dockerfile each
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
        table = known_table(raw, where, [f.name.replace("_", "-") for f in fields(cls)], path)
        d = cls()
        values: dict[str, Any] = {}
        for f in fields(cls):
            default = getattr(d, f.name)
            values[f.name] = typed(table, f.name.replace("_", "-"), type(default), default, where)
        return cls(**values)
