"""scripts/provision-docker.sh restarts a dockerd that does not qualify. It once did so with
`pkill -x dockerd`, which ends every dockerd on the machine: other users' rootless engines and
the harness's own second engine. Now it stops only the one its pid file names. Checked with
processes named dockerd in a PID namespace of the test's own, where the machine's engines are
not even visible: a regression fails the test without ending them."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.root import needs_root, require_root

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "provision-docker.sh"

# Run as PID 1 of the namespace, which reaps what dies (bash does, between commands). Two
# processes named dockerd: one the pid file names, one another user's engine could be.
_SCENE = r"""
set -u
"$1/dockerd" 300 & other=$!
"$1/dockerd" 300 & own=$!
# A forked child is named dockerd only once it has exec'd: on a loaded machine that came after
# the script looked, which then found no dockerd of its pid file and stopped nothing.
for pid in "$other" "$own"; do
    until [[ $(cat "/proc/$pid/comm" 2>/dev/null) == dockerd || ! -d /proc/$pid ]]; do sleep 0.01; done
done
echo "$own" > "$1/docker.pid"
bash "$2" stop-own-daemon "$1/docker.pid"
state() { awk '{print $3}' "/proc/$1/stat" 2>/dev/null || echo gone; }
echo "other=$(state "$other") own=$(state "$own")"
"""


def _in_own_pid_namespace() -> list[str]:
    """The command prefix that runs in a new PID namespace (in a user namespace too, when
    not root), with its own /proc."""
    unshare = shutil.which("unshare")
    own_user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    prefix = [unshare or "unshare", *own_user, "--pid", "--fork", "--mount-proc"]
    probe = None
    if unshare:
        probe = subprocess.run([*prefix, "true"], capture_output=True, text=True, check=False)
    if probe is None or probe.returncode != 0:
        said = probe.stderr.strip() if probe else "unshare is not on PATH"
        # Without root, user namespaces may be off (Ubuntu 24.04's AppArmor): the root lane runs it.
        require_root(
            f"a PID namespace of the test's own ({' '.join(prefix)} true: {said})",
            "run it as root (sudo .venv/bin/nox -s root-tests), or allow unprivileged user namespaces",
        )
        pytest.fail(
            "cannot check which dockerd provision-docker.sh stops: no PID namespace of the test's own\n"
            f"  checked: {' '.join(prefix)} true: {said}\n"
            "  fix: install util-linux's unshare (the kernel must allow PID namespaces)"
        )
    return prefix


@needs_root  # also run by any user whose user namespaces allow a PID namespace of their own
def test_provisioning_stops_only_the_dockerd_of_its_pid_file(tmp_path: Path) -> None:
    shutil.copy("/usr/bin/sleep", tmp_path / "dockerd")  # a process whose name is dockerd
    proc = subprocess.run(
        [*_in_own_pid_namespace(), "bash", "-c", _SCENE, "scene", str(tmp_path), str(SCRIPT)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    states = dict(item.split("=") for item in proc.stdout.split())
    assert states["other"] in ("R", "S"), f"the dockerd not in the pid file was stopped too: {proc.stdout}"
    assert states["own"] in ("gone", "Z"), f"the pid file's dockerd was not stopped: {proc.stdout}"
    assert "is running but does not qualify" in proc.stderr
