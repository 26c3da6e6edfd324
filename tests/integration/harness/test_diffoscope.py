"""The deep diff through diffoscope (installed by provisioning): a canary whose file content
differs between two builds shows diffoscope's own output in the report."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.integration.harness.test_repro_canaries import _context, _spec
from tierharness.repro.check import check_reproducible


def test_a_changed_file_gets_diffoscopes_deep_diff_in_the_report(tmp_path: Path) -> None:
    if shutil.which("diffoscope") is None:
        pytest.fail("diffoscope is not installed: run scripts/provision-docker.sh (as root)")
    diff = check_reproducible(
        _context(tmp_path, "RUN date +%s%N > /build-stamp"), _spec(), tmp_path / "report", log=lambda _m: None
    )
    change = next(c for layer in diff.layers for c in layer.changed if c.path == "/build-stamp")
    assert change.deep_diff is not None
    assert "build-stamp" in change.deep_diff  # diffoscope's header names both files
    assert "@@" in change.deep_diff  # and its unified diff of the content
    report = (tmp_path / "report" / "report.md").read_text()
    assert "diffoscope on `/build-stamp`:" in report
    assert change.deep_diff.strip().splitlines()[-1] in report
