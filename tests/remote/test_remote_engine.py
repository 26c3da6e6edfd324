"""The harness against a remote engine: a second dockerd on this machine, reached only over
TCP with TLS (`DOCKER_HOST=tcp://127.0.0.1:PORT`, `DOCKER_TLS_VERIFY`, `DOCKER_CERT_PATH`,
certificates made here), and through a docker context pointing at it.

A team's way to get images onto such an engine: they are pushed to a registry (the
harness's loopback one, on the local engine) and the harness resolves them on the remote
engine from `HARNESS_IMAGE_<NAME>_REF`. A slice of the integration tier (services, the
reaper, the sweep, a build) and `nox -s e2e` (the image built on that engine through buildx,
then the stack over HTTP) run in subprocesses against the remote engine; then a smaller
slice through the docker context alone, its build through the context's builder named by
HARNESS_BUILDER. Both engines' container events are recorded throughout: the runs'
containers must show up on the second engine, and never on the local one. Then the engine
is stopped and must leave nothing.

Run it with `nox -s remote-engine`; it needs root (a second dockerd), and takes minutes.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.second_engine import certificates, leftovers
from tierharness.config import load_settings
from tierharness.engine import client as harness_engine
from tierharness.engine.client import engine_client, prepare_clients
from tierharness.engine.labels import LABEL_ROLE, LABEL_RUN, RunIdentity
from tierharness.engine.run_ids import new_run_id
from tierharness.engine.second_engine import EngineTls, SecondEngine, second_engine
from tierharness.errors import EngineUnavailableError
from tierharness.gitrepo import snapshot
from tierharness.supply.registry import Registry, running_registry

ROOT = Path(__file__).resolve().parents[2]

# A slice of the integration tier: the service against its per-worker Postgres and Redis,
# the reaper (also after a SIGKILL of a whole run), the sweep, and a build through buildx.
INTEGRATION_SLICE = (
    "tests/integration/service/test_articles.py",
    "tests/integration/service/test_cache_auth_limits.py",
    *(
        f"tests/integration/harness/test_harness_containers.py::{name}"
        for name in (
            "test_each_worker_has_its_own_labelled_containers",
            "test_reaper_removes_a_killed_runs_containers_and_spares_live_runs",
            "test_sweep_removes_runs_whose_owner_is_gone_only",
            "test_sigkilled_run_leaves_no_container_behind",
            "test_a_failing_build_step_names_stage_and_step_and_shows_output",
        )
    ),
)
# The e2e tier's tests of the stack over HTTP and of the running image. The rest of the tier
# (the deploy rehearsal, secret rotation, repro-check, schemathesis) publishes on and reaches
# 127.0.0.1 or builds twice more: minutes more, and no more proof of the remote engine.
E2E_SLICE = (
    "tests/e2e/service/test_api.py",
    "tests/e2e/service/test_abuse.py",
    "tests/e2e/service/test_image.py",
    "tests/e2e/service/test_resilience.py",
)
# Through a docker context (`docker context use`, no DOCKER_HOST): a worker's services, and a
# build through HARNESS_BUILDER.
CONTEXT_SLICE = (
    "tests/integration/service/test_cache_auth_limits.py",
    *(
        f"tests/integration/harness/test_harness_containers.py::{name}"
        for name in (
            "test_each_worker_has_its_own_labelled_containers",
            "test_a_failing_build_step_names_stage_and_step_and_shows_output",
        )
    ),
)
IMAGES = ("base", "postgres", "redis")  # what the slices run on the remote engine
# Inherited by a nested run, these would make it part of this run (or of its coverage).
_NOT_INHERITED = ("PYTEST_XDIST_WORKER", "HARNESS_CONTROLLER", "HARNESS_RUN_ID", "VIRTUAL_ENV")


@pytest.fixture(scope="module")
def tls_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SecondEngine, EngineTls]]:
    """A second engine listening on 127.0.0.1:RANDOM with TLS, client certificates verified."""
    if os.geteuid() != 0 or shutil.which("dockerd") is None:
        pytest.skip("a second engine needs root and dockerd")
    folder = tmp_path_factory.mktemp("remote")
    started = time.monotonic()
    tls = certificates(folder / "certs")
    # The host process: the slices reach its containers' published ports on 127.0.0.1, which a
    # container engine publishes inside its own network namespace.
    with second_engine(folder / "state", tls=tls, kind="process") as engine:
        seconds = time.monotonic() - started
        print(f"\nsecond engine at {engine.env()['DOCKER_HOST']} with TLS, ready in {seconds:.1f}s")
        yield engine, tls


def _engine_error(monkeypatch: pytest.MonkeyPatch, env: Mapping[str, str | None]) -> str:
    """The harness's error for an engine reached with `env` (None: unset), in seconds."""
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("HARNESS_ENGINE_TIMEOUT", "5")
    harness_engine.engine_client.cache_clear()
    started = time.monotonic()
    try:
        with pytest.raises(EngineUnavailableError) as err:
            engine_client()
    finally:
        harness_engine.engine_client.cache_clear()
    assert time.monotonic() - started < 15, "a bad engine setting must fail in seconds"
    return str(err.value)


def test_bad_tls_settings_against_a_tls_engine_name_docker_host_and_the_fix(
    tls_engine: tuple[SecondEngine, EngineTls], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, tls = tls_engine
    host = engine.env()["DOCKER_HOST"]
    other = certificates(tmp_path / "other", name="another-ca")
    # The right CA, but a client certificate the engine never issued.
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    shutil.copy2(tls.client_dir / "ca.pem", stranger / "ca.pem")
    for name in ("cert.pem", "key.pem"):
        shutil.copy2(other.client_dir / name, stranger / name)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)

    tls_with = {"DOCKER_HOST": host, "DOCKER_TLS_VERIFY": "1"}
    wrong_ca = _engine_error(monkeypatch, {**tls_with, "DOCKER_CERT_PATH": str(other.client_dir)})
    assert f"DOCKER_HOST={host}" in wrong_ca
    assert "failed the TLS handshake" in wrong_ca
    assert "CERTIFICATE_VERIFY_FAILED" in wrong_ca
    assert "the CA that signed the engine's certificate" in wrong_ca

    refused = _engine_error(monkeypatch, {**tls_with, "DOCKER_CERT_PATH": str(stranger)})
    assert f"DOCKER_HOST={host}" in refused
    assert "failed the TLS handshake" in refused
    assert "client certificate signed by a CA the engine trusts" in refused

    plain = _engine_error(
        monkeypatch, {"DOCKER_HOST": host, "DOCKER_TLS_VERIFY": None, "DOCKER_CERT_PATH": None}
    )
    assert f"DOCKER_HOST={host}" in plain
    assert "speaks TLS" in plain
    assert "DOCKER_TLS_VERIFY=1" in plain

    missing = _engine_error(monkeypatch, {**tls_with, "DOCKER_CERT_PATH": str(tmp_path / "no-such-folder")})
    assert f"DOCKER_HOST={host}" in missing
    assert "missing or unusable" in missing
    assert "fix: point DOCKER_CERT_PATH" in missing

    # And the right files work (so the failures above are the files', not the engine's).
    monkeypatch.setenv("DOCKER_CERT_PATH", str(tls.client_dir))
    harness_engine.engine_client.cache_clear()
    try:
        assert engine_client().info()["DockerRootDir"] == f"{engine.record.root}/data"
    finally:
        harness_engine.engine_client.cache_clear()


# --------------------------------------------------------------------------- the runs


class _Creates:
    """Container `create` events of one engine, streamed live until `stop`: a daemon keeps only
    its last events for a later `since` query, and the local engine is busy with other runs."""

    def __init__(self, client: Any) -> None:
        self.events: list[dict[str, Any]] = []
        self._stream = client.events(decode=True, filters={"type": "container", "event": "create"})
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        with contextlib.suppress(Exception):  # the stream is closed under it by `stop`
            for event in self._stream:
                self.events.append(event)

    def stop(self) -> list[dict[str, str]]:
        """The attributes (labels, name, image) of every container created so far."""
        time.sleep(1)  # events of the last moments are still on their way
        self._stream.close()
        self._thread.join(10)
        return [dict(event.get("Actor", {}).get("Attributes") or {}) for event in self.events]


def _die_with_parent() -> None:
    """In the child: SIGKILLed when this test process dies, so a killed test takes its nested
    runs with it (their reapers then clean the remote engine, the watcher removes the engine)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)


@dataclass
class _Step:
    name: str
    seconds: float = 0.0
    output: str = field(default="", repr=False)


def _run(step: _Step, argv: list[str], *, env: Mapping[str, str], cwd: Path, timeout: float) -> None:
    """`argv` in its own process group (killed whole on a timeout); fails with its output."""
    print(f"{step.name}: {' '.join(argv)}", flush=True)
    started = time.monotonic()
    proc = subprocess.Popen(
        argv, cwd=cwd, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True, preexec_fn=_die_with_parent,  # noqa: PLW1509 - no threads before exec
    )  # fmt: skip
    try:
        step.output = proc.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        step.output = proc.communicate()[0]
        pytest.fail(f"{step.name}: no end within {timeout:g}s; its output:\n{_excerpt(step.output)}")
    finally:
        step.seconds = time.monotonic() - started
    print(f"{step.name}: exit {proc.returncode} after {step.seconds:.0f}s", flush=True)
    assert proc.returncode == 0, f"{step.name} failed; its output:\n{_excerpt(step.output)}"


def _excerpt(output: str) -> str:
    """The start (the first error in full) and the end (the summary) of a long output."""
    return output if len(output) <= 12000 else f"{output[:5000]}\n[...]\n{output[-7000:]}"


def _nox() -> str:
    """The nox that runs the sessions (the project's .venv, where bootstrap puts it)."""
    found = ROOT / ".venv" / "bin" / "nox"
    if found.exists():
        return str(found)
    on_path = shutil.which("nox")
    if on_path is None:
        pytest.skip("nox is not installed (bash scripts/bootstrap.sh)")
    return on_path


def _docker(*args: str, env: Mapping[str, str] | None = None) -> str:
    proc = subprocess.run(["docker", *args], env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"docker {' '.join(args)}: {proc.stdout}{proc.stderr}"
    return proc.stdout


@contextlib.contextmanager
def _pushed(registry: Registry, docker_config: Path) -> Iterator[dict[str, str]]:
    """The logical images pushed to the registry: HARNESS_IMAGE_<NAME>_REF for each, pinned by
    digest. The registry tags made on the local engine are removed again."""
    settings = load_settings()
    env = {**os.environ, "DOCKER_CONFIG": str(docker_config)}
    refs: dict[str, str] = {}
    tags: list[str] = []
    try:
        for name in IMAGES:
            local = settings.image(name).local
            tag = f"{registry.host}/{local}"
            _docker("image", "tag", local, tag)
            tags.append(tag)
            pushed = _docker("push", tag, env=env)
            digest = re.search(r"digest: (sha256:[0-9a-f]{64})", pushed)
            assert digest, pushed
            refs[f"HARNESS_IMAGE_{name.upper()}_REF"] = f"{tag}@{digest[1]}"
        yield refs
    finally:
        for tag in tags:
            subprocess.run(["docker", "image", "rm", tag], capture_output=True, check=False)


@contextlib.contextmanager
def _team_setup(engine: SecondEngine, state_dir: Path, steps: list[_Step]) -> Iterator[dict[str, str]]:
    """What a team gives its runners: the images in a registry (the loopback one, on the local
    engine, its storage in `state_dir`), and a DOCKER_CONFIG with the registry's credentials
    and the engine as a docker context. Yields the variables every nested run gets."""
    step = _Step("registry + push")
    started = time.monotonic()
    settings = replace(load_settings(), state_dir=state_dir)
    owner = RunIdentity(f"t-{uuid.uuid4().hex[:8]}", "remote", os.getpid())
    try:
        with (
            running_registry(settings, owner) as registry,
            registry.docker_config() as docker_config,
            _pushed(registry, docker_config) as refs,
        ):
            host, cert = engine.env()["DOCKER_HOST"], engine.env()["DOCKER_CERT_PATH"]
            files = ",".join(f"{k}={cert}/{k}.pem" for k in ("ca", "cert", "key"))
            _docker(
                "context", "create", _context_name(engine), "--docker", f"host={host},{files}",
                env={**os.environ, "DOCKER_CONFIG": str(docker_config)},
            )  # fmt: skip
            step.seconds = time.monotonic() - started
            steps.append(step)
            # The nested runs' reapers get 2 s of grace, not 12: they are waited for.
            yield {**refs, "DOCKER_CONFIG": str(docker_config), "HARNESS_REAPER_GRACE": "2"}
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)  # the registry's storage


def _context_name(engine: SecondEngine) -> str:
    return f"harness-remote-{engine.record.id}"


def _child_env(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment for a nested run: no engine of its own, nothing that would
    make it a part of this run, then `extra`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DOCKER_", "COV_CORE_")) and k not in _NOT_INHERITED
    }
    return {**env, **extra}


def _reapers_of(run_ids: set[str]) -> list[int]:
    """Reaper processes still watching one of `run_ids`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            if "tierharness.engine.reaper" in argv and any(run in argv for run in run_ids):
                found.append(int(entry.name))
    return found


def _wait(what: str, check: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while (left := check()) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left, f"{what} after {seconds:g}s: {left}"


@pytest.mark.usefixtures("harness_reaper")  # the local registry is removed if this run is killed
def test_the_tiers_run_on_a_remote_tls_engine_and_never_on_the_local_one(
    tls_engine: tuple[SecondEngine, EngineTls], tmp_path: Path
) -> None:
    engine, _ = tls_engine
    total = time.monotonic()
    steps: list[_Step] = []
    runs = {step: new_run_id(f"remote-{step}-") for step in ("slice", "e2e", "context")}
    prepare_clients()  # the remote client below checks TLS against the engine's own CA
    local = engine_client()
    remote = docker.DockerClient.from_env(environment=engine.env(), timeout=120)
    clone = tmp_path / "clone"
    try:
        with _team_setup(engine, tmp_path / "registry", steps) as common:
            local_creates, remote_creates = _Creates(local), _Creates(remote)
            try:
                steps.append(_run_slice(engine, runs["slice"], common, tmp_path))
                steps.append(_run_e2e(engine, runs["e2e"], common, clone))
                steps.append(_run_context_slice(engine, runs["context"], common, tmp_path))
            finally:
                seen_local, seen_remote = local_creates.stop(), remote_creates.stop()
        remote_runs = _created_on_the_remote_engine_only(runs, seen_local, seen_remote, local)
        # The build ran on the remote engine: its image is there, not here.
        built = json.loads((clone / "build" / "image.json").read_text())["image"]
        assert remote.images.get(built).id
        assert harness_engine.local_image_id(built) is None, f"{built} was built on the local engine"

        # The runs' reapers finish their sweep of the remote engine; then nothing is left there.
        _wait("reapers of the remote runs still running", lambda: _reapers_of(remote_runs), 60)
        left = functools.partial(remote.containers.list, all=True, ignore_removed=True)
        _wait("containers left on the remote engine", left, 30)
        assert remote.networks.list(filters={"label": LABEL_RUN}) == []
        assert remote.volumes.list(filters={"label": LABEL_RUN}) == []
    finally:
        remote.close()
        shutil.rmtree(clone, ignore_errors=True)  # a venv, a wheelhouse and an OCI image

    step = _Step("engine stop")
    started = time.monotonic()
    record = engine.record
    engine.close()
    step.seconds = time.monotonic() - started
    steps.append(step)
    assert leftovers(record) == []
    _print_table(steps, time.monotonic() - total)


def _created_on_the_remote_engine_only(
    runs: Mapping[str, str], seen_local: list[dict[str, str]], seen_remote: list[dict[str, str]], local: Any
) -> set[str]:
    """Every run created its containers on the second engine, and the local engine saw none of
    them, nor any container of the runs the tests themselves made up. Returns those runs."""
    remote_runs = {labels[LABEL_RUN] for labels in seen_remote if LABEL_RUN in labels}
    assert set(runs.values()) <= remote_runs, f"runs without a container on the remote engine: {runs}"
    roles = {(labels.get(LABEL_RUN), labels.get(LABEL_ROLE)) for labels in seen_remote}
    for run, role in ((runs["slice"], "postgres"), (runs["slice"], "redis"), (runs["e2e"], "app"),
                      (runs["e2e"], "postgres"), (runs["context"], "postgres")):  # fmt: skip
        assert (run, role) in roles, f"no {role} container of run {run} on the remote engine"
    remote_names = {labels["name"] for labels in seen_remote if "name" in labels}
    on_local = [
        labels
        for labels in seen_local
        if labels.get(LABEL_RUN) in remote_runs or labels.get("name") in remote_names
    ]
    assert on_local == [], f"containers of the remote runs created on the local engine: {on_local}"
    for run in remote_runs:
        assert local.containers.list(all=True, filters={"label": f"{LABEL_RUN}={run}"}) == []
    print(
        f"{len(seen_remote)} containers of {len(remote_runs)} runs created on the remote engine, none "
        f"locally ({len(seen_local)} containers of other runs created locally meanwhile)"
    )
    return remote_runs


def _run_slice(engine: SecondEngine, run_id: str, common: Mapping[str, str], tmp_path: Path) -> _Step:
    """The integration slice, over DOCKER_HOST=tcp://... with TLS, from this checkout."""
    step = _Step("integration slice (-n 2)")
    env = _child_env(
        {**common, **engine.env(), "HARNESS_RUN_ID": run_id, "HARNESS_STATE_DIR": str(tmp_path / "slice")}
    )
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2", *INTEGRATION_SLICE]
    _run(step, argv, env=env, cwd=ROOT, timeout=900)
    return step


def _run_e2e(engine: SecondEngine, run_id: str, common: Mapping[str, str], clone: Path) -> _Step:
    """`nox -s e2e` from a clean clone (its own build/, .nox/ and reports), over DOCKER_HOST with
    TLS: the image is built through buildx on that engine, then tested over HTTP there."""
    step = _Step("nox -s e2e (build + stack)")
    snapshot(ROOT, clone)
    wheelhouse = ROOT / "build" / "wheelhouse"
    if (wheelhouse / ".stamp.json").exists():  # what a CI cache would give; else it is downloaded
        shutil.copytree(wheelhouse, clone / "build" / "wheelhouse", copy_function=os.link)
    env = _child_env({**common, **engine.env(), "HARNESS_RUN_ID": run_id})
    argv = [_nox(), "-s", "e2e", "--", "-p", "no:cacheprovider", *E2E_SLICE]
    _run(step, argv, env=env, cwd=clone, timeout=1800)
    return step


def _run_context_slice(engine: SecondEngine, run_id: str, common: Mapping[str, str], tmp_path: Path) -> _Step:
    """A worker's services through the docker context alone (`docker context use`): no
    DOCKER_HOST, no TLS variables; the context holds the engine's address and certificates.
    Its build goes through HARNESS_BUILDER: a docker context's name names its engine's builder."""
    step = _Step("context slice (-n 0)")
    env = _child_env(
        {
            **common,
            "HARNESS_RUN_ID": run_id,
            "HARNESS_STATE_DIR": str(tmp_path / "context"),
            "HARNESS_BUILDER": _context_name(engine),
        }
    )
    _docker("context", "use", _context_name(engine), env=env)
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0", *CONTEXT_SLICE]
    _run(step, argv, env=env, cwd=ROOT, timeout=600)
    return step


def _print_table(steps: list[_Step], total: float) -> None:
    width = max(len(s.name) for s in steps)
    lines = [f"{'step':<{width}}  seconds", *(f"{s.name:<{width}}  {s.seconds:7.1f}" for s in steps)]
    lines.append(f"{'total (this test)':<{width}}  {total:7.1f}")
    print("\n" + "\n".join(lines), flush=True)
