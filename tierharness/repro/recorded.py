"""The build this checkout recorded (`build/image.json`), judged against clean builds of the
same commit.

`repro-check`'s two builds run with no cache; the image a checkout ships is built with the
engine's cache. A stage that the cache keeps across commits (one that does not depend on
SOURCE_DATE_EPOCH, so that the next commit reuses it) keeps the times of the build that first
made it: the exporter clamps only times later than the epoch, and a later commit's epoch is
later than those. So a cached build can differ from every clean build of the same commit,
however alike the clean builds are, and an independent rebuilder could never reproduce what
was shipped. Only a build of the same commit compares: one reused for a later commit whose
context did not change carries its own commit's revision and time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tierharness.config import Settings
from tierharness.gitrepo import git_output
from tierharness.imaging.image_record import build_record
from tierharness.repro.check import FIRST, kept_tarball, report_folder

__all__ = ["RecordedVerdict", "judge_checkout", "judge_recorded"]


@dataclass(frozen=True)
class RecordedVerdict:
    """`agrees`: the recorded build's digest is the clean builds' (None: not compared, and
    why in `lines`). `lines`: what to print."""

    agrees: bool | None
    lines: tuple[str, ...]


def judge_recorded(
    record: dict[str, Any] | None, revision: str, clean: str, *, record_path: str, kept: str
) -> RecordedVerdict:
    """`record`: build/image.json's contents (None when there is none); `revision`: the commit
    the clean builds were made of; `clean`: their digest; `kept`: where `repro-check --keep`
    leaves the first clean build's tarball."""
    if record is None:
        return RecordedVerdict(
            None, (f"recorded  none ({record_path}): no build of this checkout to compare",)
        )
    digest, built_of = str(record.get("digest", "")), str(record.get("revision", ""))
    shown = f"recorded  {digest}  ({record_path}, built with the engine's cache)"
    if built_of != revision:
        return RecordedVerdict(
            None,
            (
                shown,
                f"  not compared: it is the build of {built_of[:12]}, not of {revision[:12]} (reused: "
                "nothing in its context changed since); `python -m tierharness build --force` "
                "records this commit's own",
            ),
        )
    if digest == clean:
        return RecordedVerdict(True, (shown, "  the clean builds give the recorded build's digest"))
    return RecordedVerdict(
        False,
        (
            shown,
            "NOT reproducible: the build recorded for this commit differs from its clean builds",
            "  a stage the cache kept from an earlier build carries what a clean build does not "
            "(most often its files' times: give them a fixed time in that stage)",
            f"  explain it: `python -m tierharness repro-check --keep`, then `python -m tierharness diff "
            f"{record.get('image', '<the recorded image>')} {kept}`",
        ),
    )


def judge_checkout(settings: Settings, clean: str) -> RecordedVerdict:
    """This checkout's record, if it has one, against `clean`, the digest of clean builds of HEAD."""
    record = build_record(settings) if settings.image_record.exists() else None
    revision = git_output(settings.root, "rev-parse", "HEAD") or "unknown"
    kept = kept_tarball(report_folder(settings), FIRST)
    return judge_recorded(record, revision, clean, record_path=str(settings.image_record), kept=str(kept))
