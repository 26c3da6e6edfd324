"""The harness itself against the real engine: readiness errors, the reaper, images, builds."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from docker.errors import APIError
from testcontainers.core.container import DockerContainer

from tests.root import root_only
from tierharness.config import load_settings
from tierharness.engine.client import engine_client, prepare_clients
from tierharness.engine.labels import LABEL_BOOT, LABEL_PID_NS, LABEL_RUN, OwnerPlace, RunIdentity
from tierharness.engine.reaper import containers_of, remove_labelled, sweep_dead_runs
from tierharness.errors import BuildError, HarnessError, ReadinessError
from tierharness.imaging.buildx import buildx_build
from tierharness.imaging.resolution import resolve_images
from tierharness.owners import pid_alive
from tierharness.pytest_plugin import HarnessServices
from tierharness.runtime.containers import publish_on_loopback, start_postgres, stop
from tierharness.runtime.readiness import HostProbe
from tierharness.runtime.reset import StateReset


def _labelled(run_id: str) -> list[Any]:
    return containers_of(engine_client(), run_id)


def _wait_gone(run_id: str, seconds: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if not _labelled(run_id):
            return time.monotonic() - started
        time.sleep(0.5)
    raise AssertionError(f"containers of run {run_id} still there after {seconds}s: {_labelled(run_id)}")


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _dying_with_this_process(argv: list[str], **popen: Any) -> subprocess.Popen[Any]:
    """Start `argv` so that the kernel SIGKILLs it when this process dies (Linux only).

    A test's made-up run is owned by such a process: if the test run is SIGKILLed, the
    owner dies with it, and a reaper's sweep of runs whose owner is gone (the run's reaper,
    or the one `harness_reaper` starts) removes the made-up run's containers instead of the next run.
    """
    libc = ctypes.CDLL(None, use_errno=True)  # loaded here: the child only calls it
    parent = os.getpid()

    def die_with_parent() -> None:
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            os._exit(127)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(127)

    return subprocess.Popen(argv, preexec_fn=die_with_parent, **popen)  # noqa: PLW1509


def _owner() -> subprocess.Popen[Any]:
    """A live owner for a made-up run, dying with this test process."""
    return _dying_with_this_process(["sleep", "300"])


def _idle_container(
    identity: RunIdentity, relabel: dict[str, str] | None = None, *, dead: bool = False
) -> None:
    """`dead`: its labels alone say its run is gone, so any sweeper on this engine (another
    worker's, a reaper) may remove it between its creation and its start, which is a sweep
    doing its job, not a failure to start it."""
    image = load_settings().image("base").local
    # auto_remove: a container no sweep may judge (another pid namespace's) still goes after
    # its sleep if this test is killed before its own cleanup.
    try:
        engine_client().containers.run(
            image, ["sleep", "300"], detach=True, labels={**identity.labels("idle"), **(relabel or {})},
            name=identity.name("idle"), auto_remove=True,
        )  # fmt: skip
    except APIError as exc:
        if not (dead and exc.status_code in (404, 409)):  # gone, or "marked for removal"
            raise


def test_each_worker_has_its_own_labelled_containers(harness_services: HarnessServices) -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "master")
    mine = _labelled(harness_services.identity.run_id)
    roles = sorted(c.labels["harness.role"] for c in mine if c.labels["harness.worker"] == worker)
    assert roles == ["postgres", "redis"]
    assert harness_services.identity.worker == worker


@pytest.mark.usefixtures("harness_reaper")
def test_a_container_that_never_becomes_ready_fails_with_its_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_READY_TIMEOUT", "20")
    identity = RunIdentity(f"t-{uuid.uuid4().hex[:8]}", "bad", os.getpid())
    image = load_settings().image("postgres").local
    with pytest.raises(ReadinessError) as err:
        start_postgres(image, identity, command="postgres -c no_such_setting=1")
    message = str(err.value)
    assert "never became ready" in message
    assert "no_such_setting" in message  # the server's own complaint, from its log
    assert "a psycopg connection" in message  # what was waited for
    assert _labelled(identity.run_id) == []  # the half-started container is gone


class _StatusCheckedWhileRunning:
    """`container`, as seen when testcontainers' running-status check passed just before the
    server exited: the port lookup then finds no mapping (ConnectionError)."""

    def __init__(self, container: Any) -> None:
        self._container = container

    def __getattr__(self, name: str) -> Any:
        return getattr(self._container, name)

    def get_exposed_port(self, port: int) -> int:
        return int(self._container._get_exposed_port(port))


class _LookingAfterItExited(HostProbe):
    """Reads the port mapping only once the container has exited: the race that a server
    failing on a bad setting sometimes wins on a busy machine, made certain."""

    def __init__(self, *args: Any, status_passed: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.status_passed = status_passed

    def wait_until_ready(self, container: Any) -> None:
        wrapped = container.get_wrapped_container()
        deadline = time.monotonic() + 20
        while wrapped.status != "exited":
            assert time.monotonic() < deadline, f"the container never exited: {wrapped.status}"
            time.sleep(0.05)
            wrapped.reload()
        super().wait_until_ready(_StatusCheckedWhileRunning(container) if self.status_passed else container)


@pytest.mark.parametrize("status_passed", [False, True], ids=["exited-at-status-check", "exited-after-it"])
@pytest.mark.usefixtures("harness_reaper")
def test_a_container_that_exits_before_its_port_is_read_fails_with_its_logs(status_passed: bool) -> None:
    identity = RunIdentity(f"t-{uuid.uuid4().hex[:8]}", "early", os.getpid())
    prepare_clients()  # as the harness does before testcontainers makes its client
    container = DockerContainer(load_settings().image("base").local)
    container.with_command(["sh", "-c", "echo refused: bad_setting_at_start; exit 3"])
    container.with_exposed_ports(5432)
    container.with_kwargs(labels=identity.labels("early-exit"))
    publish_on_loopback(container)

    def never(host: str, port: int) -> None:
        raise AssertionError("the probe must not run without a port")

    container.waiting_for(
        _LookingAfterItExited(5432, never, waited_for="a server on 5432", status_passed=status_passed)
    )
    try:
        with pytest.raises(ReadinessError) as err:
            container.start()
    finally:
        stop(container)
    message = str(err.value)
    assert "never became ready" in message
    assert "bad_setting_at_start" in message  # its own log says why
    assert "status: exited" in message
    assert "no port 5432" in message  # what could not be read
    assert _labelled(identity.run_id) == []


@pytest.mark.usefixtures("harness_reaper")
def test_reaper_removes_a_killed_runs_containers_and_spares_live_runs(tmp_path: Path) -> None:
    owner = _owner()
    dead_run = RunIdentity(f"t-{uuid.uuid4().hex[:8]}", "gw9", owner.pid)
    # Same owner, no reaper of its own: the dead run's reaper sweeps it as a run whose owner is gone.
    orphan_run = RunIdentity(f"t-{uuid.uuid4().hex[:8]}", "gw9", owner.pid)
    live_owner = _owner()
    live_run = RunIdentity(f"t-{uuid.uuid4().hex[:8]}", "gw9", live_owner.pid)
    runs = (dead_run, orphan_run, live_run)
    try:
        for run in runs:
            _idle_container(run)
        reaper = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tierharness.engine.reaper",
                "--run-id",
                dead_run.run_id,
                "--pid",
                str(owner.pid),
                "--grace",
                "1",
            ],
            start_new_session=True,
        )
        time.sleep(1)
        assert len(_labelled(dead_run.run_id)) == 1, "reaper acted while the owner was alive"
        assert len(_labelled(orphan_run.run_id)) == 1, "reaper swept a run whose owner was alive"
        owner.kill()
        owner.wait()
        took = _wait_gone(dead_run.run_id, 30)
        assert reaper.wait(timeout=30) == 0
        # Gone, or going: another worker's sweep may have been removing it when the reaper got
        # there (the engine then answers the reaper "removal already in progress").
        left = [c for c in _labelled(orphan_run.run_id) if c.status != "removing"]
        assert left == [], "the reaper left a run whose owner died with its own"
        assert len(_labelled(live_run.run_id)) == 1
        print(f"reaper removed the dead run's container {took:.1f}s after its owner died")
    finally:
        for process in (owner, live_owner):
            process.kill()
            process.wait()
        for run in runs:
            remove_labelled(engine_client(), {"label": [f"{LABEL_RUN}={run.run_id}"]})


@pytest.mark.usefixtures("harness_reaper")
def test_sweep_removes_runs_whose_owner_is_gone_only() -> None:
    # Every worker and reaper on this host sweeps too: one of them may remove the dead run
    # between its owner's death and this sweep. Then this sweep never saw it; try again.
    looked: dict[int, bool] = {}  # owner pid -> alive, as this sweep judged it

    def alive(pid: int, start_time: str | None) -> bool:
        looked[pid] = pid_alive(pid, start_time)
        return looked[pid]

    for _attempt in range(5):
        looked.clear()
        dead_owner, live_owner = _owner(), _owner()
        dead_run = RunIdentity(f"t-{uuid.uuid4().hex[:8]}", "gw9", dead_owner.pid)
        live_run = RunIdentity(f"t-{uuid.uuid4().hex[:8]}", "gw9", live_owner.pid)
        try:
            _idle_container(dead_run)
            _idle_container(live_run)
            dead_owner.kill()
            dead_owner.wait()
            swept = sweep_dead_runs(engine_client(), alive)
            assert live_run.run_id not in swept
            assert looked.get(live_owner.pid) is True
            assert len(_labelled(live_run.run_id)) == 1
            if dead_owner.pid not in looked:
                assert _labelled(dead_run.run_id) == [], "the sweep missed a run whose owner is gone"
                continue  # another sweeper got there first
            assert looked[dead_owner.pid] is False
            assert dead_run.run_id in swept
            # Another sweeper may be removing the same container at this moment (the engine then
            # refuses a second removal): gone within seconds either way.
            _wait_gone(dead_run.run_id, 10)
            return
        finally:
            for process in (dead_owner, live_owner):
                process.kill()
                process.wait()
            remove_labelled(engine_client(), {"label": [f"{LABEL_RUN}={dead_run.run_id}"]})
            remove_labelled(engine_client(), {"label": [f"{LABEL_RUN}={live_run.run_id}"]})
    pytest.fail("other sweepers removed the dead run before this sweep every time")


@pytest.mark.usefixtures("harness_reaper")
def test_sweep_leaves_a_run_of_another_pid_namespace_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two runs share a host name but not a pid namespace (CI jobs in containers on the host
    network): a pid that names no process here may be a live run's there, so the sweep must
    leave that run; a dead pid of this namespace, or a run from before a reboot, is swept."""
    here = OwnerPlace.here()
    assert here.boot_id, "needs Linux's /proc/sys/kernel/random/boot_id"
    assert here.pid_ns, "needs Linux's /proc/self/ns/pid"
    for _attempt in range(5):
        owner = _owner()
        runs = [RunIdentity(f"t-{uuid.uuid4().hex[:8]}", "gw9", owner.pid) for _ in "abc"]
        elsewhere, local, rebooted = runs
        try:
            # As a run's owner in a CI job's own pid namespace labels it.
            _idle_container(elsewhere, {LABEL_PID_NS: "pid:[4026531999]"})
            _idle_container(local)
            _idle_container(rebooted, {LABEL_BOOT: "00000000-0000-0000-0000-000000000000"}, dead=True)
            owner.kill()
            owner.wait()  # its pid now names no process here
            swept = sweep_dead_runs(engine_client())
            assert elsewhere.run_id not in swept, "the sweep judged another pid namespace's pid by this one's"
            # Other sweepers on this host (every worker, every reaper) remove the other two too.
            _wait_gone(local.run_id, 10)
            _wait_gone(rebooted.run_id, 10)
            if not _labelled(elsewhere.run_id):
                continue  # an older harness's sweep on this engine judged it by pid alone: try again
            # Unjudgeable runs still go once older than any run could be.
            monkeypatch.setenv("HARNESS_ORPHAN_AGE", "0")
            time.sleep(1)  # the engine gives containers' creation in whole seconds
            assert elsewhere.run_id in sweep_dead_runs(engine_client())
            _wait_gone(elsewhere.run_id, 10)
            return
        finally:
            owner.kill()
            owner.wait()
            for run in runs:
                remove_labelled(engine_client(), {"label": [f"{LABEL_RUN}={run.run_id}"]})
    pytest.fail("other sweepers removed the other pid namespace's run before this sweep every time")


# The owner of a run in a fresh pid namespace, as a CI job in a container has one: it
# labels as the harness does there and prints the labels; it lives until stdin closes.
OTHER_NAMESPACE_OWNER = """
import json, subprocess, sys
from tierharness.engine.labels import RunIdentity
run_id, pid = sys.argv[1], int(sys.argv[2])
# The namespace's next process gets `pid`, which names no process outside it.
with open("/proc/sys/kernel/ns_last_pid", "w") as last:
    last.write(str(pid - 1))
owner = subprocess.Popen(["sleep", "300"])
assert owner.pid == pid, f"got pid {owner.pid}, not {pid}"
print(json.dumps(RunIdentity(run_id, "gw9", owner.pid).labels("idle")), flush=True)
sys.stdin.read()
owner.kill()
"""


@root_only(
    "a run in a pid namespace of its own (unshare --pid)", "run it as root: sudo .venv/bin/nox -s root-tests"
)
@pytest.mark.usefixtures("harness_reaper")
def test_sweep_leaves_a_live_run_in_its_own_pid_namespace_alone() -> None:
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    for _attempt in range(5):
        free = next(pid for pid in range(pid_max - 1, 300, -1) if not Path(f"/proc/{pid}").exists())
        run = RunIdentity(f"t-{uuid.uuid4().hex[:8]}", "gw9", free)
        # --kill-child: the namespace, and so its owner, ends with unshare, also if this test is killed.
        argv = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", sys.executable, "-c"]
        argv += [OTHER_NAMESPACE_OWNER, run.run_id, str(free)]
        owner = _dying_with_this_process(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert owner.stdout is not None
            assert owner.stdin is not None
            labels = json.loads(owner.stdout.readline() or "null")
            assert labels, f"the owner in its own pid namespace failed (exit {owner.wait()})"
            assert labels["harness.pid-ns"] != OwnerPlace.here().pid_ns
            _idle_container(run, labels)
            swept = sweep_dead_runs(engine_client())
            assert run.run_id not in swept, (
                f"the sweep judged pid {free} of another pid namespace by this one's"
            )
            if not _labelled(run.run_id):
                continue  # an older harness's sweep on this engine judged it by pid alone: try again
            owner.stdin.close()
            assert owner.wait(timeout=30) == 0
            # Its owner is gone now, but nothing here can tell: it stays until HARNESS_ORPHAN_AGE.
            assert run.run_id not in sweep_dead_runs(engine_client())
            return
        finally:
            owner.kill()
            owner.wait()
            remove_labelled(engine_client(), {"label": [f"{LABEL_RUN}={run.run_id}"]})
    pytest.fail("other sweepers removed the other pid namespace's run before this sweep every time")


KILL_TARGET = """
import time
def test_hangs(harness_services):
    time.sleep(120)
"""


@pytest.mark.usefixtures("harness_reaper")
def test_sigkilled_run_leaves_no_container_behind(tmp_path: Path, project_root: Path) -> None:
    """The acceptance check, end to end: SIGKILL a pytest run mid-test; its containers go."""
    (tmp_path / "test_target.py").write_text(KILL_TARGET)
    settings = load_settings()
    run_id = f"kill-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "HARNESS_RUN_ID": run_id, "HARNESS_PROJECT_ROOT": str(project_root)}
    env.pop("PYTEST_XDIST_WORKER", None)
    env.pop("COV_CORE_SOURCE", None)
    # Its own session (so the whole run can be killed at once), yet it dies with this test:
    # if this test's run is killed, the nested run goes too, and its reaper cleans up.
    proc = _dying_with_this_process(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "-n", "2", "--dist", "each",
         f"--rootdir={tmp_path}", "--harness-state-dir", str(tmp_path / "state"),
         "-o", "harness_migrate=", "--harness-postgres-image", settings.image("postgres").local,
         "--harness-redis-image", settings.image("redis").local, str(tmp_path / "test_target.py")],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        # Both workers up: two Postgres and two Redis containers.
        while len(_labelled(run_id)) < 4 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
        up = len(_labelled(run_id))
        os.killpg(proc.pid, 9)  # the controller and its xdist workers, all at once
        output = proc.communicate()[0]
        assert up == 4, f"expected 4 containers up before the kill, saw {up}; run output:\n{output}"
        took = _wait_gone(run_id, 30)
        print(f"all containers of the killed run gone {took:.1f}s after SIGKILL")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
        remove_labelled(engine_client(), {"label": [f"{LABEL_RUN}={run_id}"]})


def test_images_resolve_to_the_local_copy() -> None:
    settings = load_settings()
    (image,) = resolve_images(settings, ["redis"], log=lambda _m: None)
    assert image.source == "local"
    assert image.digest == engine_client().images.get("harness/redis:7").id


def test_a_failing_build_step_names_stage_and_step_and_shows_output(tmp_path: Path) -> None:
    base = load_settings().image("base").local
    (tmp_path / "Dockerfile").write_text(
        f"FROM {base} AS prepare\nRUN echo fine\n"
        "FROM prepare AS final\nRUN echo 'the-step-output' && exit 3\n"
    )
    with pytest.raises(BuildError) as err:
        buildx_build(tmp_path, no_cache=True, log_path=tmp_path / "build.log")
    message = str(err.value)
    assert "stage 'final', step 1/1" in message
    assert "the-step-output" in message


@pytest.mark.parametrize("strategy", ["deletion", "truncation"])
def test_reset_strategies_empty_tables_restart_ids_and_keep_migration_state(
    harness_services: HarnessServices, strategy: str
) -> None:
    reset = StateReset(harness_services.postgres, harness_services.redis, ["schema_migrations"], strategy)
    assert reset.redis is not None  # this project's workers get Redis too
    try:
        with psycopg.connect(harness_services.postgres.url, autocommit=True) as conn:
            conn.execute("INSERT INTO articles (slug, title, body) VALUES ('a', 't', 'b'), ('b', 't', 'b')")
            reset.redis.set("left-over", "1")
            reset.reset()
            assert conn.execute("SELECT count(*) FROM articles").fetchone() == (0,)
            assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] > 0  # type: ignore[index]
            new_id = conn.execute(
                "INSERT INTO articles (slug, title, body) VALUES ('c', 't', 'b') RETURNING id"
            )
            assert new_id.fetchone() == (1,)
            conn.execute("DELETE FROM articles")
        assert reset.redis.dbsize() == 0
        assert reset.stats()["tables"] == ["public.articles"]
    finally:
        reset.close()


def test_unknown_reset_strategy_is_refused(harness_services: HarnessServices) -> None:
    with pytest.raises(HarnessError, match='use "deletion", "truncation" or "snapshot"'):
        StateReset(harness_services.postgres, harness_services.redis, [], "vacuum")
