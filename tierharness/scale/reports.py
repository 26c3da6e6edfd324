"""`merge-reports`: the shards' JUnit files and coverage data, made into the one report a
whole run would have given, with the coverage gate applied to the merged data (a shard alone
covers too little to be judged).

Each test must appear exactly once across the shards: a test in two shards ran twice, and
the merge says which."""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from junitparser import JUnitXml, TestSuite

from tierharness.errors import HarnessError
from tierharness.process import run

__all__ = ["MergedReports", "merge_coverage", "merge_junit"]


@dataclass(frozen=True)
class MergedReports:
    junit: Path
    tests: int
    failures: int
    errors: int
    skipped: int
    shards: int


def _suites(xml: JUnitXml | TestSuite) -> list[TestSuite]:
    return [xml] if isinstance(xml, TestSuite) else list(xml)


def merge_junit(files: list[Path], dest: Path) -> MergedReports:
    """One JUnit file of every shard's suites; an error naming any test that ran twice."""
    if not files:
        raise HarnessError(
            "no shard JUnit files to merge",
            checked=f"{dest.parent}/tests-shard-*.xml",
            fix="run the shards first (nox -s tests -- --shard K/N), or download their artifacts there",
        )
    merged = JUnitXml(name="tests")
    seen: Counter[str] = Counter()
    for path in sorted(files):
        for suite in _suites(JUnitXml.fromfile(str(path))):
            suite.name = f"{suite.name} ({path.stem})"
            for case in suite:
                seen[f"{case.classname}::{case.name}"] += 1
            merged.add_testsuite(suite)
    twice = sorted(name for name, count in seen.items() if count > 1)
    if twice:
        raise HarnessError(
            f"{len(twice)} test(s) ran in more than one shard, e.g. {twice[0]}",
            checked=f"every test case of {', '.join(p.name for p in files)} appears once",
            fix="give every shard the same --shard N and the same durations file (tests/durations.json)",
        )
    merged.update_statistics()  # type: ignore[no-untyped-call]
    dest.parent.mkdir(parents=True, exist_ok=True)
    merged.write(str(dest), pretty=True)
    return MergedReports(
        dest, int(merged.tests), int(merged.failures), int(merged.errors), int(merged.skipped), len(files)
    )


def merge_coverage(files: list[Path], data_file: Path, xml: Path, fail_under: float | None = None) -> str:
    """Combine the shards' coverage data into `data_file`, write `xml`, and report; the gate
    (`fail_under`, or [tool.coverage.report] fail_under) applies to the merged data."""
    if not files:
        raise HarnessError(
            "no shard coverage data to merge",
            checked=f"{data_file.parent}/shards/.coverage.shard-*",
            fix="run the shards first (nox -s tests -- --shard K/N), or download their artifacts there",
        )
    coverage = [sys.executable, "-m", "coverage"]
    fix = "read coverage's message above"
    run([*coverage, "combine", "--keep", "--data-file", str(data_file), *map(str, files)],
        what="combining the shards' coverage", fix=fix)  # fmt: skip
    run([*coverage, "xml", "--data-file", str(data_file), "--fail-under=0", "-o", str(xml)],
        what="writing the merged coverage XML", fix=fix)  # fmt: skip
    gate = [f"--fail-under={fail_under:g}"] if fail_under is not None else []
    report = run(
        [*coverage, "report", "--data-file", str(data_file), *gate],
        what="the coverage gate on the merged data",
        fix="add tests for what the report shows as missed, or lower [tool.coverage.report] fail_under",
    )
    return report.stdout
