"""Checks of the machine: the engine (there, recent, the containerd image store), buildx, the
disk, the build cache, and how tests reach a worker's services."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from tierharness.doctor.verdicts import CLEAN, PROVISION, Check, dotted, version_of
from tierharness.runtime.networking import NETWORK_MODES

MIN_ENGINE = (26,)
MIN_BUILDX = (0, 13)  # rewrite-timestamp on the OCI exporter, which reproducible builds need
GIB = 1024**3
DISK_WARN_BELOW = 10 * GIB
DISK_FAIL_BELOW = 2 * GIB


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
                f"engine or unset it (default unix:///var/run/docker.sock); no engine yet: {PROVISION}"
            )
        else:
            fix = f"start the engine with {PROVISION} (installs and starts dockerd on Debian)"
        not_checked = "version, images, disk space and leftovers not checked"
        return [Check("engine", "FAIL", f"no answer at {facts.where}: {facts.error}; {not_checked}", fix)]
    checks = [Check("engine", "PASS", f"answers at {facts.where}")]
    version = version_of(facts.version or "")
    if version is None:
        checks.append(
            Check(
                "engine version",
                "WARN",
                f"cannot read the version {facts.version!r}",
                f"check `docker version`; the harness needs >= {dotted(MIN_ENGINE)}",
            )
        )
    elif version < MIN_ENGINE:
        checks.append(
            Check(
                "engine version",
                "FAIL",
                f"{facts.version} is older than {dotted(MIN_ENGINE)}",
                f"upgrade the engine: {PROVISION} installs a recent one",
            )
        )
    else:
        checks.append(Check("engine version", "PASS", f"{facts.version} (>= {dotted(MIN_ENGINE)})"))
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
                f'{PROVISION} sets "features": {{"containerd-snapshotter": true}} in '
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
    fix = f"install buildx >= {dotted(MIN_BUILDX)}: {PROVISION}"
    if output is None:
        return Check("buildx", "FAIL", f"`docker buildx version` failed: {error}", fix)
    words = output.split()
    version = version_of(words[1]) if len(words) > 1 else None
    if version is None:
        return Check("buildx", "WARN", f"cannot read a version in {output.strip()!r}", fix)
    if version < MIN_BUILDX:
        return Check("buildx", "FAIL", f"{words[1]} is older than {dotted(MIN_BUILDX)}", fix)
    return Check("buildx", "PASS", f"{words[1]} (>= {dotted(MIN_BUILDX)})")


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
    # The harness's own first: the engine's prune also removes other projects' and other users'
    # stopped containers, images and build cache, which on a shared engine are not the user's.
    prune = (
        "free space: `python -m tierharness clean --prune` (what your harness runs made), then "
        "what else you made (`docker system df` shows it) by hand, or a larger disk"
    )
    if free < DISK_FAIL_BELOW:
        return Check("disk space", "FAIL", f"{gib} (< {DISK_FAIL_BELOW // GIB} GiB)", prune)
    if free < DISK_WARN_BELOW:
        return Check("disk space", "WARN", f"{gib} (< {DISK_WARN_BELOW // GIB} GiB)", prune)
    return Check("disk space", "PASS", gib)


# Above this many build cache records, every container the engine starts and removes costs
# containerd noticeably more: the cost grows with each record (docs/image-build.md, "What a
# record costs").
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
            f"`{CLEAN} --prune` (while no build runs) prunes what your harness builds made and nobody "
            "used for HARNESS_BUILD_CACHE_IDLE (lower it to prune more); other builds' cache is its owners'",
        )
    return Check("build cache", "PASS", detail)


def build_history_check(config: str, history: object, problem: str | None = None) -> Check:
    """Whether the engine's configuration file `config` bounds BuildKit's build history: its
    `builder.history` (None when unset), or the `problem` that kept it from being read."""
    if problem is not None:
        return Check(
            "build history",
            "WARN",
            f"{config} not read: {problem}",
            f"check {config}: dockerd reads it at start",
        )
    if history:
        return Check("build history", "PASS", f"bounded in {config}: builder.history = {json.dumps(history)}")
    return Check(
        "build history",
        "WARN",
        f"{config} sets no builder.history: BuildKit keeps each build's record until it is both beyond "
        "the newest 50 and 48 hours old, and containerd walks every record on each container removal, "
        "so each container of every tier costs more as builds pile up",
        f"{PROVISION} (as root) adds a bound and restarts the engine it started if no container runs; "
        f"or set builder.history in {config} yourself, then restart the engine",
    )
