"""The second Docker engine: separate from the first, and gone afterwards, also when its
owner is killed."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.root import needs_root, require_root
from tests.second_engine import certificates, leftovers
from tierharness.engine.client import engine_client
from tierharness.engine.second_engine import EngineRecord, second_engine, sweep_dead_engines
from tierharness.engine.second_engine_network import free_subnet
from tierharness.owners import pid_alive

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
        "import sys, time; from pathlib import Path\n"
        "from tierharness.engine.second_engine import second_engine\n"
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


@pytest.fixture
def others(tmp_path: Path) -> Iterator[dict[str, str]]:
    """What is not a second engine's: a link with an address, an iptables chain with the rule
    an engine's subnet would give, and a process named dockerd. Removed afterwards."""
    require_root()
    tag = secrets.token_hex(3)
    pool = free_subnet(16)
    subnet = next(pool.subnets(new_prefix=24))
    link, chain = f"hd{tag}", f"HARNESS-TEST-{tag}"
    decoy = tmp_path / "dockerd"
    shutil.copy("/usr/bin/sleep", decoy)
    dockerd = subprocess.Popen([str(decoy), "300"])
    rule = ["-s", str(subnet), "-d", str(subnet), "-j", "ACCEPT"]
    try:
        for argv in (
            ["ip", "link", "add", link, "type", "bridge"],
            ["ip", "addr", "add", f"{next(subnet.hosts())}/24", "dev", link],
            ["iptables", "-N", chain],
            ["iptables", "-A", chain, *rule],
        ):
            subprocess.run(argv, check=True)
        yield {
            "link": link, "chain": chain, "subnet": str(subnet), "pool": str(pool), "pid": str(dockerd.pid)
        }  # fmt: skip
    finally:
        dockerd.kill()
        dockerd.wait()
        subprocess.run(["ip", "link", "delete", link], check=False, capture_output=True)
        subprocess.run(["iptables", "-F", chain], check=False, capture_output=True)
        subprocess.run(["iptables", "-X", chain], check=False, capture_output=True)


def _left(others: dict[str, str]) -> list[str]:
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True, check=True).stdout
    argv = ["iptables", "-S", others["chain"]]
    rules = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
    found = [f"link {others['link']}" for line in links.splitlines() if line.split()[0] == others["link"]]
    found += [f"rule for {others['subnet']}" for line in rules.splitlines() if others["subnet"] in line]
    return found + (["decoy dockerd"] if pid_alive(int(others["pid"])) else [])


def test_a_record_naming_another_link_chain_and_dockerd_removes_none_of_them(
    state_dir: Path, others: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A record in the state dir (in a checkout others may write) names a link, a chain and a
    process that are not a second engine's: the sweep, as root, leaves all of them alone."""
    assert len(_left(others)) == 3
    engine_id = secrets.token_hex(3)
    folder = state_dir / "engines" / engine_id
    folder.mkdir(mode=0o700, parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    record = {
        "id": engine_id, "root": str(folder.resolve()), "run_dir": f"/run/harness-engine-{engine_id}",
        "bridge": others["link"], "subnet": others["subnet"], "pool": others["pool"],
        "forward_chain": others["chain"], "owner_pid": dead.pid, "owner_start": None,
        "dockerd_pid": int(others["pid"]),
    }  # fmt: skip
    (folder / "engine.json").write_text(json.dumps(record))
    (folder / "engine.json").chmod(0o600)
    removed = sweep_dead_engines(state_dir)
    assert _left(others) == [f"link {others['link']}", f"rule for {others['subnet']}", "decoy dockerd"]
    assert removed == []
    assert f"its bridge '{others['link']}' is not 'hx{engine_id}'" in capsys.readouterr().err
