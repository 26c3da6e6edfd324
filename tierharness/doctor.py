"""`python -m tierharness doctor`: can this machine run the harness, and if not, what to do.

Each check is a pure function from facts to `Check` records (PASS, WARN or FAIL, with the
fix for anything not PASS), so tests feed them made-up facts; `diagnose` gathers the real
facts (the engine, the disk, the project's files) and `render` prints the table.
"""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tierharness.build.images import LocalOrigin, distrust, local_origin
from tierharness.config import LogicalImage, Settings, environment, read_toml
from tierharness.engine import build_cache_records, docker_cli, endpoint, engine_client, local_image_id
from tierharness.errors import EngineNotAnsweringError, HarnessError
from tierharness.process import run
from tierharness.runtime.envguard import (
    IGNORE_OPTION,
    EnvRead,
    database_reads,
    is_database_variable,
    parse_ignore,
    read_dotenv,
    scan_env_reads,
    unset_fix,
    unset_variables,
)
from tierharness.runtime.labels import LABEL_PID, LABEL_RUN, OwnerPlace
from tierharness.runtime.networking import NETWORK_MODES, refusal_here
from tierharness.runtime.reaper import judge_owner, pid_alive
from tierharness.runtime.reuse import LABEL_REUSE, owner_of
from tierharness.runtime.worker import DEFAULT_ENV, REDIS_ENV

__all__ = [
    "Check",
    "EngineFacts",
    "EnvRead",
    "IniOptions",
    "build_cache_check",
    "buildx_check",
    "diagnose",
    "disk_check",
    "engine_checks",
    "env_coverage_checks",
    "env_mapping",
    "exit_code",
    "image_checks",
    "is_database_variable",
    "leftover_checks",
    "migrate_check",
    "network_check",
    "project_root",
    "read_ini_options",
    "render",
    "scan_env_reads",
]

Status = Literal["PASS", "WARN", "FAIL"]

MIN_ENGINE = (26,)
MIN_BUILDX = (0, 13)  # rewrite-timestamp on the OCI exporter, which reproducible builds need
GIB = 1024**3
DISK_WARN_BELOW = 10 * GIB
DISK_FAIL_BELOW = 2 * GIB

_PROVISION = "`bash scripts/provision-docker.sh`"
_CLEAN = "python -m tierharness clean"


@dataclass(frozen=True)
class Check:
    """One row of the report: what was checked, its verdict, and the fix when not PASS."""

    name: str
    status: Status
    detail: str
    fix: str | None = None


def exit_code(checks: Iterable[Check]) -> int:
    return 1 if any(c.status == "FAIL" for c in checks) else 0


def render(checks: Sequence[Check]) -> str:
    """The report: one row per check, the fix on the line below anything not PASS."""
    width = max([len("CHECK"), *(len(c.name) for c in checks)])
    lines = [f"{'STATUS':<6}  {'CHECK':<{width}}  DETAIL"]
    for check in checks:
        lines.append(f"{check.status:<6}  {check.name:<{width}}  {check.detail}")
        if check.fix and check.status != "PASS":
            lines.append(f"{'':<6}  {'':<{width}}  fix: {check.fix}")
    counts = {s: sum(c.status == s for c in checks) for s in ("PASS", "WARN", "FAIL")}
    lines.append(f"doctor: {counts['PASS']} PASS, {counts['WARN']} WARN, {counts['FAIL']} FAIL")
    return "\n".join(lines)


def _version(text: str) -> tuple[int, ...] | None:
    """The leading numbers of a version ("26.1.5+dfsg1" -> (26, 1, 5), "v0.13.1" -> (0, 13, 1))."""
    found = re.match(r"v?(\d+(?:\.\d+)*)", text.strip())
    return tuple(int(p) for p in found.group(1).split(".")) if found else None


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


# --------------------------------------------------------------------------- the engine


@dataclass(frozen=True)
class EngineFacts:
    """What the engine said, or why it said nothing (`error`)."""

    where: str
    docker_host: str | None  # set explicitly: then it is the first suspect
    error: str | None = None
    version: str | None = None
    driver_status: Sequence[Sequence[str]] = ()
    root_dir: str | None = None
    fix: str | None = None  # the harness's own fix for `error` (a TLS file, a context), if it has one


def engine_checks(facts: EngineFacts) -> list[Check]:
    """The engine answers, is recent enough, and stores images in containerd."""
    if facts.error is not None:
        if facts.fix:
            fix = facts.fix
        elif facts.docker_host:
            fix = (
                f"DOCKER_HOST={facts.docker_host} is where the harness looks: point it at a running "
                f"engine or unset it (default unix:///var/run/docker.sock); no engine yet: {_PROVISION}"
            )
        else:
            fix = f"start the engine with {_PROVISION} (installs and starts dockerd on Debian)"
        not_checked = "version, images, disk space and leftovers not checked"
        return [Check("engine", "FAIL", f"no answer at {facts.where}: {facts.error}; {not_checked}", fix)]
    checks = [Check("engine", "PASS", f"answers at {facts.where}")]
    version = _version(facts.version or "")
    if version is None:
        checks.append(
            Check(
                "engine version",
                "WARN",
                f"cannot read the version {facts.version!r}",
                f"check `docker version`; the harness needs >= {_dotted(MIN_ENGINE)}",
            )
        )
    elif version < MIN_ENGINE:
        checks.append(
            Check(
                "engine version",
                "FAIL",
                f"{facts.version} is older than {_dotted(MIN_ENGINE)}",
                f"upgrade the engine: {_PROVISION} installs a recent one",
            )
        )
    else:
        checks.append(Check("engine version", "PASS", f"{facts.version} (>= {_dotted(MIN_ENGINE)})"))
    snapshotter = next(
        (str(v) for pair in facts.driver_status for v in pair if "io.containerd.snapshotter" in str(v)),
        None,
    )
    if snapshotter:
        checks.append(Check("image store", "PASS", f"containerd ({snapshotter})"))
    else:
        checks.append(
            Check(
                "image store",
                "FAIL",
                "the engine does not use the containerd image store (no io.containerd.snapshotter "
                "in `docker info` DriverStatus): OCI exports cannot be loaded",
                f'{_PROVISION} sets "features": {{"containerd-snapshotter": true}} in '
                "/etc/docker/daemon.json and restarts dockerd",
            )
        )
    return checks


def network_check(mode: str, refusal: str | None) -> Check:
    """How the tests will reach a worker's services (harness_network), and why."""
    name = "services network"
    if mode not in NETWORK_MODES:
        return Check(name, "FAIL", f"harness_network = {mode!r} is unknown", "use auto, host or bridge")
    if mode == "bridge":
        return Check(name, "PASS", "ports published on 127.0.0.1 (harness_network = bridge)")
    if refusal is None:
        return Check(name, "PASS", "the engine's host network: servers listen on 127.0.0.1 only")
    if mode == "host":
        return Check(
            name,
            "FAIL",
            f"harness_network = host, but {refusal}",
            "use harness_network = auto (ports published on loopback where the host network cannot work)",
        )
    return Check(name, "PASS", f"ports published on 127.0.0.1, not the host network: {refusal}")


def buildx_check(output: str | None, error: str | None = None) -> Check:
    """`docker buildx version` printed `output` ("github.com/docker/buildx v0.13.1 <commit>";
    Debian prints "0.13.1+ds1"), or failed with `error`."""
    fix = f"install buildx >= {_dotted(MIN_BUILDX)}: {_PROVISION}"
    if output is None:
        return Check("buildx", "FAIL", f"`docker buildx version` failed: {error}", fix)
    words = output.split()
    version = _version(words[1]) if len(words) > 1 else None
    if version is None:
        return Check("buildx", "WARN", f"cannot read a version in {output.strip()!r}", fix)
    if version < MIN_BUILDX:
        return Check("buildx", "FAIL", f"{words[1]} is older than {_dotted(MIN_BUILDX)}", fix)
    return Check("buildx", "PASS", f"{words[1]} (>= {_dotted(MIN_BUILDX)})")


def image_checks(
    images: Iterable[LogicalImage],
    digest_of: Callable[[str], str | None],
    origin_of: Callable[[str], LocalOrigin] = lambda _tag: LocalOrigin(),
) -> list[Check]:
    """Each logical image's local tag, present (with its digest) or not; and whether what it
    holds, or would hold, floats with a registry tag instead of a pin or the recipe."""
    checks = []
    for spec in images:
        name = f"image {spec.name}"
        table = f"[tool.harness.images.{spec.name}]"
        digest = digest_of(spec.local)
        if not digest:
            if spec.pinned_digest:
                then = f"pull {spec.ref}"
            elif spec.floating and spec.allow_floating:
                then = f"pull {spec.ref}, a floating tag (allow-floating = true)"
            else:
                then = "build it from its recipe, slowly"
            missing = f"{spec.local} is not in the engine (the first run would {then})"
            checks.append(Check(name, "WARN", missing, "nox -s images"))
            continue
        pinned = spec.pinned_digest
        origin = origin_of(spec.local)
        doubt = (
            (f"{spec.local} is {digest}, not {pinned} as {spec.ref} pins" if digest != pinned else None)
            if pinned
            else distrust(spec, origin)
        )
        if doubt:
            # What the resolver will do about it on the next run, so nobody has to guess.
            then = "the pinned image" if pinned else "its recipe"
            replaced = f"{doubt}: the next run replaces it with {then}"
            checks.append(Check(name, "WARN", replaced, "nox -s images"))
        elif spec.floating and spec.allow_floating:
            got = origin.digest_from(spec.ref)
            held = f"this copy came from it as {got}" if got else "a machine without a copy pulls it"
            pin = got.rpartition("@")[2] if got else "sha256:<the digest `nox -s images` logs on the pull>"
            checks.append(
                Check(
                    name,
                    "WARN",
                    f"{spec.local} {digest}; {spec.ref} is a floating tag pulled under allow-floating = "
                    f"true ({held}): it names whatever the registry moves it to",
                    f'pin it in {table}: ref = "{spec.ref}@{pin}"; or drop allow-floating for the recipe',
                )
            )
        else:
            checks.append(Check(name, "PASS", f"{spec.local} {digest}"))
    return checks


def disk_check(root_dir: str, free: int | None, why: str | None = None) -> Check:
    """Free space where the engine keeps images and containers."""
    if free is None:
        return Check(
            "disk space",
            "WARN",
            f"free space in {root_dir} not measured: {why}",
            "check it on the engine's host: `df -h` of its data root, `docker system df`",
        )
    gib = f"{free / GIB:.1f} GiB free in {root_dir}"
    prune = "free space: `docker system prune` (unused images, build cache) or a larger disk"
    if free < DISK_FAIL_BELOW:
        return Check("disk space", "FAIL", f"{gib} (< {DISK_FAIL_BELOW // GIB} GiB)", prune)
    if free < DISK_WARN_BELOW:
        return Check("disk space", "WARN", f"{gib} (< {DISK_WARN_BELOW // GIB} GiB)", prune)
    return Check("disk space", "PASS", gib)


# Above this many build cache records, every container the engine starts and removes costs
# containerd noticeably more (tierharness.build.retention: 0.44 CPU-s with 4,488 snapshots, 0.10 with 21).
BUILD_CACHE_WARN_ABOVE = 1500


def build_cache_check(records: int, stale: int, idle_seconds: float) -> Check:
    """How much build cache the engine holds; `stale` of it unused for `idle_seconds`."""
    detail = f"{records} record(s), {stale} unused for over {idle_seconds:.0f} s (HARNESS_BUILD_CACHE_IDLE)"
    if records > BUILD_CACHE_WARN_ABOVE:
        return Check(
            "build cache",
            "WARN",
            f"{detail}: above {BUILD_CACHE_WARN_ABOVE}, each container start and removal costs the "
            "engine more",
            f"`{_CLEAN} --prune` (while no build runs) prunes what your harness builds made and nobody "
            "used for HARNESS_BUILD_CACHE_IDLE (lower it to prune more); other builds' cache is its owners'",
        )
    return Check("build cache", "PASS", detail)


@dataclass
class _Run:
    counts: dict[str, int] = field(default_factory=dict)
    owner: Mapping[str, str] = field(default_factory=dict)  # the labels of a resource naming the owner
    kept: bool = False
    kept_by: int | None = None  # a kept one's user (uid)


def leftover_checks(
    resources: Iterable[tuple[str, Mapping[str, str]]],
    *,
    here: OwnerPlace,
    alive: Callable[[int, str | None], bool] = pid_alive,
) -> list[Check]:
    """Resources (kind, labels) labelled with a run id, one row per run, judged as the sweep
    judges them: a live owner's run is in use, a dead owner's is left over, one whose owner
    cannot be judged from `here` is not ours to call, kept ones (--harness-reuse) are kept."""
    runs: dict[str, _Run] = {}
    for kind, labels in resources:
        run_id = labels.get(LABEL_RUN)
        if not run_id:
            continue
        entry = runs.setdefault(run_id, _Run())
        entry.counts[kind] = entry.counts.get(kind, 0) + 1
        if LABEL_REUSE in labels:
            entry.kept, entry.kept_by = True, owner_of(labels)
        # Networks may be labelled with the run id only; the owner comes from whichever has it.
        if not entry.owner and labels.get(LABEL_PID):
            entry.owner = labels
    if not runs:
        return [Check("leftovers", "PASS", f"no container, network or volume labelled {LABEL_RUN}")]
    checks = []
    for run_id, entry in sorted(runs.items()):
        what = ", ".join(f"{n} {kind}{'s' if n > 1 else ''}" for kind, n in sorted(entry.counts.items()))
        name = f"run {run_id}"
        verdict = judge_owner(entry.owner, here, alive)
        if entry.kept:
            # Kept for the next run of the same checkout; they expire when idle.
            if entry.kept_by == os.getuid():
                how = f"kept for --harness-reuse (`{_CLEAN}` removes them)"
            else:
                who = "an unknown user" if entry.kept_by is None else f"uid {entry.kept_by}"
                how = f"kept for --harness-reuse by {who} (`{_CLEAN} --all-users` removes them)"
            checks.append(Check(name, "PASS", f"{what}; {how}"))
        elif verdict is None:
            # The sweep (and so `clean`) only removes what a dead pid owned: these need a hand.
            by_hand = f"remove them by hand: docker ps -a --filter label={LABEL_RUN}={run_id}"
            checks.append(Check(name, "WARN", f"{what}; no owner pid label", by_hand))
        elif verdict.state == "unknown":
            later = "the sweep removes them once older than HARNESS_ORPHAN_AGE"
            checks.append(Check(name, "PASS", f"{what}; {verdict.why}: not judged here ({later})"))
        elif verdict.state == "alive":
            checks.append(Check(name, "PASS", f"{what}; {verdict.why}"))
        else:
            checks.append(Check(name, "WARN", f"{what}; {verdict.why}: left over", _CLEAN))
    return checks


# --------------------------------------------------------------------------- the project's settings


@dataclass(frozen=True)
class IniOptions:
    """The pytest ini options of the project, and the file they came from (None: none found)."""

    source: Path | None
    values: Mapping[str, str | list[str]]

    def get(self, key: str) -> str | None:
        value = self.values.get(key)
        if value is None:
            return None
        return " ".join(value) if isinstance(value, list) else str(value)

    def lines(self, key: str) -> list[str]:
        """A multi-line option (an ini continuation, or a TOML list) as its non-blank lines."""
        value = self.values.get(key)
        if value is None:
            return []
        raw = value if isinstance(value, list) else str(value).splitlines()
        return [line.strip() for line in raw if line.strip() and not line.strip().startswith("#")]

    @property
    def where(self) -> str:
        return str(self.source) if self.source else "the pytest configuration"

    @property
    def provision_early(self) -> bool:
        return (self.get("harness_provision") or "").strip().lower() == "early"


def _ini_section(path: Path, section: str) -> dict[str, str | list[str]] | None:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except configparser.Error as exc:
        raise HarnessError(f"cannot read {path}: {exc}", checked=str(path), fix="fix the ini syntax") from exc
    if not parser.has_section(section):
        return None
    return dict(parser.items(section))


def read_ini_options(root: Path) -> IniOptions:
    """The options pytest would read in `root`, from the first file it would pick: pytest.ini,
    .pytest.ini, pyproject.toml ([tool.pytest.ini_options] or [tool.pytest]), tox.ini
    ([pytest]), setup.cfg ([tool:pytest])."""
    for name in ("pytest.ini", ".pytest.ini"):
        if (root / name).is_file():  # pytest takes these even without a [pytest] section
            return IniOptions(root / name, _ini_section(root / name, "pytest") or {})
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        table = read_toml(pyproject).get("tool", {}).get("pytest", {})
        ini = table.get("ini_options")
        native = {k: v for k, v in table.items() if k != "ini_options"}
        chosen = ini if isinstance(ini, dict) else native
        if chosen:
            values = {k: v if isinstance(v, list) else str(v) for k, v in chosen.items()}
            return IniOptions(pyproject, values)
    for name, section in (("tox.ini", "pytest"), ("setup.cfg", "tool:pytest")):
        if (root / name).is_file():
            found = _ini_section(root / name, section)
            if found is not None:
                return IniOptions(root / name, found)
    return IniOptions(None, {})


def project_root(start: Path | None = None) -> Path:
    """The project doctor checks: HARNESS_PROJECT_ROOT, else the nearest folder, from `start`
    (the cwd) upwards, whose pyproject.toml has [tool.harness] or that holds the pytest
    configuration pytest would pick. The plugin needs no [tool.harness] (its defaults do), so
    a project configured in [tool.pytest.ini_options] alone is a project here too."""
    explicit = environment().project_root
    if explicit:
        return Path(explicit).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and "[tool.harness" in pyproject.read_text(encoding="utf-8"):
            return folder
        if read_ini_options(folder).source is not None:
            return folder
    raise HarnessError(
        "no project configuration found",
        checked=f"{here} and its parents for a pyproject.toml with [tool.harness] or a pytest configuration "
        "(pytest.ini, .pytest.ini, [tool.pytest.ini_options] in pyproject.toml, [pytest] in tox.ini, "
        "[tool:pytest] in setup.cfg)",
        fix="run from inside the project, or set HARNESS_PROJECT_ROOT",
    )


def migrate_check(
    command: str | None,
    *,
    root: Path,
    executable: str,
    search_path: str,
    source: str = "the pytest configuration",
) -> Check:
    """The program of `harness_migrate` exists where the plugin will run it: `python` is the
    test interpreter; anything else is looked up in its venv's bin, then on PATH."""
    name = "migrate command"
    if not command:
        return Check(name, "PASS", "harness_migrate is not set: no migrations run")
    fix = (
        f"install the program into the test environment, or fix harness_migrate in {source} "
        "(a module of the project runs as `python -m package.module`)"
    )
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        return Check(name, "FAIL", f"cannot split {command!r}: {exc}", f"fix harness_migrate in {source}")
    if not argv:
        return Check(name, "FAIL", "harness_migrate is empty", f"fix harness_migrate in {source}")
    program = argv[0]
    if program in ("python", "python3"):
        # The plugin runs these with the test interpreter (runtime.migrations), not PATH's.
        return Check(name, "PASS", f"{command!r}: {program} is {executable}")
    if os.sep in program:
        candidate = Path(program) if Path(program).is_absolute() else root / program
        found = str(candidate) if candidate.is_file() and os.access(candidate, os.X_OK) else None
        looked = str(candidate)
    else:
        venv_bin = os.path.dirname(executable)
        path = os.pathsep.join(p for p in (venv_bin, search_path) if p)
        found = shutil.which(program, path=path)
        looked = f"{venv_bin} and PATH"
    if found is None:
        return Check(name, "FAIL", f"{command!r}: {program!r} not found (looked in {looked})", fix)
    return Check(name, "PASS", f"{command!r}: {program} is {found}")


# --------------------------------------------------------------------------- the test environment


def env_mapping(ini: IniOptions, test_env_keys: Iterable[str]) -> set[str]:
    """The variables an early-provisioned test run gets: the defaults (REDIS_URL only when the
    run starts Redis), `[tool.harness.test-env]`, and `harness_env` VAR=template lines."""
    mapping = set(DEFAULT_ENV)
    services = re.split(r"[\s,]+", (ini.get("harness_services") or "postgres,redis").strip().lower())
    if "redis" in services:
        mapping.update(REDIS_ENV)
    mapping.update(test_env_keys)
    mapping.update(line.partition("=")[0].strip() for line in ini.lines("harness_env") if "=" in line)
    return mapping


_COMMANDS = ("harness_migrate", "harness_seed")


def env_coverage_checks(
    ini: IniOptions,
    test_env_keys: Iterable[str],
    reads: Sequence[EnvRead],
    dotenv: Mapping[str, str] | None = None,
) -> list[Check]:
    """Every database variable the project reads must be in the mapping, or the code falls
    back to its own default database. The plugin's guard (runtime.envguard) refuses to start
    harness_migrate or harness_seed over the same finding: then it is a FAIL here. With only
    `harness_provision = early` (settings read at import time see the mapping), a WARN."""
    name = "test env"
    commands = [key for key in _COMMANDS if ini.get(key)]
    if not ini.provision_early and not commands:
        why = "not checked: no harness_migrate or harness_seed, and harness_provision is not `early`"
        return [Check(name, "PASS", why)]
    try:
        ignore = parse_ignore(ini.values.get(IGNORE_OPTION), source=ini.where)
    except HarnessError as exc:
        return [Check(name, "FAIL", exc.what, exc.fix)]
    unset = unset_variables(reads, env_mapping(ini, test_env_keys), ignore=ignore, dotenv=dotenv)
    if not unset:
        read = [n for n in database_reads(reads, dotenv) if n not in ignore]
        detail = f"{', '.join(read)}: all set by the harness" if read else "none read by name"
        if ignore:
            detail += f"; {IGNORE_OPTION}: {', '.join(sorted(ignore))}"
        return [Check(name, "PASS", detail)]
    status: Status = "FAIL" if commands else "WARN"
    stopped = f": the run stops before {' and '.join(commands)}" if commands else ""
    detail = "read at {} but not set by the harness" + stopped
    return [Check(f"test env {u.name}", status, detail.format(u.where), unset_fix([u])) for u in unset]


# --------------------------------------------------------------------------- gathering the facts


def _engine_facts() -> tuple[EngineFacts, Any]:
    from docker.errors import DockerException

    host = environment().docker_host
    where = host or "unix:///var/run/docker.sock"
    try:
        found = endpoint()  # DOCKER_HOST, or the docker context it comes from
        where = f"{found.host} (docker context {found.context})" if found.context else found.host
        client = engine_client()
        info = client.info()
        version = client.version().get("Version")
    except (HarnessError, DockerException) as exc:
        reason = (exc.checked or exc.what) if isinstance(exc, HarnessError) else str(exc)
        # The harness's own fix where it knows better (TLS files, the context); an engine that
        # is simply not there gets the doctor's (DOCKER_HOST, or how to provision one).
        knows_better = isinstance(exc, HarnessError) and not isinstance(exc, EngineNotAnsweringError)
        fix = exc.fix if isinstance(exc, HarnessError) and knows_better else None
        return EngineFacts(where, host, error=reason.splitlines()[0][:300], fix=fix), None
    facts = EngineFacts(
        where,
        host,
        version=str(version) if version else None,
        driver_status=info.get("DriverStatus") or (),
        root_dir=info.get("DockerRootDir"),
    )
    return facts, client


def _buildx() -> Check:
    try:
        proc = run(
            [docker_cli(), "buildx", "version"],
            what="docker buildx version",
            fix="install buildx",
            timeout=30,
        )
    except HarnessError as exc:
        return buildx_check(None, exc.what.splitlines()[0])
    return buildx_check(proc.stdout)


def _disk(root_dir: str | None) -> Check:
    env = environment()
    if not root_dir:
        return disk_check("the engine's data root", None, "the engine did not say where it is")
    if not env.engine_is_local:
        return disk_check(root_dir, None, f"the engine is remote (DOCKER_HOST={env.docker_host})")
    try:
        return disk_check(root_dir, shutil.disk_usage(root_dir).free)
    except OSError as exc:
        return disk_check(root_dir, None, str(exc))


def _build_cache(client: Any) -> Check:
    from datetime import UTC, datetime

    idle = environment().build_cache_idle
    records = build_cache_records(client)
    now = datetime.now(UTC)

    def unused_for(record: Mapping[str, Any]) -> float:
        used = str(record.get("LastUsedAt") or record.get("CreatedAt") or "")
        try:  # RFC 3339 with nanoseconds: microseconds are plenty
            when = datetime.fromisoformat(re.sub(r"(\.\d{6})\d*", r"\1", used.replace("Z", "+00:00")))
        except ValueError:
            return 0.0
        return (now - when).total_seconds()

    return build_cache_check(len(records), sum(unused_for(r) > idle for r in records), idle)


def _labelled(client: Any) -> list[tuple[str, Mapping[str, str]]]:
    flt = {"label": [LABEL_RUN]}
    found: list[tuple[str, Mapping[str, str]]] = []
    found.extend(
        ("container", c.labels) for c in client.containers.list(all=True, ignore_removed=True, filters=flt)
    )
    found.extend(("network", n.attrs.get("Labels") or {}) for n in client.networks.list(filters=flt))
    found.extend(("volume", v.attrs.get("Labels") or {}) for v in client.volumes.list(filters=flt))
    return found


def diagnose(settings: Settings) -> list[Check]:
    """Every check, against this machine and `settings.root`'s project."""
    from docker.errors import DockerException

    ini = read_ini_options(settings.root)
    facts, client = _engine_facts()
    checks = engine_checks(facts)
    checks.append(_buildx())
    if client is not None:
        try:
            checks.extend(image_checks(settings.images.values(), local_image_id, local_origin))
            checks.append(_disk(facts.root_dir))
            checks.append(_build_cache(client))
            checks.extend(leftover_checks(_labelled(client), here=OwnerPlace.here()))
            mode = (ini.get("harness_network") or "auto").strip()
            checks.append(network_check(mode, refusal_here(client)))
        except DockerException as exc:
            first = str(exc).splitlines()[0][:300]
            checks.append(Check("engine", "FAIL", f"stopped answering: {first}", "check the engine's log"))
    checks.append(
        migrate_check(
            ini.get("harness_migrate"),
            root=settings.root,
            executable=sys.executable,
            search_path=environment().exec_path,
            source=ini.where,
        )
    )
    checked = ini.provision_early or any(ini.get(key) for key in _COMMANDS)
    reads = scan_env_reads(settings.root) if checked else []
    checks.extend(env_coverage_checks(ini, settings.test_env, reads, read_dotenv(settings.root)))
    return checks
