"""The second Docker engine: separate from the first, and gone afterwards, also when its
owner is killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.root import needs_root, require_root
from tests.second_engine import certificates, leftovers
from tierharness.engine import engine_client
from tierharness.supply.engines import EngineRecord, second_engine

pytestmark = needs_root


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    require_root()
    return tmp_path / "state"


def test_a_second_engine_is_separate_and_leaves_nothing(state_dir: Path) -> None:
    first = engine_client().info()
    with second_engine(state_dir, kind="process") as engine:
        record = engine.record
        info = json.loads(engine.docker("info", "--format", "{{json .}}", what="docker info"))
        assert info["DockerRootDir"] == f"{record.root}/data"
        assert info["DockerRootDir"] != first["DockerRootDir"]
        assert "io.containerd.snapshotter" in json.dumps(info["DriverStatus"])
        assert engine.docker("image", "ls", "--quiet", what="images") == ""  # nothing shared
        assert Path(record.run_dir, "docker.sock").is_socket()
    assert leftovers(record) == []
    # The first engine's bridge is untouched (what --bridge none would have broken).
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True, check=True).stdout
    assert any(line.split()[0] == "docker0" for line in links.splitlines())


def test_a_killed_owner_leaves_no_engine_behind(state_dir: Path) -> None:
    script = (
        "import sys, time; from pathlib import Path; from tierharness.supply.engines import second_engine\n"
        "with second_engine(Path(sys.argv[1]), kind='process') as e:\n"
        "    print(e.record.root, flush=True); time.sleep(120)\n"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", script, str(state_dir)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert owner.stdout is not None
        root = owner.stdout.readline().strip()
        record = EngineRecord(**json.loads(Path(root, "engine.json").read_text()))
        assert Path(record.run_dir, "docker.sock").is_socket()  # running
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        deadline = time.monotonic() + 30
        while leftovers(record) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert leftovers(record) == []
    finally:
        if owner.poll() is None:
            owner.kill()


def test_a_second_engine_over_tcp_with_tls_refuses_clients_without_a_certificate(
    state_dir: Path, tmp_path: Path
) -> None:
    """What a remote-engine test needs: DOCKER_HOST=tcp://127.0.0.1:PORT with TLS verified."""
    tls = certificates(tmp_path / "certs")
    with second_engine(state_dir, tls=tls, kind="process") as engine:
        env = engine.env()
        assert env["DOCKER_HOST"] == f"tcp://127.0.0.1:{engine.record.tcp_port}"
        root = engine.docker("info", "--format", "{{.DockerRootDir}}", what="docker info over TLS")
        assert root == f"{engine.record.root}/data"
        plain = {**os.environ, "DOCKER_HOST": env["DOCKER_HOST"]}
        plain.pop("DOCKER_TLS_VERIFY", None)
        plain.pop("DOCKER_CERT_PATH", None)
        refused = subprocess.run(["docker", "info"], env=plain, capture_output=True, text=True, check=False)
        assert refused.returncode != 0
        record = engine.record
    assert leftovers(record) == []
