"""Shards: a spec is checked, the shards together are the whole suite (no test lost, none
twice), stale durations only warn, and merging refuses a test that ran twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tierharness.errors import HarnessError
from tierharness.scale.reports import merge_coverage, merge_junit
from tierharness.scale.shards import Shard, stale_durations


@pytest.mark.parametrize(("spec", "message"), [("3/2", "does not exist"), ("0/4", "does not exist"),
                                               ("2", "is not K/N"), ("a/b", "is not K/N")])  # fmt: skip
def test_a_shard_that_does_not_exist_is_refused(spec: str, message: str) -> None:
    with pytest.raises(HarnessError, match=message):
        Shard.parse(spec)


def test_a_shard_names_its_reports_and_slices_with_pytest_split() -> None:
    shard = Shard.parse("2/3")
    assert shard.name == "shard-2-of-3"
    assert shard.pytest_args()[:4] == ["--splits", "3", "--group", "2"]


# Loaded into the one collection below. pytest-split keeps one group of the collected items
# (a trylast hook); around it, this records the whole collection, the group kept, and every
# group the same algorithm makes from the same items and durations.
SHARD_PROBE = """
import json, os
import pytest
from pytest_split import algorithms

@pytest.hookimpl(hookwrapper=True)
def pytest_collection_modifyitems(config, items):
    whole = list(items)
    yield
    with open(config.option.durations_path, encoding="utf-8") as f:
        durations = json.load(f)
    algorithm = algorithms.Algorithms[config.option.splitting_algorithm].value
    groups = algorithm(config.option.splits, whole, durations)
    with open(os.environ["SHARD_PROBE_OUT"], "w", encoding="utf-8") as f:
        json.dump({"whole": [i.nodeid for i in whole], "kept": [i.nodeid for i in items],
                   "groups": [[i.nodeid for i in g.selected] for g in groups]}, f)
"""


@pytest.mark.usefixtures("untraced_children")  # a collection imports only what the workers do
def test_the_union_of_the_shards_is_the_whole_suite(project_root: Path, tmp_path: Path) -> None:
    """One collection of the whole suite with a shard's own arguments (each collection imports
    everything: seconds of CPU), instead of one per shard."""
    if not (project_root / "tests" / "integration").is_dir():
        pytest.skip("the integration tier is not here (the image's test stage copies only the unit tier)")
    (tmp_path / "shard_probe.py").write_text(SHARD_PROBE)
    out = tmp_path / "shards.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
           "SHARD_PROBE_OUT": str(out)}  # fmt: skip
    collect = [
        sys.executable,
        "-m",
        "pytest",
        "--collect-only",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "shard_probe",
    ]
    shard = Shard(2, 3)
    proc = subprocess.run(
        [*collect, "tests/unit", "tests/integration", *shard.pytest_args()],
        cwd=project_root, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = json.loads(out.read_text())
    listed = [line for line in proc.stdout.splitlines() if line.startswith("tests/") and "::" in line]
    assert listed == found["kept"] == found["groups"][shard.index - 1]  # what --shard 2/3 runs
    whole, union = found["whole"], [test for group in found["groups"] for test in group]
    assert len(whole) > 100
    assert len(found["groups"]) == shard.count
    assert sorted(union) == sorted(whole)  # none lost
    assert len(union) == len(set(union))  # none twice
    assert all(found["groups"]), "a shard got no test at all"


def test_durations_of_tests_that_no_longer_exist_are_found(tmp_path: Path) -> None:
    durations = tmp_path / "durations.json"
    durations.write_text(json.dumps({"tests/test_a.py::test_kept": 1.0, "tests/test_a.py::test_gone": 2.0}))
    assert stale_durations(durations, {"tests/test_a.py::test_kept"}) == ["tests/test_a.py::test_gone"]
    assert stale_durations(tmp_path / "missing.json", set()) == []


def _junit(path: Path, *cases: str) -> Path:
    body = "".join(f'<testcase classname="c" name="{name}" time="0.1"/>' for name in cases)
    path.write_text(
        f'<testsuites><testsuite name="pytest" tests="{len(cases)}">{body}</testsuite></testsuites>'
    )
    return path


def test_merged_junit_holds_every_test_once_and_refuses_a_test_run_twice(tmp_path: Path) -> None:
    one, two = (
        _junit(tmp_path / "tests-shard-1-of-2.xml", "a", "b"),
        _junit(tmp_path / "tests-shard-2-of-2.xml", "c"),
    )
    merged = merge_junit([one, two], tmp_path / "tests.xml")
    assert (merged.tests, merged.shards) == (3, 2)
    assert (tmp_path / "tests.xml").read_text().count("<testcase") == 3
    _junit(two, "c", "a")
    with pytest.raises(HarnessError, match=r"1 test\(s\) ran in more than one shard, e.g. c::a"):
        merge_junit([one, two], tmp_path / "tests.xml")


def test_the_coverage_gate_applies_to_the_merged_data(tmp_path: Path) -> None:
    module = tmp_path / "mod.py"
    module.write_text("def a():\n    return 1\n\n\ndef b():\n    return 2\n")
    shards = []
    for n, call in ((1, "a"), (2, "b")):
        data = tmp_path / "shards" / f".coverage.shard-{n}-of-2"  # apart, as the tests session keeps them
        (tmp_path / f"run{n}.py").write_text(f"import mod\nmod.{call}()\n")
        subprocess.run(
            [sys.executable, "-m", "coverage", "run", "--data-file", str(data), "--include", str(module),
             f"run{n}.py"],
            cwd=tmp_path, check=True,
        )  # fmt: skip
        shards.append(data)
    # Each shard alone covers 4 of 6 statements; together they cover all of them.
    report = merge_coverage(shards, tmp_path / ".coverage", tmp_path / "coverage.xml", fail_under=100)
    assert "100%" in report
    with pytest.raises(HarnessError, match="coverage gate on the merged data"):
        merge_coverage(shards[:1], tmp_path / ".coverage", tmp_path / "coverage.xml", fail_under=100)
