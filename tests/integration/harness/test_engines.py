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

from harness.engine import engine_client
from harness.supply.engines import EngineRecord, EngineTls, second_engine


def _gone(record: EngineRecord) -> list[str]:
    """What is left of an engine: paths, bridge, processes, mounts (empty when nothing)."""
    left = [p for p in (record.root, record.run_dir) if Path(p).exists()]
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True, check=True).stdout
    left += [f"bridge {record.bridge}" for line in links.splitlines() if line.split()[0] == record.bridge]
    if record.dockerd_pid and Path(f"/proc/{record.dockerd_pid}").exists():
        left.append(f"dockerd {record.dockerd_pid}")
    mounts = Path("/proc/self/mountinfo").read_text()
    left += [f"mount under {record.root}" for line in mounts.splitlines() if record.root in line]
    return left


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        pytest.skip("a second engine needs root")
    return tmp_path / "state"


def test_a_second_engine_is_separate_and_leaves_nothing(state_dir: Path) -> None:
    first = engine_client().info()
    with second_engine(state_dir) as engine:
        record = engine.record
        info = json.loads(engine.docker("info", "--format", "{{json .}}", what="docker info"))
        assert info["DockerRootDir"] == f"{record.root}/data"
        assert info["DockerRootDir"] != first["DockerRootDir"]
        assert "io.containerd.snapshotter" in json.dumps(info["DriverStatus"])
        assert engine.docker("image", "ls", "--quiet", what="images") == ""  # nothing shared
        assert Path(record.run_dir, "docker.sock").is_socket()
    assert _gone(record) == []
    # The first engine's bridge is untouched (what --bridge none would have broken).
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True, check=True).stdout
    assert any(line.split()[0] == "docker0" for line in links.splitlines())


def test_a_killed_owner_leaves_no_engine_behind(state_dir: Path) -> None:
    script = (
        "import sys, time; from pathlib import Path; from harness.supply.engines import second_engine\n"
        "with second_engine(Path(sys.argv[1])) as e:\n"
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
        while _gone(record) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _gone(record) == []
    finally:
        if owner.poll() is None:
            owner.kill()


def _certificates(folder: Path) -> EngineTls:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client one (openssl)."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    folder.mkdir(parents=True)
    client = folder / "client"
    client.mkdir()
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca-key.pem", "-out", "ca.pem",
            "-days", "1", "-subj", "/CN=harness-test-ca")  # fmt: skip
    for name, usage in (("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
                        ("client", "extendedKeyUsage=clientAuth\n")):  # fmt: skip
        (folder / f"{name}.ext").write_text(usage)
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}-key.pem", "-out", f"{name}.csr",
                "-subj", f"/CN={name}")  # fmt: skip
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem",
                "-CAcreateserial", "-out", f"{name}-cert.pem", "-days", "1",
                "-extfile", f"{name}.ext")  # fmt: skip
    for source, target in (
        ("ca.pem", "ca.pem"),
        ("client-cert.pem", "cert.pem"),
        ("client-key.pem", "key.pem"),
    ):
        (client / target).write_bytes((folder / source).read_bytes())
    return EngineTls(folder / "ca.pem", folder / "server-cert.pem", folder / "server-key.pem", client)


def test_a_second_engine_over_tcp_with_tls_refuses_clients_without_a_certificate(
    state_dir: Path, tmp_path: Path
) -> None:
    """What a remote-engine test needs: DOCKER_HOST=tcp://127.0.0.1:PORT with TLS verified."""
    tls = _certificates(tmp_path / "certs")
    with second_engine(state_dir, tls=tls) as engine:
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
    assert _gone(record) == []
