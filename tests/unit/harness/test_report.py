"""build/report/index.html: the gates as gates.md has them, the perf trend with or without a
knee, provisioning without the manifests' secrets, and "not run" for whatever is missing."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from tests.unit.harness.report_inputs import MANIFEST_SECRET, write_sample_project
from tierharness.cli import handlers
from tierharness.config import load_settings
from tierharness.gates import collect_gates
from tierharness.report import plots
from tierharness.report.page import render_report

_PLOT = '<figure class="plot"'


def _statuses(page: str) -> list[str]:
    table = page[page.index('<table id="gates">') :]
    table = table[: table.index("</table>")]
    return re.findall(r"<td><strong>([A-Z ]+)</strong></td>", table)


def test_a_project_with_nothing_run_gets_a_page_that_says_not_run(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.harness]\n")
    settings = load_settings(tmp_path)
    gates = collect_gates(settings)
    page = render_report(settings, gates)
    assert _statuses(page) == [g.status for g in gates]
    assert _PLOT not in page
    for what in ("no recorded perf run", "no run manifest", "no benchmark record", "no repro-check report",
                 "no other report"):  # fmt: skip
        assert f'<p class="not-run">not run: {what}' in page, what


def test_the_page_plots_the_runs_and_knees_and_keeps_the_manifests_secrets_out(tmp_path: Path) -> None:
    settings = load_settings(write_sample_project(tmp_path / "p"))
    gates = collect_gates(settings)
    page = render_report(settings, gates)
    assert _statuses(page) == [g.status for g in gates]
    assert page.count(_PLOT) == 2  # the perf trend and the provisioning trend
    assert "<script" not in page
    # Nothing to fetch: no CDN script or stylesheet, no web font (namespaces are only names).
    assert not re.search(r'(?:src|href)\s*=\s*"(?:https?:)?//|@import|url\((?!#)', page)
    assert "50 users, 301 RPS, p95 95 ms" in page  # the second run's knee, in its table
    assert "1" * 10 in page  # runs are labelled by their commit when they carry one
    assert MANIFEST_SECRET not in page
    assert '<a href="../junit/tests.xml">' in page
    assert '<a href="../perf/report.html">' in page
    assert "reproducible: identical digests" in page
    assert "cold worker ready, median" in page
    assert "0.852 s" in page


def test_runs_without_a_knee_are_plotted_and_said_to_have_none(tmp_path: Path) -> None:
    settings = load_settings(write_sample_project(tmp_path / "p", knees=False))
    page = render_report(settings, collect_gates(settings))
    assert page.count(_PLOT) == 2
    assert "no run recorded a capacity knee" in page


def test_without_matplotlib_the_report_says_so_and_gates_md_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_sample_project(tmp_path / "p")
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    monkeypatch.chdir(root)
    assert not plots.plotting_available()
    code = handlers.gates(None)  # type: ignore[arg-type]  # the handler reads no argument
    page = (root / "build" / "report" / "index.html").read_text()
    assert _PLOT not in page
    assert plots.PLOTTING_MISSING in page
    gates_md = (root / "build" / "gates.md").read_text()
    assert "| performance |" in gates_md
    assert "Verdict: no gate failed" in gates_md
    assert code == 0
    assert "report: " in capsys.readouterr().out
