"""Which second engine `second_engine()` starts: the host process as root, the container
otherwise, unless the caller or HARNESS_SECOND_ENGINE forces one."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from tierharness.engine import second_engine as engines
from tierharness.engine.second_engine import KIND_VAR, EngineRecord, engine_kind, second_engine
from tierharness.errors import EngineUnavailableError, HarnessError


@pytest.mark.parametrize(("euid", "kind"), [(0, "process"), (1001, "container")])
def test_auto_is_the_host_process_as_root_and_the_container_otherwise(
    monkeypatch: pytest.MonkeyPatch, euid: int, kind: str
) -> None:
    monkeypatch.delenv(KIND_VAR, raising=False)
    monkeypatch.setattr(engines.os, "geteuid", lambda: euid)
    assert engine_kind() == kind
    monkeypatch.setenv(KIND_VAR, "auto")
    assert engine_kind() == kind


def test_the_environment_forces_a_kind_and_an_argument_wins_over_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engines.os, "geteuid", lambda: 0)
    monkeypatch.setenv(KIND_VAR, "container")
    assert engine_kind() == "container"
    assert engine_kind("process") == "process"


def test_an_unknown_kind_names_the_variable_and_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KIND_VAR, "rootless")
    with pytest.raises(HarnessError) as err:
        engine_kind()
    message = str(err.value)
    assert "'rootless' is not a kind of second engine" in message
    assert KIND_VAR in message
    assert "process or container" in message


def test_the_host_process_without_root_says_root_and_names_the_container(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(engines.os, "geteuid", lambda: 1001)
    monkeypatch.setattr(engines.shutil, "which", lambda _name: None)  # no dockerd on this PATH either
    with pytest.raises(EngineUnavailableError) as err, second_engine(tmp_path / "state", kind="process"):
        pass
    message = str(err.value)
    assert "needs root" in message
    assert "euid 1001" in message
    assert f"{KIND_VAR}=container" in message
    assert not (tmp_path / "state").exists()  # refused before anything was made


def test_a_reader_never_sees_a_half_written_engine_record(tmp_path: Path) -> None:
    """The watcher reads the record while its owner rewrites it (the watcher's own pid goes in
    after it started); a half-written file read as "no record" sent the watcher away."""
    record = EngineRecord("abc123", str(tmp_path), "/run/x", "hxabc123", "10.1.0.0/24", 1, None)
    record.save()
    done = threading.Event()
    unreadable = 0

    def read() -> None:
        nonlocal unreadable
        while not done.is_set():
            try:
                json.loads((tmp_path / "engine.json").read_text())
            except ValueError:
                unreadable += 1

    reader = threading.Thread(target=read)
    reader.start()
    for _ in range(2000):
        record.save()
    done.set()
    reader.join()
    assert unreadable == 0
    assert [p.name for p in tmp_path.iterdir()] == ["engine.json"]
