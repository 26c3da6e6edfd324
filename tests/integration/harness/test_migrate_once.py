"""Migrate once, start migrated: the first worker of a migrations' digest migrates, seeds and
commits; the next starts from that image with no migration process, under credentials of its
own; a changed migration is a new key, so its workers migrate afresh; the tables-exist guard
still stops a migration that creates nothing; a failed pruning of older images keeps the
commit; `clean` removes the images."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest

from tierharness.config import load_settings
from tierharness.engine.client import engine_client
from tierharness.engine.labels import LABEL_RUN, RunIdentity
from tierharness.engine.reaper import remove_labelled
from tierharness.errors import HarnessError
from tierharness.runtime import migrated
from tierharness.runtime.migrated import remove_migrated
from tierharness.runtime.worker import Worker, WorkerPlan, provision

# Each run of the command leaves a line in ran.log: how the test knows it ran (or not).
MIGRATE = """
import pathlib, psycopg
pathlib.Path("ran.log").open("a").write("migrate\\n")
with psycopg.connect("", autocommit=True) as conn:
    conn.execute("CREATE TABLE IF NOT EXISTS users (id serial PRIMARY KEY, name text NOT NULL)")
# {salt}
"""
SEED = """
import pathlib, psycopg
pathlib.Path("ran.log").open("a").write("seed\\n")
with psycopg.connect("", autocommit=True) as conn:
    conn.execute("INSERT INTO users (name) VALUES ('admin')")
"""


@pytest.fixture
def project(tmp_path: Path) -> Iterator[WorkerPlan]:
    """A project whose migrations no earlier run has seen (a salt in the file), its plan, and
    afterwards everything its workers started or committed removed, the environment restored."""
    root = tmp_path / "project"
    (root / "migrations").mkdir(parents=True)
    (root / "migrations" / "migrate.py").write_text(MIGRATE.format(salt=uuid.uuid4().hex))
    (root / "seed.py").write_text(SEED)
    images = load_settings().images
    plan = WorkerPlan(
        rootdir=root,
        state_dir=root / ".harness",
        postgres_image=images["postgres"].local,
        redis_image=None,
        migrate="python migrations/migrate.py",
        seed="python seed.py",
        migrate_once=True,
    )
    saved = dict(os.environ)
    client = engine_client()
    try:
        yield plan
    finally:
        os.environ.clear()
        os.environ.update(saved)
        remove_labelled(client, {"label": [f"{LABEL_RUN}={plan.rootdir.name}-{tmp_path.name}"]})
        remove_migrated(client, rootdir=plan.rootdir)  # its own: the suite's others are in use


def _worker(plan: WorkerPlan, name: str, said: list[str] | None = None) -> Worker:
    run_id = f"{plan.rootdir.name}-{plan.rootdir.parent.name}"
    log = said.append if said is not None else lambda _m: None
    return provision(plan, RunIdentity.for_this_process(run_id, name), log=log)


def _ran(plan: WorkerPlan) -> list[str]:
    log = plan.rootdir / "ran.log"
    return log.read_text().split() if log.exists() else []


def _users(worker: Worker) -> list[str]:
    with psycopg.connect(worker.postgres.url) as conn:
        return [row[0] for row in conn.execute("SELECT name FROM users ORDER BY id")]


def test_the_second_worker_starts_migrated_under_its_own_credentials(project: WorkerPlan) -> None:
    said: list[str] = []
    first = _worker(project, "gw0", said)
    try:
        assert first.record["migrated_image"] is False
        assert first.record["migrated_image_committed"] is True, (first.record, said)
        assert _ran(project) == ["migrate", "seed"]
        second = _worker(project, "gw1")
        try:
            assert second.record["migrated_image"] is True
            assert second.record["migrate_seconds"] == 0
            assert _ran(project) == ["migrate", "seed"]  # neither command ran again
            assert _users(second) == ["admin"]  # the seed's rows came with the image
            assert second.postgres.user != first.postgres.user
            assert second.postgres.dbname == "db_gw1"
            # The first worker's password opens nothing in the second's server.
            theirs = replace(second.postgres, user=first.postgres.user, password=first.postgres.password)
            with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
                psycopg.connect(theirs.url, connect_timeout=5).close()
            image = engine_client().images.get(second._containers[0].attrs["Config"]["Image"])
            config = json.dumps(image.attrs["Config"]) + json.dumps(image.history())
            assert first.postgres.password not in config  # not in its environment, labels or history
            assert "POSTGRES_PASSWORD=" in config
        finally:
            second.close()
    finally:
        first.close()
    # `clean` takes the image (this project's only: the suite's own workers start from theirs
    # meanwhile), and the next worker migrates again.
    assert remove_migrated(engine_client(), rootdir=project.rootdir) == 1
    after = _worker(project, "gw2")
    try:
        assert after.record["migrated_image"] is False
        assert _ran(project) == ["migrate", "seed", "migrate", "seed"]
    finally:
        after.close()


def test_a_changed_migration_gets_fresh_migrated_workers(project: WorkerPlan) -> None:
    _worker(project, "gw0").close()
    migration = project.rootdir / "migrations" / "migrate.py"
    added = migration.read_text().replace("name text NOT NULL", "name text NOT NULL, email text")
    migration.write_text(added)
    changed = _worker(project, "gw1")
    try:
        assert changed.record["migrated_image"] is False  # a new key: migrated, not the old image
        assert _ran(project) == ["migrate", "seed", "migrate", "seed"]
        query = "SELECT column_name FROM information_schema.columns WHERE table_name = 'users' ORDER BY 1"
        with psycopg.connect(changed.postgres.url) as conn:
            columns = sorted(r[0] for r in conn.execute(query))
        assert columns == ["email", "id", "name"]
    finally:
        changed.close()
    again = _worker(project, "gw2")
    try:
        assert again.record["migrated_image"] is True
        with psycopg.connect(again.postgres.url) as conn:
            assert conn.execute("SELECT email FROM users").fetchall() == [(None,)]
    finally:
        again.close()


def test_the_guard_still_stops_a_migration_that_creates_nothing(project: WorkerPlan) -> None:
    nothing = replace(project, migrate="python -c pass", seed=None)
    with pytest.raises(HarnessError, match="created nothing in the worker's database"):
        _worker(nothing, "gw0")
    assert remove_migrated(engine_client(), rootdir=project.rootdir) == 0  # and committed nothing


def test_a_failed_pruning_of_older_images_keeps_the_commit(
    project: WorkerPlan, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pruning lists and inspects every migrated image while other runs remove theirs: when it
    fails, the image just committed is still kept and reported, and the failure is said."""

    def refused(_client: object) -> None:
        raise RuntimeError("an image went while it was inspected")

    monkeypatch.setattr(migrated, "prune_migrated", refused)
    said: list[str] = []
    first = _worker(project, "gw0", said)
    try:
        assert first.record["migrated_image_committed"] is True, (first.record, said)
        assert any("older migrated images were not pruned (RuntimeError" in line for line in said), said
    finally:
        first.close()
    assert remove_migrated(engine_client(), rootdir=project.rootdir) == 1  # the image was kept
