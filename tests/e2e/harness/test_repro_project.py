"""repro-check on the real Dockerfile, made non-reproducible on purpose: it must fail and say where."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tierharness.config import load_settings
from tierharness.gitrepo import commit_all, snapshot


def test_a_build_stamp_in_the_production_stage_fails_repro_check_naming_it(
    tmp_path: Path, project_root: Path
) -> None:
    tree = snapshot(project_root, tmp_path / "tree")
    dockerfile = tree / "Dockerfile.enterprise"
    text = dockerfile.read_text()
    assert "\nUSER 10001:10001\n" in text
    dockerfile.write_text(
        text.replace("\nUSER 10001:10001\n", "\nRUN date +%s%N > /build-stamp\nUSER 10001:10001\n")
    )
    commit_all(tree)
    wheelhouse = load_settings(project_root).build_dir / "wheelhouse"
    # Linked from the checkout's own when there is one: repro-check fills it otherwise (from the
    # machine's wheel cache), as on a CI job that loaded the image instead of building it.
    if wheelhouse.is_dir():
        shutil.copytree(wheelhouse, tree / "build" / "wheelhouse", copy_function=os.link)

    env = {k: v for k, v in os.environ.items() if k != "HARNESS_PROJECT_ROOT"}
    cmd = [sys.executable, "-m", "tierharness", "repro-check"]
    proc = subprocess.run(cmd, cwd=tree, capture_output=True, text=True, check=False, env=env)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "NOT reproducible" in proc.stdout
    assert "/build-stamp" in proc.stdout
    first, second = (line.split()[1] for line in proc.stdout.splitlines()[:2])
    assert first != second
    assert "/build-stamp" in (tree / "build" / "repro" / "report.md").read_text()
