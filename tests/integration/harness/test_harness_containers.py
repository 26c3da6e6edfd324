"""The harness itself against the real engine: readiness errors, the reaper, images, builds."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from harness.build.buildx import buildx_build
from harness.build.images import resolve_images
from harness.config import load_settings
from harness.engine import engine_client
from harness.errors import BuildError, HarnessError, ReadinessError
from harness.pytest_plugin import HarnessServices
from harness.runtime.containers import start_postgres
from harness.runtime.labels import LABEL_RUN, RunIdentity
from harness.runtime.reaper import containers_of, remove_labelled, sweep_dead_runs
from harness.runtime.reset import StateReset


def _labelled(run_id: str) -> list:
    return containers_of(engine_client(), run_id)


def _wait_gone(run_id: str, seconds: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if not _labelled(run_id):
            return time.monotonic() - started
        time.sleep(0.5)
    raise AssertionError(f"containers of run {run_id} still there after {seconds}s: {_labelled(run_id)}")


def _idle_container(identity: RunIdentity) -> None:
    image = load_settings().image("base").local
    engine_client().containers.run(
        image, ["sleep", "300"], detach=True, labels=identity.labels("idle"), name=identity.name("idle")
    )


def test_each_worker_has_its_own_labelled_containers(harness_services: HarnessServices) -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "master")
    mine = _labelled(harness_services.identity.run_id)
    roles = sorted(c.labels["harness.role"] for c in mine if c.labels["harness.worker"] == worker)
    assert roles == ["postgres", "redis"]
    assert harness_services.identity.worker == worker


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


def test_reaper_removes_a_killed_runs_containers_and_spares_live_runs(tmp_path: Path) -> None:
    owner = subprocess.Popen(["sleep", "300"])
    dead_run = RunIdentity(f"t-{uuid.uuid4().hex[:8]}", "gw9", owner.pid)
    live_run = RunIdentity(f"t-{uuid.uuid4().hex[:8]}", "gw9", os.getpid())
    try:
        _idle_container(dead_run)
        _idle_container(live_run)
        reaper = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "harness.runtime.reaper",
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
        owner.kill()
        owner.wait()
        took = _wait_gone(dead_run.run_id, 30)
        assert reaper.wait(timeout=30) == 0
        assert len(_labelled(live_run.run_id)) == 1
        print(f"reaper removed the dead run's container {took:.1f}s after its owner died")
    finally:
        owner.kill()
        remove_labelled(engine_client(), {"label": [f"{LABEL_RUN}={dead_run.run_id}"]})
        remove_labelled(engine_client(), {"label": [f"{LABEL_RUN}={live_run.run_id}"]})


def test_sweep_removes_runs_whose_owner_is_gone_only() -> None:
    owner = subprocess.Popen(["true"])
    owner.wait()
    dead_run = RunIdentity(f"t-{uuid.uuid4().hex[:8]}", "gw9", owner.pid)
    live_run = RunIdentity(f"t-{uuid.uuid4().hex[:8]}", "gw9", os.getpid())
    try:
        _idle_container(dead_run)
        _idle_container(live_run)
        swept = sweep_dead_runs(engine_client())
        assert dead_run.run_id in swept
        assert live_run.run_id not in swept
        assert _labelled(dead_run.run_id) == []
        assert len(_labelled(live_run.run_id)) == 1
    finally:
        remove_labelled(engine_client(), {"label": [f"{LABEL_RUN}={live_run.run_id}"]})


KILL_TARGET = """
import time
def test_hangs(harness_services):
    time.sleep(120)
"""


def test_sigkilled_run_leaves_no_container_behind(tmp_path: Path, project_root: Path) -> None:
    """The acceptance check, end to end: SIGKILL a pytest run mid-test; its containers go."""
    (tmp_path / "test_target.py").write_text(KILL_TARGET)
    settings = load_settings()
    run_id = f"kill-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "HARNESS_RUN_ID": run_id, "HARNESS_PROJECT_ROOT": str(project_root)}
    env.pop("PYTEST_XDIST_WORKER", None)
    env.pop("COV_CORE_SOURCE", None)
    proc = subprocess.Popen(
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
    import psycopg

    reset = StateReset(harness_services.postgres, harness_services.redis, ["schema_migrations"], strategy)
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
    with pytest.raises(HarnessError, match='use "deletion" or "truncation"'):
        StateReset(harness_services.postgres, harness_services.redis, [], "vacuum")
