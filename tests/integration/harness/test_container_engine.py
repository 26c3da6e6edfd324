"""The second engine in a privileged container: what a member of the docker group gets where
the host-process engine needs root. Forced here (kind="container"), so root runs these too.
Separate from the first engine, reached only with its client certificate, and gone
afterwards, also when its owner is killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from docker.errors import ImageNotFound

from tests.second_engine import leftovers
from tierharness.engine.client import engine_client
from tierharness.engine.labels import LABEL_RUN
from tierharness.engine.second_engine import EngineRecord, SecondEngine, second_engine, sweep_dead_engines


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


def _not_mine(folder: Path) -> list[str]:
    """Paths under `folder` that this process's user does not own (a container writing as
    root into a user's folder would leave such files, which that user cannot remove)."""
    uid = os.getuid()
    return [str(p) for p in [folder, *folder.rglob("*")] if p.lstat().st_uid != uid]


def _volumes_of(engine: SecondEngine) -> list[str]:
    attrs = engine_client().containers.get(engine.record.container).attrs
    return [str(m["Name"]) for m in attrs["Mounts"] if m.get("Type") == "volume"]


def test_the_container_engine_is_separate_reached_only_with_its_certificate_and_leaves_nothing(
    state_dir: Path, tmp_path: Path
) -> None:
    first = engine_client()
    started = time.monotonic()
    with second_engine(state_dir, kind="container") as engine:
        info = json.loads(engine.docker("info", "--format", "{{json .}}", what="docker info"))
        ready = time.monotonic() - started
        record = engine.record
        assert engine.kind == "container"
        assert info["ID"] != first.info()["ID"]
        assert "io.containerd.snapshotter" in json.dumps(info["DriverStatus"])  # the OCI exporter needs it
        assert engine.docker("image", "ls", "--quiet", what="images") == ""  # nothing shared

        # Reached over TCP on loopback, with TLS verified both ways.
        env = engine.env()
        assert env == {
            "DOCKER_HOST": f"tcp://127.0.0.1:{record.tcp_port}",
            "DOCKER_TLS_VERIFY": "1",
            "DOCKER_CERT_PATH": record.cert_path,
        }
        plain = {k: v for k, v in os.environ.items() if k not in ("DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH")}
        plain["DOCKER_HOST"] = env["DOCKER_HOST"]
        refused = subprocess.run(["docker", "info"], env=plain, capture_output=True, check=False)
        assert refused.returncode != 0
        assert (Path(record.cert_path) / "key.pem").stat().st_mode & 0o077 == 0  # the user's only

        # A build on it stays on it.
        tag = f"harness-test/on-the-second-engine:{uuid.uuid4().hex[:8]}"
        context = tmp_path / "context"
        context.mkdir()
        (context / "stamp").write_text(tag)
        (context / "Dockerfile").write_text("FROM scratch\nCOPY stamp /\n")
        engine.docker("buildx", "build", "--quiet", "--load", "--tag", tag, str(context), what="a tiny build")
        assert engine.docker("image", "ls", "--quiet", tag, what="its image") != ""
        with pytest.raises(ImageNotFound):
            first.images.get(tag)

        # Labelled with a run of its own, its data root a labelled anonymous volume.
        container = first.containers.get(record.container)
        assert container.labels[LABEL_RUN] == record.run_id
        volumes = _volumes_of(engine)
        assert len(volumes) == 1
        assert first.volumes.get(volumes[0]).attrs["Labels"][LABEL_RUN] == record.run_id
        assert _not_mine(state_dir) == []
    print(f"container engine answered docker info {ready:.1f}s after second_engine() was called")

    assert leftovers(record) == []
    assert volumes[0] not in [v.name for v in first.volumes.list()]
    assert _not_mine(state_dir) == []


def test_a_killed_owner_leaves_no_container_engine_behind(state_dir: Path) -> None:
    script = (
        "import sys, time; from pathlib import Path\n"
        "from tierharness.engine.second_engine import second_engine\n"
        "with second_engine(Path(sys.argv[1]), kind='container') as e:\n"
        "    print(e.record.root, flush=True); time.sleep(120)\n"
    )
    # The reaper keeps sweeping for its grace period after the removal: a short one here.
    env = {**os.environ, "HARNESS_REAPER_GRACE": "1"}
    owner = subprocess.Popen(
        [sys.executable, "-c", script, str(state_dir)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert owner.stdout is not None
        root = owner.stdout.readline().strip()
        assert root, f"the owner did not start an engine (exit {owner.poll()})"
        record = EngineRecord(**json.loads(Path(root, "engine.json").read_text()))
        assert engine_client().containers.get(record.container).status == "running"
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        # The reaper removes the container and its volume; the folder is the user's own,
        # in the state dir, and goes with the next start's sweep.
        deadline = time.monotonic() + 60
        while [x for x in leftovers(record) if x != record.root] and time.monotonic() < deadline:
            time.sleep(0.5)
        assert leftovers(record) == [record.root]
        assert sweep_dead_engines(state_dir) == [record.id]
        assert leftovers(record) == []
    finally:
        if owner.poll() is None:
            owner.kill()
