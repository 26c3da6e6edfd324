"""Runtime pieces that need no engine: reuse keys and locks, the manifest line, templates,
the worker's environment mapping."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tierharness.engine.reuse import (
    LABEL_REUSE,
    LABEL_REUSE_OWNER,
    LABEL_STATE_DIR,
    ReuseSlot,
    kept_containers,
    migrations_digest,
    owner_of,
    remove_kept,
    reuse_key,
)
from tierharness.errors import HarnessError
from tierharness.runtime.containers import PostgresInfo, RedisInfo
from tierharness.runtime.manifest import summary_line
from tierharness.runtime.networking import host_network_refusal, use_host_network
from tierharness.runtime.templates import render
from tierharness.runtime.worker import WorkerPlan, render_mapping

PG = PostgresInfo("c1", "127.0.0.1", 5555, "u1", "s3cret-pw", "db_gw0", 0.4)
RD = RedisInfo("c2", "127.0.0.1", 6666, "r3dis-pw", 0.1)


def test_passwords_never_show_in_reprs() -> None:
    assert "s3cret-pw" not in repr(PG)
    assert "r3dis-pw" not in repr(RD)
    assert PG.as_dict()["password"] == "***"


def test_the_mapping_always_carries_libpq_variables_and_the_projects_own() -> None:
    plan = WorkerPlan(
        rootdir=Path("."),
        state_dir=Path("."),
        postgres_image="p",
        redis_image=None,
        env_templates={"POSTGRES_SERVER": "{postgres.host}", "DATABASE_URL": "sqlite://override"},
    )
    mapping = render_mapping(plan, PG, None)
    assert mapping["PGHOST"] == "127.0.0.1"
    assert mapping["PGPORT"] == "5555"
    assert mapping["PGDATABASE"] == "db_gw0"
    assert mapping["POSTGRES_SERVER"] == "127.0.0.1"
    assert mapping["DATABASE_URL"] == "sqlite://override"  # the project's own wins
    assert "REDIS_URL" not in mapping  # no Redis, no REDIS_URL


def test_a_plan_made_before_its_images_are_resolved_keeps_redis_url() -> None:
    """The controller's placeholders are rendered from a plan whose image names are still
    empty: an empty name is Redis not resolved yet, not Redis switched off (None)."""
    plan = WorkerPlan(rootdir=Path("."), state_dir=Path("."), postgres_image="", redis_image="")
    assert plan.templates()["REDIS_URL"] == "{redis.url}"
    assert "REDIS_URL" not in replace(plan, redis_image=None).templates()


def test_a_redis_placeholder_without_redis_says_redis_is_off() -> None:
    with pytest.raises(HarnessError, match="redis is switched off"):
        render({"X": "{redis.url}"}, {"postgres": PG}, where="[tool.harness.test-env]")


def test_reuse_keys_change_with_what_the_containers_hold(tmp_path: Path) -> None:
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "0001.sql").write_text("CREATE TABLE a (id int);")
    base = migrations_digest(tmp_path, "migrate")
    key = reuse_key(tmp_path, "gw0", {"postgres": "sha256:a"}, base)
    assert key == reuse_key(tmp_path, "gw0", {"postgres": "sha256:a"}, base)
    assert key != reuse_key(tmp_path, "gw1", {"postgres": "sha256:a"}, base)
    assert key != reuse_key(tmp_path, "gw0", {"postgres": "sha256:b"}, base)
    (tmp_path / "migrations" / "0002.sql").write_text("CREATE TABLE b (id int);")
    assert migrations_digest(tmp_path, "migrate") != base
    assert migrations_digest(tmp_path, "other command") != migrations_digest(tmp_path, "migrate")


def test_a_reuse_key_held_by_one_run_is_not_given_to_another(tmp_path: Path) -> None:
    first, second = ReuseSlot(tmp_path, "k1"), ReuseSlot(tmp_path, "k1")
    assert first.acquire()
    assert not second.acquire()  # the second run gets fresh containers
    first.release()
    assert second.acquire()
    second.release()
    assert (tmp_path / "reuse" / "k1.json").exists()  # the last use is recorded


def test_a_reuse_key_is_the_users_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two users' runs of the same checkout path never take each other's containers."""
    key = reuse_key(tmp_path, "gw0", {"postgres": "sha256:a"}, "m")
    monkeypatch.setattr(os, "getuid", lambda: os.geteuid() + 1)
    assert reuse_key(tmp_path, "gw0", {"postgres": "sha256:a"}, "m") != key
    assert ReuseSlot(tmp_path, "k").labels()[LABEL_REUSE_OWNER] == str(os.geteuid() + 1)


class _Kept:
    def __init__(self, labels: dict[str, str]) -> None:
        self.labels = {LABEL_REUSE: "k", **labels}
        self.removed = False

    def remove(self, **_: Any) -> None:
        self.removed = True


def test_clean_takes_only_the_invoking_users_kept_containers_unless_asked_for_all(tmp_path: Path) -> None:
    me, other = os.getuid(), os.getuid() + 1
    mine = _Kept({LABEL_REUSE_OWNER: str(me)})
    theirs = _Kept({LABEL_REUSE_OWNER: str(other)})
    older = _Kept({LABEL_STATE_DIR: str(tmp_path)})  # kept before the owner label: its state folder's
    unknown = _Kept({LABEL_STATE_DIR: str(tmp_path / "gone")})
    containers = [mine, theirs, older, unknown]
    client = SimpleNamespace(containers=SimpleNamespace(list=lambda **_: list(containers)))

    assert owner_of(older.labels) == tmp_path.stat().st_uid == me
    assert owner_of(unknown.labels) is None
    assert kept_containers(client) == [mine, older]
    assert remove_kept(client) == 2
    assert [c.removed for c in containers] == [True, False, True, False]
    assert remove_kept(client, all_users=True) == 4
    assert all(c.removed for c in containers)


def test_the_summary_line_without_resets_says_so() -> None:
    worker = {
        "postgres": {"container_id": "abcdef123456789", "ready_seconds": 0.4},
        "redis": None,
        "provision_seconds": 0.9,
        "reused": True,
    }
    line = summary_line({"run_id": "r", "workers": {"gw0": worker}}, Path("last-run.json"))
    assert "no resets" in line
    assert "nan" not in line
    assert "reused" in line
    assert "redis" not in line


_HERE = {"OSType": "linux", "OperatingSystem": "Debian GNU/Linux 12", "SecurityOptions": [], "Name": "box"}


@pytest.mark.parametrize(
    ("info", "refused_for"),
    [
        (_HERE, None),
        ({**_HERE, "SecurityOptions": ["name=seccomp,profile=builtin", "name=rootless"]}, "rootless"),
        ({**_HERE, "OperatingSystem": "Docker Desktop"}, "Docker Desktop"),
        ({**_HERE, "OSType": "windows"}, "windows"),
        ({**_HERE, "Name": "ci-job-container"}, "another container or machine"),
    ],
    ids=["this-machine", "rootless", "desktop", "windows", "other-host"],
)
def test_the_host_network_is_used_only_where_it_is_this_processs_loopback(
    info: dict[str, object], refused_for: str | None
) -> None:
    reason = host_network_refusal(info, hostname="box")
    if refused_for is None:
        assert reason is None
    else:
        assert reason is not None
        assert refused_for in reason


def test_an_unknown_network_mode_is_refused_before_the_engine_is_asked() -> None:
    with pytest.raises(HarnessError, match="'overlay' is not a network mode") as err:
        use_host_network("overlay", client=None)
    assert "auto" in err.value.fix
    assert use_host_network("bridge", client=None) is False
