"""scripts/provision-docker.sh's edit of dockerd's configuration, on a file of the test's own
(`configure-daemon FILE`): what the harness needs is added, the owner's settings stay, a file
it cannot read is left as it was, and dockerd itself accepts the result."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "provision-docker.sh"


def _configure(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), "configure-daemon", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_new_configuration_gets_the_image_store_and_a_build_history_bound_once(tmp_path: Path) -> None:
    config = tmp_path / "docker" / "daemon.json"
    first = _configure(config)
    assert (first.returncode, first.stdout.strip()) == (0, "changed"), first.stderr
    settings = json.loads(config.read_text())
    assert settings["features"] == {"containerd-snapshotter": True}
    assert settings["builder"]["history"] == {"maxAge": "1h", "maxEntries": 50}
    written = config.read_bytes()
    again = _configure(config)
    assert (again.returncode, again.stdout) == (0, ""), again.stderr
    assert config.read_bytes() == written


def test_the_owners_settings_and_history_bound_stay(tmp_path: Path) -> None:
    config = tmp_path / "daemon.json"
    owners = {"log-level": "warn", "builder": {"gc": {"enabled": True}, "history": {"maxAge": "48h"}}}
    config.write_text(json.dumps(owners))
    proc = _configure(config)
    assert (proc.returncode, proc.stdout.strip()) == (0, "changed"), proc.stderr
    settings = json.loads(config.read_text())
    assert settings == {**owners, "features": {"containerd-snapshotter": True}}


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ('{"features": {', "it is not JSON"),
        ("[]", "its top level is a JSON list"),
        ('{"builder": []}', '"builder" is not an object'),
    ],
)
def test_a_configuration_it_cannot_take_is_named_and_left_as_it_was(
    tmp_path: Path, text: str, said: str
) -> None:
    config = tmp_path / "daemon.json"
    config.write_text(text)
    proc = _configure(config)
    assert proc.returncode == 1
    assert f"{config} cannot take the engine's settings: {said}" in proc.stderr
    assert "fix: correct it" in proc.stderr
    assert config.read_text() == text


# dockerd looks its helper docker-proxy up on PATH, and a user's PATH often lacks /usr/sbin.
ENGINE_PATH = "/usr/sbin:/usr/bin:/usr/libexec/docker"


def test_dockerd_accepts_the_configuration_it_writes(tmp_path: Path) -> None:
    dockerd = shutil.which("dockerd", path=f"{os.environ.get('PATH', '')}:{ENGINE_PATH}")
    if dockerd is None:
        pytest.fail("dockerd is not installed: bash scripts/provision-docker.sh installs it (as root)")
    config = tmp_path / "daemon.json"
    assert _configure(config).returncode == 0
    proc = subprocess.run(
        [dockerd, "--validate", "--config-file", str(config)],
        env={**os.environ, "PATH": f"{ENGINE_PATH}:{os.environ.get('PATH', '')}"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "configuration OK" in proc.stdout + proc.stderr
