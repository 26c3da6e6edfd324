"""The recorded build judged against clean builds of the same commit (tierharness.repro.recorded)."""

from __future__ import annotations

from tierharness.repro.recorded import judge_recorded

HEAD = "a" * 40
CLEAN = "sha256:" + "1" * 64
KEPT = "build/repro/first.oci.tar"


def _record(digest: str, revision: str = HEAD) -> dict[str, str]:
    return {"digest": digest, "revision": revision, "image": "app:aaaaaaaaaaaa"}


def test_a_recorded_build_of_the_commit_that_clean_builds_reproduce_agrees() -> None:
    verdict = judge_recorded(_record(CLEAN), HEAD, CLEAN, record_path="build/image.json", kept=KEPT)
    assert verdict.agrees is True


def test_a_recorded_build_of_the_commit_that_differs_fails_naming_the_diff_to_run() -> None:
    verdict = judge_recorded(
        _record("sha256:" + "2" * 64), HEAD, CLEAN, record_path="build/image.json", kept=KEPT
    )
    assert verdict.agrees is False
    text = "\n".join(verdict.lines)
    assert "NOT reproducible" in text
    assert "python -m tierharness diff app:aaaaaaaaaaaa build/repro/first.oci.tar" in text


def test_a_build_reused_from_another_commit_is_not_compared_and_says_how_to_record_this_one() -> None:
    verdict = judge_recorded(
        _record("sha256:" + "2" * 64, revision="b" * 40),
        HEAD,
        CLEAN,
        record_path="build/image.json",
        kept=KEPT,
    )
    assert verdict.agrees is None
    assert "build --force" in "\n".join(verdict.lines)


def test_no_record_is_not_compared() -> None:
    verdict = judge_recorded(None, HEAD, CLEAN, record_path="build/image.json", kept=KEPT)
    assert verdict.agrees is None
    assert "none" in verdict.lines[0]
