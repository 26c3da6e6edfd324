"""The sweep and the watcher of second engines act, as root, on records in the state dir,
which sits in a checkout others may write: a record someone else could have written, or one
naming what is not its engine's, makes them signal nothing and delete nothing. Real
processes and folders stand in for what a tampered record points at."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.root import root_only
from tierharness.engine.second_engine import main, sweep_dead_engines
from tierharness.owners import pid_alive, process_start_time

ENGINE_ID = "a1b2c3"


@dataclass
class Scene:
    state: Path
    folder: Path  # the engine's own folder, with a file in it
    decoy: Path  # a folder outside the state dir
    sleeper: subprocess.Popen[bytes]  # what a record's dockerd_pid points at
    namer: subprocess.Popen[bytes]  # a process whose command line merely names the engine's folders

    @property
    def record_path(self) -> Path:
        return self.folder / "engine.json"

    def record(self, **changes: Any) -> dict[str, Any]:
        """A record of a process-kind engine whose owner is gone: what the sweep acts on."""
        dead = subprocess.Popen(["true"])
        dead.wait()
        return {
            "id": ENGINE_ID, "root": str(self.folder), "run_dir": f"/run/harness-engine-{ENGINE_ID}",
            "bridge": f"hx{ENGINE_ID}", "subnet": "10.77.1.0/24", "owner_pid": dead.pid, "owner_start": "1",
            "dockerd_pid": self.sleeper.pid, **changes,
        }  # fmt: skip

    def write(self, record: dict[str, Any], mode: int = 0o600) -> None:
        self.record_path.write_text(json.dumps(record))
        self.record_path.chmod(mode)

    def untouched(self) -> list[str]:
        """What of the decoys was disturbed (empty when nothing)."""
        hit = [f"pid {p.pid} signalled" for p in (self.sleeper, self.namer) if p.poll() is not None]
        gone = [folder for folder in (self.folder, self.decoy) if not (folder / "keep").exists()]
        return hit + [f"{folder} deleted" for folder in gone]


@pytest.fixture
def scene(tmp_path: Path) -> Iterator[Scene]:
    state = tmp_path / "state"
    folder = state / "engines" / ENGINE_ID
    folder.mkdir(mode=0o700, parents=True)
    state.chmod(0o700)
    (state / "engines").chmod(0o700)
    decoy = tmp_path / "decoy"
    decoy.mkdir()
    for where in (folder, decoy):
        (where / "keep").write_text("not the sweep's to delete\n")
    sleeper = subprocess.Popen(["sleep", "300"])
    names = [str(folder), f"/run/harness-engine-{ENGINE_ID}"]
    namer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", *names])
    try:
        yield Scene(state, folder, decoy, sleeper, namer)
    finally:
        for process in (sleeper, namer):
            process.kill()
            process.wait()


def _sweep(scene: Scene, capsys: pytest.CaptureFixture[str]) -> str:
    """What the sweep said (on stderr, its default) while removing nothing."""
    assert sweep_dead_engines(scene.state) == []
    return capsys.readouterr().err


def _watch(scene: Scene, capsys: pytest.CaptureFixture[str]) -> str:
    """What the watcher said, having refused the record (exit 1) while removing nothing."""
    code = main(["watch", str(scene.record_path)])
    said = capsys.readouterr().out
    return said if code == 1 else f"exit {code}, not 1: {said}"


TAMPERED: dict[str, Callable[[Scene], tuple[dict[str, Any], int, str]]] = {
    # (record, its file's mode, what the refusal must say)
    "file writable by others": lambda s: (s.record(), 0o666, "written by its group or others (mode 0666)"),
    "root outside the state dir": lambda s: (s.record(root=str(s.decoy)), 0o600, f"its root '{s.decoy}'"),
    "run dir elsewhere": lambda s: (s.record(run_dir=str(s.decoy)), 0o600, f"its run_dir '{s.decoy}'"),
    "another bridge": lambda s: (s.record(bridge="hxother"), 0o600, "its bridge 'hxother'"),
    "public subnet": lambda s: (s.record(subnet="192.0.2.0/24"), 0o600, "its subnet 192.0.2.0/24"),
    "public pool": lambda s: (s.record(pool="8.8.0.0/16"), 0o600, "its pool 8.8.0.0/16"),
    "another chain": lambda s: (s.record(forward_chain="INPUT"), 0o600, "its iptables chain 'INPUT'"),
    "another id": lambda s: (s.record(id="ffffff"), 0o600, "its id 'ffffff'"),
}


@pytest.mark.parametrize("act", [_sweep, _watch], ids=["sweep", "watcher"])
@pytest.mark.parametrize("tampering", list(TAMPERED))
def test_a_tampered_record_makes_the_sweep_and_the_watcher_signal_and_delete_nothing(
    scene: Scene, capsys: pytest.CaptureFixture[str], tampering: str, act: Callable[..., str]
) -> None:
    record, mode, why = TAMPERED[tampering](scene)
    scene.write(record, mode)
    said = act(scene, capsys)
    assert scene.untouched() == []
    assert f"the engine record {scene.record_path} was not acted on: " in said
    assert why in said


def test_a_group_writable_engine_folder_is_refused(scene: Scene, capsys: pytest.CaptureFixture[str]) -> None:
    scene.write(scene.record())
    scene.folder.chmod(0o770)
    said = _sweep(scene, capsys)
    assert scene.untouched() == []
    assert f"{scene.folder} can be written by its group or others (mode 0770)" in said


def test_a_record_that_is_a_link_to_another_file_is_refused(
    scene: Scene, capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere = scene.decoy / "engine.json"
    elsewhere.write_text(json.dumps(scene.record()))
    scene.record_path.symlink_to(elsewhere)
    said = _sweep(scene, capsys)
    assert scene.untouched() == []
    assert "could not be opened without following a link" in said


@pytest.mark.parametrize("start", [False, True], ids=["no start time", "right start time"])
def test_a_sound_record_is_acted_on_but_signals_only_its_own_engines_processes(
    scene: Scene, capsys: pytest.CaptureFixture[str], start: bool
) -> None:
    """The record is the owner's and names its own things, so its folder goes; but its
    dockerd_pid is a `sleep`, not this engine's dockerd (without a recorded start time it is
    not even looked at), and a process that merely names its folders is not its containerd:
    neither is signalled."""
    started = {"dockerd_start": process_start_time(scene.sleeper.pid)} if start else {}
    scene.write(scene.record(**started))
    assert sweep_dead_engines(scene.state) == [ENGINE_ID]
    assert capsys.readouterr().err == ""
    assert not scene.folder.exists()
    assert pid_alive(scene.sleeper.pid)
    assert pid_alive(scene.namer.pid)


@root_only("a record written by another user", "run it as root: sudo .venv/bin/nox -s root-tests")
def test_a_record_written_by_another_user_is_refused(
    scene: Scene, capsys: pytest.CaptureFixture[str]
) -> None:
    scene.write(scene.record())
    os.chown(scene.record_path, 65534, 65534)
    said = _sweep(scene, capsys)
    assert scene.untouched() == []
    assert "belongs to uid 65534, not to uid 0, who would act on it" in said
