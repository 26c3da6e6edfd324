"""`diagnose`: the real facts gathered (the engine, buildx, the disk, the project's files) and
every check run against them."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from docker.errors import DockerException

from tierharness.config import Settings, environment
from tierharness.doctor import host
from tierharness.doctor.leftovers import leftover_checks
from tierharness.doctor.project import commands_set, env_coverage_checks, migrate_check
from tierharness.doctor.pytest_ini import read_ini_options
from tierharness.doctor.stored_images import image_checks
from tierharness.doctor.verdicts import Check
from tierharness.engine.client import (
    build_cache_records,
    docker_cli,
    endpoint,
    engine_client,
    local_image_id,
)
from tierharness.engine.labels import LABEL_RUN, OwnerPlace
from tierharness.engine.retention import unused_for
from tierharness.errors import EngineNotAnsweringError, HarnessError
from tierharness.imaging.resolution import local_origin
from tierharness.process import run
from tierharness.runtime.envguard import read_dotenv, scan_env_reads
from tierharness.runtime.networking import refusal_here

__all__ = ["diagnose"]


def _engine_facts() -> tuple[host.EngineFacts, Any]:
    docker_host = environment().docker_host
    where = docker_host or "unix:///var/run/docker.sock"
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
        return host.EngineFacts(where, docker_host, error=reason.splitlines()[0][:300], fix=fix), None
    facts = host.EngineFacts(
        where,
        docker_host,
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
        return host.buildx_check(None, exc.what.splitlines()[0])
    return host.buildx_check(proc.stdout)


def _disk(root_dir: str | None) -> Check:
    env = environment()
    if not root_dir:
        return host.disk_check("the engine's data root", None, "the engine did not say where it is")
    if not env.engine_is_local:
        return host.disk_check(root_dir, None, f"the engine is remote (DOCKER_HOST={env.docker_host})")
    try:
        return host.disk_check(root_dir, shutil.disk_usage(root_dir).free)
    except OSError as exc:
        return host.disk_check(root_dir, None, str(exc))


def _build_cache(client: Any) -> Check:
    idle = environment().build_cache_idle
    records = build_cache_records(client)
    now = datetime.now(UTC)
    stale = sum((unused_for(r, now) or 0.0) > idle for r in records)
    return host.build_cache_check(len(records), stale, idle)


# A rootful engine's configuration file (dockerd's default --config-file).
ENGINE_CONFIG = Path("/etc/docker/daemon.json")


def _build_history(root_dir: str | None) -> Check | None:
    """The build history bound of a local rootful engine's configuration; None for any other
    engine, whose file is elsewhere or out of reach (remote, rootless, a desktop VM)."""
    if not environment().engine_is_local or root_dir != "/var/lib/docker":
        return None
    try:
        settings = json.loads(ENGINE_CONFIG.read_text() or "{}") if ENGINE_CONFIG.exists() else {}
    except (OSError, ValueError) as exc:
        return host.build_history_check(str(ENGINE_CONFIG), None, str(exc).splitlines()[0][:300])
    builder = settings.get("builder") if isinstance(settings, dict) else None
    return host.build_history_check(
        str(ENGINE_CONFIG), builder.get("history") if isinstance(builder, dict) else None
    )


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
    ini = read_ini_options(settings.root)
    options = ini.options
    facts, client = _engine_facts()
    checks = host.engine_checks(facts)
    checks.append(_buildx())
    if client is not None:
        try:
            checks.extend(image_checks(settings.images.values(), local_image_id, local_origin))
            checks.append(_disk(facts.root_dir))
            checks.append(_build_cache(client))
            history = _build_history(facts.root_dir)
            if history is not None:
                checks.append(history)
            checks.extend(leftover_checks(_labelled(client), here=OwnerPlace.here()))
            mode = options.network.strip()
            checks.append(host.network_check(mode, refusal_here(client)))
        except DockerException as exc:
            first = str(exc).splitlines()[0][:300]
            checks.append(Check("engine", "FAIL", f"stopped answering: {first}", "check the engine's log"))
    checks.append(
        migrate_check(
            options.migrate,
            root=settings.root,
            executable=sys.executable,
            search_path=environment().exec_path,
            source=ini.where,
        )
    )
    checked = ini.provision_early or bool(commands_set(options))
    reads = scan_env_reads(settings.root) if checked else []
    checks.extend(env_coverage_checks(ini, settings.test_env, reads, read_dotenv(settings.root)))
    return checks
