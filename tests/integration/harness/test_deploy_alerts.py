"""promtool rule tests for monitoring/alerts.yml, run with the prometheus logical image's
promtool: they pass on the committed rules and fail when a rule is broken."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tierharness.config import load_settings
from tierharness.deploy.monitor import rehearsal_rules, run_rule_tests
from tierharness.engine.labels import RunIdentity
from tierharness.engine.run_ids import new_run_id
from tierharness.imaging.resolution import resolve_images

pytestmark = pytest.mark.usefixtures("harness_reaper")


@pytest.fixture(scope="module")
def prometheus_image() -> str:
    settings = load_settings()
    return resolve_images(settings, ["prometheus"], log=lambda _m: None)[0].ref


@pytest.fixture
def identity() -> RunIdentity:
    return RunIdentity.for_this_process(new_run_id("test-promtool-"))


def test_committed_rules_pass_their_tests(prometheus_image: str, identity: RunIdentity) -> None:
    settings = load_settings()
    alerts, tests = settings.root / settings.deploy.alerts, settings.root / settings.deploy.alert_tests
    result = run_rule_tests(prometheus_image, identity, alerts, tests, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


# Each mutation breaks one rule the way a careless edit would.
BROKEN = {
    "error-rate threshold raised": ("> 0.05", "> 0.5"),
    "error rate counting /ready": ('route!~"/health|/ready|/metrics"}[1m]))\n            /', "}[1m]))\n /"),
    "p95 threshold raised": (") > 2\n", ") > 10\n"),
    "instance-down never true": ("up == 0", "up == 2"),
    "readiness ratio inverted": ("> 0.5\n", "< 0.5\n"),
    "hold dropped": ("for: 1m", "for: 0s"),
}


@pytest.mark.parametrize("mutation", sorted(BROKEN))
def test_a_broken_rule_fails_its_tests(
    prometheus_image: str, identity: RunIdentity, tmp_path: Path, mutation: str
) -> None:
    settings = load_settings()
    source = (settings.root / settings.deploy.alerts).read_text()
    old, new = BROKEN[mutation]
    assert old in source, f"the mutation {mutation!r} no longer applies to alerts.yml"
    (tmp_path / "tests").mkdir()
    (tmp_path / "alerts.yml").write_text(source.replace(old, new))
    shutil.copy(settings.root / settings.deploy.alert_tests, tmp_path / "tests" / "alerts_test.yml")
    tests = tmp_path / "tests" / "alerts_test.yml"
    result = run_rule_tests(prometheus_image, identity, tmp_path / "alerts.yml", tests, check=False)
    assert result.returncode != 0, f"{mutation}: promtool passed a broken rule\n{result.stdout}"


def test_rehearsal_rules_keep_expressions_and_change_only_the_hold() -> None:
    settings = load_settings()
    source = (settings.root / settings.deploy.alerts).read_text()
    changed = rehearsal_rules(source, "2s")
    assert "for: 1m" not in changed
    assert changed.count("for: 2s") == source.count("for: 1m") == 4
    assert changed.replace("for: 2s", "for: 1m") == source
