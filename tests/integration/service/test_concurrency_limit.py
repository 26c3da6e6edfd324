"""MAX_CONCURRENCY under a real server: `python -m services.api_gateway` with its own Postgres
and Redis, held past its limit by requests whose bodies arrive slowly. Past the limit the
server answers 503 at once; the requests it admitted finish once their bodies arrive.

uvicorn applies the limit before the app sees a request, to every path: while the server is
saturated /health gets 503 too, and answers again as soon as the load drops below the limit
(docs/service-operations.md says what that means for the liveness probe)."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tierharness.pytest_plugin import HarnessServices

LIMIT = 4
KEY = secrets.token_hex(16)


@dataclass
class Server:
    url: str
    port: int
    log: Path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def server(harness_clean: HarnessServices, tmp_path: Path) -> Iterator[Server]:
    """The service's real entry point, as the image runs it, stopped and waited for after the test."""
    assert harness_clean.redis is not None, "the service needs Redis: enable it in [tool.harness.stack]"
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.endswith("_FILE")}  # X beside X_FILE is refused
    env.update({
        "DATABASE_URL": harness_clean.postgres.url,
        "REDIS_URL": harness_clean.redis.url,
        "API_KEYS": f"load:{KEY}",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "MAX_CONCURRENCY": str(LIMIT),
    })  # fmt: skip
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.api_gateway"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not _healthy(url):
            assert proc.poll() is None, f"the server exited ({proc.returncode}):\n{log.read_text()}"
            assert time.monotonic() < deadline, f"no answer from /health within 30s:\n{log.read_text()}"
            time.sleep(0.1)
        yield Server(url, port, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


class SlowUpload:
    """A POST /v1/articles whose headers are sent and whose body is held back: a request in
    flight for as long as the test likes, on a connection of its own."""

    def __init__(self, port: int, n: int) -> None:
        self.body = json.dumps({"title": f"held {n}", "body": "sent late"}).encode()
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        head = (
            f"POST /v1/articles HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(self.body)}\r\n\r\n"
        )
        self.sock.sendall(head.encode() + self.body[:1])

    def answered_within(self, seconds: float) -> int | None:
        """The status, if one arrives within `seconds`; None while the request is still held."""
        self.sock.settimeout(seconds)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return None
        assert data.startswith(b"HTTP/1.1 "), data[:80]
        return int(data.split()[1])

    def finish(self) -> int:
        self.sock.sendall(self.body[1:])
        status = self.answered_within(10)
        assert status is not None, "no answer to a finished upload within 10s"
        return status

    def close(self) -> None:
        self.sock.close()


def test_past_the_limit_the_server_answers_503_and_health_answers_once_the_load_drops(server: Server) -> None:
    with ExitStack() as stack:
        uploads = []
        for n in range(LIMIT + 2):
            upload = SlowUpload(server.port, n)
            stack.callback(upload.close)
            uploads.append((upload, upload.answered_within(1.0)))
        held = [u for u, status in uploads if status is None]
        refused = [status for _, status in uploads if status is not None]
        # Exactly MAX_CONCURRENCY admitted (uvicorn's own count is one off: see __main__.py).
        assert len(held) == LIMIT, f"{len(held)} of {len(uploads)} uploads held in flight, not {LIMIT}"
        assert refused == [503] * (len(uploads) - len(held)), refused
        assert httpx.get(f"{server.url}/health", timeout=5).status_code == 503, "/health past the limit"
        # The admitted requests were really in the app: their bodies arrive and they are served.
        assert [u.finish() for u in held] == [201] * len(held)
    deadline = time.monotonic() + 5  # the closed connections leave the server's count
    while not _healthy(server.url):
        assert time.monotonic() < deadline, "/health did not answer 200 once the load dropped"
        time.sleep(0.05)
    assert "Exceeded concurrency limit." in server.log.read_text()
