"""The deploy rehearsal's pure parts and its refusals: nothing here needs Docker."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.root import root_only
from tierharness.config import load_settings
from tierharness.deploy import preflight, rehearse, rotate
from tierharness.deploy.bluegreen import _settle
from tierharness.deploy.monitor import (
    Prometheus,
    PrometheusUnavailableError,
    prometheus_config,
    rehearsal_rules,
)
from tierharness.deploy.preflight import DeployError, check_port_free
from tierharness.deploy.probes import BadSignal
from tierharness.deploy.proxy import haproxy_config
from tierharness.deploy.rehearsal_stack import app_environment
from tierharness.deploy.rehearse import run_rehearsal
from tierharness.deploy.report import Outcome, write_verdict
from tierharness.deploy.rotate import RotationError, rotation_lock
from tierharness.deploy.secrets import hand_over, secret_templates, write_secret
from tierharness.deploy.timeline import Timeline, requests_between


def _no_build(*_a: Any, **_k: Any) -> Any:
    raise AssertionError("the image was built: the refusal came too late")


def test_a_candidate_image_that_does_not_exist_is_refused_before_anything(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(preflight, "local_image_id", lambda _ref: None)
    monkeypatch.setattr(rehearse, "build_image", _no_build)
    monkeypatch.setattr(rehearse, "reaped", _no_build)
    with pytest.raises(DeployError, match=r"candidate image 'nope/missing:1' does not exist") as info:
        run_rehearsal(load_settings(), ["nope/missing:1"])
    assert "nothing was started or changed" in str(info.value)


def test_a_proxy_port_in_use_is_refused_before_anything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rehearse, "build_image", _no_build)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(DeployError, match=f"port {port} on 127.0.0.1 is already in use"):
            check_port_free(port)
        settings = load_settings()
        settings = replace(settings, deploy=replace(settings.deploy, proxy_port=port))
        with pytest.raises(DeployError, match="already in use"):
            run_rehearsal(settings, ["current"])
    check_port_free(port)  # free again
    check_port_free(0)  # 0: a free port is picked, nothing to check


def test_rotating_while_a_rotation_is_in_progress_is_refused(tmp_path: Path) -> None:
    with (
        rotation_lock(tmp_path),
        pytest.raises(RotationError, match="already in progress"),
        rotation_lock(tmp_path),
    ):
        pass
    with rotation_lock(tmp_path):  # released: the next one may run
        pass


class _FakeProm(Prometheus):
    def __init__(self, firing: list[str], samples: int, down: bool = False) -> None:
        super().__init__("http://fake")
        object.__setattr__(self, "_state", (firing, samples, down))

    def _check(self) -> None:
        if self._state[2]:  # type: ignore[attr-defined]
            raise PrometheusUnavailableError("Prometheus did not answer: refused")

    def firing(self, instance: str) -> list[str]:
        self._check()
        return list(self._state[0])  # type: ignore[attr-defined]

    def samples(self, instance: str, window: str) -> int:
        self._check()
        return int(self._state[1])  # type: ignore[attr-defined]


class _Container:
    def __init__(self) -> None:
        self.attrs = {"State": {"Status": "running", "Health": {"Status": "healthy", "Log": []}}}

    def reload(self) -> None:
        pass


def _reh(prom: Prometheus) -> Any:
    class Reh:
        def __init__(self) -> None:
            self.prometheus = prom
            self.apps = {"green": _Container()}
            self.instances = {"green": "app-2"}

    return Reh()


def test_settle_passes_on_data_and_no_alert() -> None:
    _settle(_reh(_FakeProm([], samples=3)), "app-2", 0.3)


def test_settle_rolls_back_on_a_firing_alert() -> None:
    with pytest.raises(BadSignal, match="alert HighErrorRate firing for green"):
        _settle(_reh(_FakeProm(["HighErrorRate"], samples=3)), "app-2", 0.3)


def test_settle_refuses_healthy_on_no_data() -> None:
    with pytest.raises(BadSignal, match="holds no data for green"):
        _settle(_reh(_FakeProm([], samples=0)), "app-2", 0.3)


def test_settle_refuses_healthy_when_prometheus_is_unreachable() -> None:
    with pytest.raises(BadSignal, match="Prometheus is unreachable, so green cannot be judged healthy"):
        _settle(_reh(_FakeProm([], samples=3, down=True)), "app-2", 0.3)


def test_an_unreachable_prometheus_is_an_error_not_an_empty_answer() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        with pytest.raises(PrometheusUnavailableError, match="did not answer"):
            Prometheus(f"http://127.0.0.1:{port}", timeout=1).firing("app-2")


def test_secrets_reach_the_service_as_files_only() -> None:
    templates = load_settings().stack.env
    plain, secret = secret_templates(templates)
    assert set(secret) == {"DATABASE_URL", "REDIS_URL", "API_KEYS"}
    assert not any("password" in t or "api_keys" in t for t in plain.values())


def test_haproxy_routes_every_request_through_the_map_and_its_api_is_a_private_socket() -> None:
    cfg = haproxy_config(8000)
    assert "use_backend be_%[str(active),map(/usr/local/etc/haproxy/active.map,blue)]" in cfg
    assert "stats socket /run/haproxy-api/api.sock mode 600 level admin" in cfg
    assert "ipv4@" not in cfg
    assert cfg.count("option httpchk GET /ready") == 2
    assert "retry-on conn-failure empty-response" in cfg


def test_prometheus_config_scrapes_named_instances() -> None:
    config = json.loads(prometheus_config({"app-1": "a:8000"}, interval="1s"))
    assert config["scrape_configs"][0]["static_configs"] == [
        {"targets": ["a:8000"], "labels": {"instance": "app-1"}}
    ]
    assert config["rule_files"] == ["/etc/prometheus/rules.yml"]


def test_rehearsal_rules_change_only_the_hold() -> None:
    assert rehearsal_rules("  - alert: X\n    expr: up == 0\n    for: 5m\n", "1s") == (
        "  - alert: X\n    expr: up == 0\n    for: 1s\n"
    )


def test_requests_are_split_at_the_switch_and_the_drain(tmp_path: Path) -> None:
    history = tmp_path / "h.csv"
    rows = ["Timestamp,Name,Total Request Count,Total Failure Count"]
    rows += [f"{100 + s},Aggregated,{s * 10},{1 if s >= 4 else 0}" for s in range(8)]
    history.write_text("\n".join(rows) + "\n")
    spans = requests_between(history, 102.5, 105.0)
    assert spans == {
        "before": {"requests": 20, "failures": 0},
        "during": {"requests": 30, "failures": 1},
        "after": {"requests": 20, "failures": 0},
    }


def test_timeline_is_written_as_text_and_json(tmp_path: Path) -> None:
    timeline = Timeline()
    timeline.mark("switch", "map", name="switch", echo=False)
    timeline.summary["verdict"] = "PASSED"
    path = timeline.write(tmp_path)
    data = json.loads(path.read_text())
    assert data["events"][0]["step"] == "switch"
    assert "switch" in data["marks"]
    assert "verdict: PASSED" in (tmp_path / "timeline.txt").read_text()


def test_the_service_environment_holds_file_paths_never_secret_values(tmp_path: Path) -> None:
    pg = SimpleNamespace(user="u1", password="pgsecret0123456789", dbname="db")
    rd = SimpleNamespace(password="redissecret0123456")
    keys = {"a": "apikey0123456789abcdef"}
    env = app_environment(load_settings(), pg, rd, keys, tmp_path / "secrets")
    for value in env.values():
        assert not any(secret in value for secret in ("pgsecret", "redissecret", "apikey0123")), value
    assert {k for k in env if k.endswith("_FILE")} == {"DATABASE_URL_FILE", "REDIS_URL_FILE", "API_KEYS_FILE"}
    assert "pgsecret0123456789" in (tmp_path / "secrets" / "database_url").read_text()
    assert (tmp_path / "secrets" / "api_keys").read_text().strip() == "a:apikey0123456789abcdef"


def _walk_private(folder: Path) -> list[str]:
    """Every entry under `folder` (itself included) that is not the invoking user's alone."""
    wrong = []
    for path in [folder, *folder.rglob("*")]:
        st = path.lstat()
        wanted = 0o700 if path.is_dir() else 0o600
        if (st.st_mode & 0o777, st.st_uid) != (wanted, os.geteuid()):
            wrong.append(
                f"{path.name}: {st.st_mode & 0o777:o} uid {st.st_uid} (want {wanted:o} uid {os.geteuid()})"
            )
    return wrong


def test_the_secret_files_are_the_invoking_users_alone_also_after_a_rotation(tmp_path: Path) -> None:
    """The CI tiers run as a non-root user: nobody else on the host may read the secrets."""
    pg = SimpleNamespace(user="u1", password="pgsecret0123456789", dbname="db")
    rd = SimpleNamespace(password="redissecret0123456")
    folder = tmp_path / "secrets"
    app_environment(load_settings(), pg, rd, {"a": "apikey0123456789abcdef"}, folder)
    assert sorted(p.name for p in folder.iterdir()) == ["api_keys", "database_url", "redis_url"]
    assert _walk_private(folder) == []
    rotate.write_secret(folder / "api_keys", "a:new")  # a rotation: a new file renamed over the old
    assert _walk_private(folder) == []
    assert (folder / "api_keys").read_text() == "a:new\n"


@root_only("handing files to another uid (chown)", "run it as root: sudo .venv/bin/nox -s root-tests")
def test_as_root_the_secrets_belong_to_the_image_user_alone_also_after_a_rotation(tmp_path: Path) -> None:
    folder = tmp_path / "secrets"
    folder.mkdir()
    write_secret(folder / "api_keys", "a:old")
    hand_over(folder, "10001:10001")
    write_secret(folder / "api_keys", "a:new")  # a rotation: a new file renamed over the old
    st = (folder / "api_keys").stat()
    assert (st.st_uid, st.st_mode & 0o777) == (10001, 0o600)
    assert (folder.stat().st_uid, folder.stat().st_mode & 0o777) == (10001, 0o700)
    assert (folder / "api_keys").read_text() == "a:new\n"


def test_a_second_rehearsal_of_a_checkout_waits_for_the_first_then_gives_up_naming_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = replace(load_settings(), state_dir=tmp_path / "state")
    settings.state_dir.mkdir()
    lock = settings.state_dir / "deploy.lock"

    def first_rehearsal(seconds: float) -> subprocess.Popen[str]:
        """Another process holding the lock for `seconds`, as a running rehearsal does."""
        holder = subprocess.Popen(
            [sys.executable, "-c", "import sys, time; from filelock import FileLock\n"
             "with FileLock(sys.argv[1]):\n    print('held', flush=True); time.sleep(float(sys.argv[2]))",
             str(lock), str(seconds)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        return holder

    holder = first_rehearsal(30)
    monkeypatch.setattr(rehearse, "_REHEARSAL_WAIT", 0.3)
    try:
        with (
            pytest.raises(DeployError, match="another deploy rehearsal held") as err,
            rehearse._one_rehearsal_at_a_time(settings, log=lambda _m: None),
        ):
            pytest.fail("ran beside another rehearsal")
        assert str(lock) in str(err.value)
    finally:
        holder.kill()
        holder.wait()

    # The first one ends while the second waits: the second goes ahead, having said why it waited.
    holder = first_rehearsal(0.5)
    monkeypatch.setattr(rehearse, "_REHEARSAL_WAIT", 20.0)
    said: list[str] = []
    with rehearse._one_rehearsal_at_a_time(settings, log=said.append):
        assert holder.wait(timeout=5) == 0
    assert any("waiting for it" in line for line in said), said


_SHIPPED_RULE = "spec:\n  groups:\n    - name: g\n      rules:\n        - alert: A\n          for: 1m\n"


def _project(root: Path) -> Path:
    """A project of its own (the in-image unit tier has no deploy/ folder), shipping a rule with for: 1m."""
    (root / "deploy" / "k8s").mkdir(parents=True)
    (root / "deploy" / "k8s" / "prometheusrule.yaml").write_text(_SHIPPED_RULE)
    (root / "pyproject.toml").write_text("[tool.harness]\n")
    return root


def _history(path: Path, failures_from: int) -> Path:
    """Locust's per-second history, 1000..1020: 10 requests a second, one failing a second from
    `failures_from` on; responses fast."""
    rows = ["Timestamp,Name,100%,Total Request Count,Total Failure Count"]
    rows += [f"{t},Aggregated,40,{(t - 999) * 10},{max(0, t - failures_from + 1)}" for t in range(1000, 1021)]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_the_rollback_is_timed_from_the_first_bad_request_and_reported_as_rehearsed_and_shipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The alert was seen 2 s before blue served alone, but clients got errors from t=1003 on:
    11 s from the first bad request, over the 10 s limit."""
    monkeypatch.chdir(_project(tmp_path / "project"))
    history = _history(tmp_path / "h.csv", failures_from=1003)
    outcome = Outcome("errors", "img", deployed=False, reason="alert HighErrorRate firing for green")
    outcome.switch_at, outcome.rolled_back_at = 1000.5, 1013.0
    outcome.signal_after_switch, outcome.rollback_seconds = 10.5, 2.0
    results = {"stats": {"total": {"requests": 200, "failures": 11, "p95_ms": 40, "rps": 10.0}}}
    timeline = Timeline()
    code = write_verdict(
        timeline, [(outcome, True)], results, history, tmp_path, expect_rollback=True, limit=10.0
    )
    capsys.readouterr()
    line = timeline.summary["errors"]
    assert "11.00s from the first bad request" in line, line
    assert "about 129s with the rules as shipped (computed, not measured)" in line, line
    assert code == 1
    assert "11.00s from the first bad request (limit 10s)" in timeline.summary["verdict"]
    figures = json.loads((tmp_path / "timeline.json").read_text())["figures"]["rollback"]
    [errors] = figures["candidates"]
    assert errors["first_bad_request"] == 1002.0
    assert errors["rehearsed_seconds"] == 11.0
    # As shipped: the rehearsal's 1 s hold and 1 s evaluation replaced by for: 1m and 1m.
    assert errors["shipped_seconds"] == 11.0 - 1 - 1 + 60 + 60
    assert "first bad request" in figures["gated"]
