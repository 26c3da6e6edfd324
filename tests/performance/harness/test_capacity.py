"""The knee gate must be able to fail: a capacity run against a small local server with one worker
(each request holds it for `delay` seconds, so its throughput has a ceiling and its latency climbs
once the users queue) finds a knee; a deliberately slowed candidate's knee is caught against the
baseline a normal candidate recorded, and a normal candidate passes against it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

NORMAL = 0.002  # seconds per request: far above the steps' load
# 20 requests a second at most. One user (about 8 a second: the locustfile waits 0.05-0.15 s
# between tasks) is served in 50 ms, far inside the p95 limit below even on a loaded machine;
# nine users queue for about 350 ms, past it. Its knee is at one or five users, at most 20 RPS,
# against the normal candidate's 50-80 (lower when .ci/run's other lanes load the machine).
SLOWED = 0.05

# Steps of 1, 5 and 9 users, 3 s each. The limits are the test's, not the project's: what a
# shared 2-core machine under .ci/run's load does to a normal candidate (seen: p95 110 ms at
# nine users, and a knee RPS 35 % below the baseline's a minute earlier) stays inside them,
# and the slowed candidate's queue and RPS stay far outside.
STEPS = (
    "--capacity", "--capacity-start-users", "1", "--capacity-step-users", "4", "--capacity-max-users", "9",
    "--capacity-step-seconds", "3", "--p95-ms", "250", "--max-fail-ratio", "0.01", "--knee-tolerance", "0.5",
)  # fmt: skip


class _OneWorker(BaseHTTPRequestHandler):
    delay = NORMAL
    worker = threading.Lock()
    counter = 0

    def log_message(self, *_args: object) -> None:
        pass

    def _answer(self, status: int, body: bytes) -> None:
        with self.worker:  # one request at a time, like a service with a single worker
            time.sleep(self.delay)
            type(self).counter += 1
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer(200, b'{"id": 1, "items": [], "total": 0}')

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._answer(201, json.dumps({"id": type(self).counter + 1}).encode())


def _serve(delay: float) -> tuple[ThreadingHTTPServer, threading.Thread]:
    handler = type("Candidate", (_OneWorker,), {"delay": delay, "worker": threading.Lock(), "counter": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


def capacity_run(
    project_root: Path, build: Path, delay: float, baseline: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    server, thread = _serve(delay)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    env = {**os.environ, "HARNESS_PERF_SEED": "20", "HARNESS_BUILD_DIR": str(build)}
    cmd = [
        sys.executable,
        "-m",
        "tierharness",
        "perf",
        "--target-url",
        url,
        *STEPS,
        "--knee-baseline",
        str(baseline),
        *args,
    ]
    try:
        return subprocess.run(
            cmd, cwd=project_root, env=env, capture_output=True, text=True, check=False, timeout=180
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def baseline(project_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The knee of a normal candidate, accepted as the baseline."""
    folder = tmp_path_factory.mktemp("baseline")
    path = folder / "perf-baseline.json"
    result = capacity_run(project_root, folder / "build", NORMAL, path, "--accept-knee")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "this knee is the new baseline" in result.stdout
    recorded = json.loads(path.read_text())
    assert recorded["knee"]["users"] == 9, result.stdout  # the normal candidate never breaks a threshold
    return path


def _last_record(build: Path) -> dict[str, object]:
    lines = (build / "perf" / "history.jsonl").read_text().splitlines()
    record: dict[str, object] = json.loads(lines[-1])
    return record


def test_a_normal_candidate_passes_the_knee_gate(project_root: Path, tmp_path: Path, baseline: Path) -> None:
    result = capacity_run(project_root, tmp_path / "build", NORMAL, baseline)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "knee gate PASSED" in result.stdout
    assert "knee: 9 users" in result.stdout
    record = _last_record(tmp_path / "build")
    assert record["passed"] is True
    knee = record["knee"]
    assert isinstance(knee, dict)
    assert set(knee) == {"users", "rps", "p95_ms"}
    assert isinstance(record["commit"], str)
    assert len(record["commit"]) == 40


def test_a_slowed_candidate_fails_the_knee_gate(project_root: Path, tmp_path: Path, baseline: Path) -> None:
    result = capacity_run(project_root, tmp_path / "build", SLOWED, baseline)
    assert result.returncode != 0, result.stdout + result.stderr
    assert "BROKE: p95" in result.stdout  # the steps found its knee early
    assert "knee gate FAILED" in result.stdout
    commit = json.loads(baseline.read_text())["commit"]
    assert f"commit {commit[:12]}" in result.stdout
    assert "accept it: `nox -s perf -- --capacity --accept-knee`" in result.stdout
    assert "perf FAILED" in result.stdout
    record = _last_record(tmp_path / "build")
    assert record["passed"] is False
    assert isinstance(record["knee"], dict)
    assert record["knee"]["users"] < 9
