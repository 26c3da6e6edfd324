"""Checks running at once on one engine. BuildKit runs a step once for all the builds that
load it while it is held, `--no-cache` or not: each check's builds must get their own."""

from __future__ import annotations

import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.integration.harness.test_repro_canaries import _context, _spec
from tierharness.repro.check import check_reproducible
from tierharness.repro.diff import ImageDiff

STAMP = "RUN date +%s%N > /build-stamp\nARG HOLD\nRUN sleep $HOLD"
# `short`'s second build loads its steps about a second and a half after its first build
# ends (the check's pause, then buildx); `long`'s first build holds the stamp step HOLD
# seconds longer than `short`'s does.
HOLD = 4


def _check(folder: Path, hold: int, start: threading.Barrier) -> ImageDiff:
    spec = _spec()
    spec = dataclasses.replace(spec, build_args={**(spec.build_args or {}), "HOLD": str(hold)})
    folder.mkdir()
    context = _context(folder, STAMP)
    start.wait(timeout=60)
    return check_reproducible(context, spec, folder / "report", log=lambda _m: None)


def test_two_checks_at_once_never_call_a_build_stamp_reproducible(tmp_path: Path) -> None:
    """The same Dockerfile checked twice at once, one of them held HOLD seconds after the stamp:
    the first builds load the stamp step together, and `short`'s second build loads it while
    `long`'s first still holds it. Shared, `short` gets one stamp in both of its builds (in every
    run without a host name of their own, so one round is enough)."""
    start = threading.Barrier(2)
    with ThreadPoolExecutor(2) as pool:
        runs = {
            name: pool.submit(_check, tmp_path / name, hold, start)
            for name, hold in (("short", 0), ("long", HOLD))
        }
        diffs = {name: run.result() for name, run in runs.items()}
    for name, diff in diffs.items():
        assert not diff.reproducible, (
            f"the {name!r} check called `RUN date` reproducible (both builds {diff.a_digest}): "
            "its two builds got the stamp step of the other check's build"
        )
        assert "/build-stamp" in diff.offending_paths(), f"{name}: {diff.summary()}"
