"""The post-mortem's pieces that need no engine: the bound's setting, what the failure report
prints (no password), and the commands `connect` runs."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from tierharness.errors import HarnessError
from tierharness.plugin.postmortem import keep_failed_limit
from tierharness.runtime.containers import PostgresInfo, RedisInfo
from tierharness.runtime.postmortem import KeptFailure, connection, forget_stale_claims, kept_count

PG = PostgresInfo("c1", "127.0.0.1", 5544, "ukept", "pg-secret-1", "db_gw0")
RD = RedisInfo("c2", "127.0.0.1", 6644, "rd-secret-2")


@pytest.mark.parametrize("raw", ["3", " 12 "])
def test_the_bound_is_a_positive_whole_number(raw: str) -> None:
    assert keep_failed_limit(raw) == int(raw)


@pytest.mark.parametrize("raw", ["0", "-1", "two", "", None, "1.5"])
def test_a_bad_bound_names_the_setting(raw: str | None) -> None:
    with pytest.raises(HarnessError) as err:
        keep_failed_limit(raw)
    assert "harness_keep_failed_max" in str(err.value)


def test_the_report_gives_ready_commands_and_no_password() -> None:
    kept = KeptFailure("tests/test_a.py::test_it's", PG, RD, 3600.0, ("c1", "c2"))
    text = "\n".join(kept.commands()) + repr(kept)
    assert "pg-secret-1" not in text
    assert "rd-secret-2" not in text
    assert """python -m tierharness connect 'tests/test_a.py::test_it'\\''s'""" in text
    assert 'psql "postgresql://ukept@127.0.0.1:5544/db_gw0"' in text
    assert "redis-cli -u redis://127.0.0.1:6644/0" in text
    without_redis = KeptFailure("t::x", PG, None, 3600.0)
    assert not [line for line in without_redis.commands() if "redis" in line]


def _container(role: str, env: list[str], cmd: list[str], labels: dict[str, str]) -> SimpleNamespace:
    return SimpleNamespace(
        id=f"id-{role}", labels={"harness.role": role, **labels}, attrs={"Config": {"Env": env, "Cmd": cmd}}
    )


def test_connect_runs_psql_without_a_password_and_redis_cli_with_it_in_its_environment_only() -> None:
    env = ["POSTGRES_USER=ukept", "POSTGRES_PASSWORD=pg-secret-1", "POSTGRES_DB=db_gw0"]
    found = [
        _container("postgres", env, [], {"harness.port": "5544"}),
        _container("redis", [], ["redis-server", "--requirepass", "rd-secret-2"], {}),
    ]
    psql = connection(found, to_redis=False, extra=["-c", "select 1"], tty=False)
    local = ["-p", "5544", "-U", "ukept", "-d", "db_gw0"]
    assert psql.argv == ["docker", "exec", "-i", "id-postgres", "psql", *local, "-c", "select 1"]
    assert psql.env == {}
    cli = connection(found, to_redis=True, extra=["GET", "k"], tty=True)
    assert "rd-secret-2" not in cli.argv
    assert cli.env == {"REDISCLI_AUTH": "rd-secret-2"}
    assert cli.argv[:6] == ["docker", "exec", "-it", "-e", "REDISCLI_AUTH", "id-redis"]
    with pytest.raises(HarnessError, match="no redis container"):
        connection(found[:1], to_redis=True, extra=[], tty=False)


def test_claims_older_than_a_kept_copy_lives_are_forgotten_and_newer_ones_still_count(tmp_path: Path) -> None:
    folder = tmp_path / "failed"
    folder.mkdir()
    now = time.time()
    for name, run, age in [("old", "run-a", 5 * 3600), ("new", "run-b", 60), ("this", "run-c", 1)]:
        claim = {"run": run, "test": f"t::{name}", "at": now - age}
        (folder / f"failed-{name}.json").write_text(json.dumps(claim), encoding="utf-8")
    (folder / "failed-torn.json").write_text("{", encoding="utf-8")  # another writer's, mid-write

    assert forget_stale_claims(tmp_path, idle_seconds=4 * 3600) == 1
    assert sorted(p.stem for p in folder.glob("*.json")) == ["failed-new", "failed-this", "failed-torn"]
    assert kept_count(tmp_path, "run-b") == 1
    assert kept_count(tmp_path, "run-a") == 0
