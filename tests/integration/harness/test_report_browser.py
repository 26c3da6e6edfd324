"""build/report/index.html in a real headless Chromium (Debian's chromium, driven through its
chromedriver by selenium): the page renders, its gates table is there, every plot is drawn at
a size, and the console has no error. The page's screenshot is kept in build/report/. The
canaries show the same check failing on a console error and on a plot that draws nothing."""

from __future__ import annotations

import base64
import ctypes
import shlex
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By

from tests.unit.harness.report_inputs import write_sample_project
from tierharness.config import load_settings
from tierharness.gates import collect_gates
from tierharness.report.page import write_report

# The programs the test runs, and the Debian package of each.
BROWSER_TOOLS = {"chromium": "chromium", "chromedriver": "chromium-driver", "setpriv": "util-linux"}
BROWSER_FIX = "as root, bash scripts/bootstrap.sh (or apt-get install {packages})"
# Each plot's drawing box and how many shapes it holds, as the browser laid them out.
_PLOTS_SCRIPT = """
return Array.from(document.querySelectorAll('figure.plot svg')).map(function (svg) {
  var box = svg.getBoundingClientRect(), drawn = svg.getBBox();
  return [box.width, box.height, drawn.width, drawn.height, svg.querySelectorAll('path, use').length];
});
"""


def _die_with_this_process() -> None:
    """In chromedriver: SIGKILLed when the test process dies, rather than left behind."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


def _dying_with_its_driver(chromium: str, folder: Path) -> Path:
    """A launcher that makes Chromium SIGKILLed when its chromedriver dies (setpriv, from
    util-linux): a killed test run leaves no browser behind."""
    launcher = folder / "chromium"
    launcher.write_text(f'#!/bin/sh\nexec setpriv --pdeathsig KILL {shlex.quote(chromium)} "$@"\n')
    launcher.chmod(0o755)
    return launcher


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    found = {name: shutil.which(name) for name in BROWSER_TOOLS}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        packages = " ".join(BROWSER_TOOLS[name] for name in missing)
        pytest.fail(f"{', '.join(missing)} not found on PATH; fix: {BROWSER_FIX.format(packages=packages)}")
    chromium, driver = str(found["chromium"]), str(found["chromedriver"])
    folder = tmp_path_factory.mktemp("chromium")
    options = Options()
    options.binary_location = str(_dying_with_its_driver(chromium, folder))
    profile = folder / "profile"
    # --no-sandbox: the pages are this test's own files, and a container (or root) has no
    # user namespaces for Chromium's sandbox.
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900", f"--user-data-dir={profile}"):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # The driver path is given: selenium looks nothing up and downloads nothing.
    service = Service(executable_path=driver, popen_kw={"preexec_fn": _die_with_this_process})
    web = webdriver.Chrome(options=options, service=service)
    try:
        yield web
    finally:
        web.quit()


def _problems(web: WebDriver, page: Path, plots: int) -> list[str]:
    """What is wrong with `page` as the browser shows it (empty when nothing is)."""
    web.get_log("browser")  # drop what an earlier page logged
    web.get(page.as_uri())
    problems = []
    if web.execute_script("return document.readyState") != "complete":
        problems.append("the page did not finish loading")
    rows = web.find_elements(By.CSS_SELECTOR, "table#gates tbody tr")
    if not rows or not rows[0].is_displayed():
        problems.append("no gates table (table#gates) with rows is shown")
    shapes = web.execute_script(_PLOTS_SCRIPT)
    if len(shapes) != plots:
        problems.append(f"{len(shapes)} plot(s) on the page, {plots} expected")
    for n, (width, height, drawn_w, drawn_h, count) in enumerate(shapes, 1):
        if min(width, height) <= 0:
            problems.append(f"plot {n} is laid out at {width}x{height} px")
        if min(drawn_w, drawn_h) <= 0 or count == 0:
            problems.append(f"plot {n} draws nothing ({count} shapes, {drawn_w}x{drawn_h})")
    problems += [f"console: {e['message']}" for e in web.get_log("browser") if e["level"] == "SEVERE"]
    return problems


@pytest.fixture(scope="module")
def sample_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    settings = load_settings(write_sample_project(tmp_path_factory.mktemp("report") / "project"))
    return write_report(settings, collect_gates(settings))


def test_the_report_renders_with_its_plots_and_gates_and_no_console_error(
    browser: WebDriver, sample_page: Path, project_root: Path
) -> None:
    assert _problems(browser, sample_page, plots=2) == []
    gates = collect_gates(load_settings(sample_page.parent.parent.parent))
    rows = browser.find_elements(By.CSS_SELECTOR, "table#gates tbody tr")
    assert [r.find_elements(By.TAG_NAME, "td")[3].text for r in rows] == [g.status for g in gates]
    # The whole page, not only the window: the DevTools protocol draws beyond the viewport.
    size = browser.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    png = browser.execute_cdp_cmd("Page.captureScreenshot", {"clip": clip, "captureBeyondViewport": True})
    shot = load_settings(project_root).build_dir / "report" / "screenshot.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    shot.write_bytes(base64.b64decode(png["data"]))
    assert shot.read_bytes().startswith(b"\x89PNG"), f"{shot} is not a PNG"


def test_a_project_with_nothing_run_renders_without_plots_or_errors(
    browser: WebDriver, tmp_path: Path
) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.harness]\n")
    settings = load_settings(tmp_path)
    assert _problems(browser, write_report(settings, collect_gates(settings)), plots=0) == []


def test_canary_a_console_error_fails_the_check(
    browser: WebDriver, sample_page: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "index.html"
    text = sample_page.read_text()
    broken.write_text(text.replace("</body>", "<script>console.error('canary')</script></body>"))
    problems = _problems(browser, broken, plots=2)
    assert problems
    assert all(p.startswith("console: ") for p in problems), problems


def test_canary_a_plot_that_draws_nothing_fails_the_check(
    browser: WebDriver, sample_page: Path, tmp_path: Path
) -> None:
    text = sample_page.read_text()
    start = text.index("<svg")
    end = text.index("</svg>", start) + len("</svg>")
    broken = tmp_path / "index.html"
    broken.write_text(text[:start] + '<svg xmlns="http://www.w3.org/2000/svg"></svg>' + text[end:])
    assert _problems(browser, broken, plots=2) == ["plot 1 draws nothing (0 shapes, 0x0)"]
