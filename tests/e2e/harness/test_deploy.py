"""The deploy rehearsal end to end, on the built image: broken candidates roll back on their
own, and a rehearsal interrupted mid-deploy (Ctrl-C or SIGKILL) leaves nothing half-switched
and nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tierharness.config import load_settings
from tierharness.deploy.rehearse import run_rehearsal
from tierharness.engine.client import engine_client
from tierharness.engine.labels import LABEL_RUN
from tierharness.engine.run_ids import new_run_id
from tierharness.imaging.buildx import buildx_build
from tierharness.imaging.project_image import build_image


def _leftovers(run_id: str) -> list[str]:
    client = engine_client()
    flt = {"label": [f"{LABEL_RUN}={run_id}"]}
    # ignore_removed: the reaper may remove a container between the listing and its inspection.
    return [c.name for c in client.containers.list(all=True, filters=flt, ignore_removed=True)] + [
        n.name for n in client.networks.list(filters=flt)
    ]


def test_each_broken_candidate_rolls_back_with_its_reason_and_time(
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = load_settings()
    code = run_rehearsal(settings, ["broken"], expect_rollback=True, log=lambda _m: None)
    output = capsys.readouterr().out
    assert code == 0, output
    summary = json.loads((settings.build_dir / "deploy" / "timeline.json").read_text())["summary"]
    reasons = {
        "errors": "alert HighErrorRate firing for green in Prometheus",  # the paging rule, live
        "slow": "alert HighResponseTime firing for green in Prometheus",
        "unhealthy": "green is unhealthy",
    }
    for name, reason in reasons.items():
        line = summary[name]
        assert line.startswith("ROLLED BACK in "), line
        assert reason in line, line
        seconds = float(line.removeprefix("ROLLED BACK in ").split("s", 1)[0])
        assert seconds < settings.deploy.rollback_limit, line
    events = [
        e["step"] for e in json.loads((settings.build_dir / "deploy" / "timeline.json").read_text())["events"]
    ]
    assert any("after the rehearsal" in e for e in events)
    assert "proxy routes to blue; GET /health through it: 200" in output


def test_a_candidate_whose_failures_the_proxy_retried_does_not_pass(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A green that drops one API connection in ten without an answer: the proxy retries each,
    so clients see no failure and no alert fires; the retries still fail the rehearsal."""
    settings = load_settings()
    base = build_image(settings, log=lambda _m: None).image
    canary = Path(__file__).parent / "canary"
    tag = f"{base.rsplit(':', 1)[0]}:canary-drops"
    buildx_build(
        canary, dockerfile=canary / "drops.Dockerfile", tags=[tag], build_args={"BASE": base}, load=True
    )
    code = run_rehearsal(settings, [tag], log=lambda _m: None)
    output = capsys.readouterr().out
    summary = json.loads((settings.build_dir / "deploy" / "timeline.json").read_text())["summary"]
    assert code == 1, output
    assert "retried by the proxy" in summary["verdict"], output
    assert summary["requests"].split(", ")[1] == "0 failed", output  # what the retries hid


# Ctrl-C reaches the rehearsal as it would in a terminal, whoever started the tier: a shell's
# background job (`nox -s e2e &` in a script) has SIGINT ignored, an ignored signal stays ignored
# across exec, and Python then installs no KeyboardInterrupt handler, so the SIGINT below would
# be lost and the rehearsal would run to its end.
_WITH_CTRL_C = (
    "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('tierharness', run_name='__main__', alter_sys=True)"
)


def _start(run_id: str) -> subprocess.Popen[str]:
    env = {**os.environ, "HARNESS_RUN_ID": run_id}
    return subprocess.Popen(
        [sys.executable, "-c", _WITH_CTRL_C, "deploy"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[3],
    )


def _wait_for(proc: subprocess.Popen[str], text: str, timeout: float = 180) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if text in line:
            return seen
    proc.kill()
    pytest.fail(f"never saw {text!r}:\n{''.join(seen)}")


def _gone(run_id: str, timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := _leftovers(run_id)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


def test_ctrl_c_after_the_switch_switches_back_and_removes_everything() -> None:
    run_id = new_run_id("test-deploy-int-")
    proc = _start(run_id)
    _wait_for(proc, "SWITCH: proxy routes to green")
    assert _leftovers(run_id), "the rehearsal should be running"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    assert _gone(run_id, 10) == []


def test_sigkill_mid_deploy_leaves_nothing_behind() -> None:
    run_id = new_run_id("test-deploy-kill-")
    proc = _start(run_id)
    _wait_for(proc, "start green")
    proc.kill()
    proc.wait(timeout=10)
    # The run's reaper (its own session) removes everything labelled with the run.
    assert _gone(run_id, 30) == []
