"""The perf gate must be able to fail: against a small local server that answers a share of
requests with 500, adds latency or breaks its answers, and against the real stack with an
impossible p95. (The service itself carries no fault-injection switch.)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest


@dataclass
class Faults:
    error_every: int = 0  # every Nth request answers 500 (0: never)
    # Seconds added to every read. Not to writes: the locustfile seeds its articles with 20
    # POSTs before the load, which at this latency would eat most of a 4 s run (and its floor
    # of 20 requests with it).
    latency: float = 0.0
    broken_bodies: bool = False  # POST answers that are not JSON


class _Handler(BaseHTTPRequestHandler):
    faults = Faults()
    counter = 0
    lock = threading.Lock()

    def log_message(self, *_args: object) -> None:
        pass

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _faulty(self) -> bool:
        with self.lock:
            type(self).counter += 1
            n = type(self).counter
        return bool(self.faults.error_every) and n % self.faults.error_every == 0

    def do_GET(self) -> None:
        time.sleep(self.faults.latency)
        if self._faulty():
            return self._answer(500, b'{"detail": "injected"}')
        return self._answer(200, b'{"id": 1, "items": [], "total": 0}')

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.faults.broken_bodies:
            return self._answer(201, b"<html>not json</html>")
        if self._faulty():
            return self._answer(500, b'{"detail": "injected"}')
        with self.lock:
            type(self).counter += 1
            return self._answer(201, json.dumps({"id": type(self).counter}).encode())


@pytest.fixture
def fake_service() -> Iterator[tuple[str, Faults]]:
    faults = Faults()
    handler = type("Handler", (_Handler,), {"faults": faults, "counter": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", faults
    finally:
        server.shutdown()
        server.server_close()


def perf(
    project_root: Path, tmp_path: Path, *args: str, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "HARNESS_PERF_SEED": "20",
        "HARNESS_BUILD_DIR": str(tmp_path / "build"),
        **(extra_env or {}),
    }
    cmd = [sys.executable, "-m", "tierharness", "perf", "--users", "5", "--spawn-rate", "5", *args]
    return subprocess.run(
        cmd, cwd=project_root, env=env, capture_output=True, text=True, check=False, timeout=300
    )


SHORT = ("--duration", "4s", "--min-requests", "20", "--min-rps", "1")


def test_fast_clean_server_passes(
    fake_service: tuple[str, Faults], project_root: Path, tmp_path: Path
) -> None:
    url, _ = fake_service
    # The p95 limit is the test's, as in test_capacity.py: the fake server answers in
    # milliseconds, but beside .ci/run's other lanes (workers' and stacks' containers starting,
    # at the engine's priority) its p95 reached 110-140 ms against the project's 100 ms. What is
    # judged here is that a clean server passes every threshold it meets; the breach of the
    # p95 has a test of its own (test_latency_breaches_the_p95).
    result = perf(project_root, tmp_path, "--target-url", url, *SHORT, "--p95-ms", "250")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "perf PASSED" in result.stdout
    assert "PASS  p95" in result.stdout
    history = (tmp_path / "build" / "perf" / "history.jsonl").read_text().splitlines()
    assert json.loads(history[-1])["passed"] is True


def test_errors_breach_the_fail_ratio(
    fake_service: tuple[str, Faults], project_root: Path, tmp_path: Path
) -> None:
    url, faults = fake_service
    faults.error_every = 4  # a quarter of the requests
    result = perf(project_root, tmp_path, "--target-url", url, *SHORT, "--max-fail-ratio", "0.05")
    assert result.returncode != 0
    assert "threshold fail-ratio breached" in result.stdout
    assert "perf FAILED" in result.stdout


def test_latency_breaches_the_p95(
    fake_service: tuple[str, Faults], project_root: Path, tmp_path: Path
) -> None:
    url, faults = fake_service
    faults.latency = 0.15
    result = perf(project_root, tmp_path, "--target-url", url, *SHORT, "--p95-ms", "100")
    assert result.returncode != 0
    assert "threshold p95 breached" in result.stdout
    assert "threshold fail-ratio" not in result.stdout


def test_task_exceptions_fail_the_run(
    fake_service: tuple[str, Faults], project_root: Path, tmp_path: Path
) -> None:
    url, faults = fake_service
    faults.broken_bodies = True  # seeding fails, so every read task raises
    result = perf(project_root, tmp_path, "--target-url", url, *SHORT)
    assert result.returncode != 0
    assert "threshold task-exceptions breached" in result.stdout


def test_too_few_requests_make_the_run_invalid(
    fake_service: tuple[str, Faults], project_root: Path, tmp_path: Path
) -> None:
    url, _ = fake_service
    result = perf(project_root, tmp_path, "--target-url", url, "--duration", "2s", "--min-requests", "100000")
    assert result.returncode != 0
    assert "INVALID RUN: only" in result.stdout


def test_an_impossible_p95_fails_against_the_real_stack(project_root: Path, tmp_path: Path) -> None:
    # The real image, Postgres and Redis, as `nox -s perf` runs them. The recorded build is
    # reused (copied in), and this run's history stays out of the project's.
    build = tmp_path / "build"
    build.mkdir()
    record = project_root / "build" / "image.json"
    if record.exists():
        shutil.copy2(record, build / "image.json")
    # Unverified whatever this machine holds: a developer who has published has the signing
    # key pair, which turns verification on ("auto"), and this build folder has no publish.json.
    # What this test judges is the p95 gate; verification has tests of its own (tests/e2e).
    result = perf(
        project_root, tmp_path, "--p95-ms", "1", "--duration", "5s", "--min-requests", "20", "--min-rps", "1",
        extra_env={"HARNESS_VERIFY": "0"},
    )  # fmt: skip
    assert result.returncode != 0, result.stdout + result.stderr
    assert "threshold p95 breached" in result.stdout
    assert "limit <= 1 ms" in result.stdout
    assert "stack up:" in result.stderr
