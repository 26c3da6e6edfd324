"""Canaries: small images that are not reproducible in known ways, built twice by
`check_reproducible` exactly as `repro-check` builds the real one. Each must be caught,
with the offending path named; the clean one must pass."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from tierharness.config import load_settings
from tierharness.imaging.buildx import buildx_build
from tierharness.oci import read_oci
from tierharness.repro.check import DockerfileBuild, check_reproducible
from tierharness.repro.diff import diff_images
from tierharness.repro.recorded import judge_recorded

CANARIES = {
    "date": ("RUN date +%s%N > /build-stamp", "/build-stamp", "content differs"),
    "random": ("RUN head -c 16 /dev/urandom > /random.bin", "/random.bin", "content differs"),
    "pyc-without-sde": (
        "RUN printf 'x = 1\\n' > /m.py"
        " && python3 -c \"import py_compile; py_compile.compile('/m.py', cfile='/m.pyc')\"",
        "/m.pyc",
        "timestamp-based .pyc",
    ),
    # `apt-get update` against a local file: repository, so the canary needs no network (and
    # its cache stays small): the binary cache records the lists' build-time mtimes.
    "apt-cache": (
        "RUN mkdir /repo && cp /var/lib/dpkg/status /repo/Packages"
        " && echo 'deb [trusted=yes] file:/repo ./' > /local.list"
        " && apt-get update -qq -o Dir::Etc::SourceList=/local.list -o Dir::Etc::SourceParts=-",
        "/var/cache/apt/pkgcache.bin",
        "apt's binary package cache",
    ),
    "copy-old-file": ("COPY hello.txt /hello.txt", "/hello.txt", "the timestamp differs"),
}


def _context(tmp_path: Path, instruction: str) -> Path:
    context = tmp_path / "context"
    context.mkdir()
    (context / "hello.txt").write_text("hello\n")
    (context / "Dockerfile").write_text(
        f"ARG BASE\nFROM ${{BASE}}\nRUN echo stable > /stable.txt\n{instruction}\n"
    )
    return context


def _spec() -> DockerfileBuild:
    return DockerfileBuild(
        build_args={"BASE": load_settings().image("base").local}, source_date_epoch=1_700_000_000
    )


def test_every_canary_is_reported_not_reproducible_naming_its_path(tmp_path: Path) -> None:
    """All of them in one image, built twice once (each pair of builds costs seconds): every
    offending path must be named with its cause, and the stable file must not be."""
    instructions = "\n".join(instruction for instruction, _path, _cause in CANARIES.values())
    diff = check_reproducible(
        _context(tmp_path, instructions), _spec(), tmp_path / "report", log=lambda _m: None
    )
    assert not diff.reproducible
    offending = diff.offending_paths()
    report = (tmp_path / "report" / "report.md").read_text()
    for name, (_instruction, path, cause) in CANARIES.items():
        assert path in offending, f"{name}: {path} not among {offending}"
        change = next(c for layer in diff.layers for c in layer.changed if c.path == path)
        assert cause in change.why, f"{name}: {change.why!r}"
        assert path in report, name
    assert "/stable.txt" not in offending
    assert "NOT reproducible" in report
    assert (tmp_path / "report" / "report.json").exists()


def test_clean_canary_is_reproducible(tmp_path: Path) -> None:
    clean = "RUN mkdir -p /data && printf 'same\\n' > /data/file && chmod 0640 /data/file"
    context, spec = _context(tmp_path, clean), _spec()
    diff = check_reproducible(context, spec, tmp_path / "report", log=lambda _m: None)
    assert diff.reproducible, diff.summary()
    assert diff.a_digest == diff.b_digest
    assert diff.offending_paths() == []
    assert not (tmp_path / "report" / "first.oci.tar").exists()  # identical tarballs are not kept
    # The check's builds keep their steps to themselves (a host name of their own on every RUN):
    # that must not reach the image, or the digest it proves would not be the one a build makes.
    plain = tmp_path / "plain.oci.tar"
    buildx_build(
        context, build_args=spec.build_args, source_date_epoch=spec.source_date_epoch, oci_dest=plain
    )
    assert read_oci(plain).digest == diff.a_digest


def test_a_cached_stage_with_an_earlier_builds_times_is_caught_against_the_recorded_build(
    tmp_path: Path,
) -> None:
    """The canary for `repro-check`'s comparison with the recorded build: a stage that no
    SOURCE_DATE_EPOCH reaches is reused from the cache for a later commit, and keeps the first
    build's file times, which that commit's epoch is later than. Two clean builds agree with each
    other; the recorded (cached) build does not, and the diff names the file. A file given a
    fixed time in the stage, as Dockerfile.enterprise's deps stage gives its venv, is not named."""
    token = uuid.uuid4().hex  # a step no earlier build cached
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(
        "ARG BASE\nFROM ${BASE}\n"
        f"RUN mkdir /kept /fixed && echo {token} > /kept/file && echo {token} > /fixed/file"
        " && touch --date=@315532800 /fixed /fixed/file\n"
    )
    args = {"BASE": load_settings().image("base").local}
    buildx_build(context, build_args=args, source_date_epoch=1_700_000_000)  # an earlier commit's
    time.sleep(1.1)
    epoch = int(time.time())  # a later commit's: after the step ran, before the clean builds run
    time.sleep(1.1)
    recorded = tmp_path / "recorded.oci.tar"
    cached = buildx_build(context, build_args=args, source_date_epoch=epoch, oci_dest=recorded)
    assert cached.cached_steps >= 1, "the step was not reused from the cache: the canary proves nothing"
    spec = DockerfileBuild(build_args=args, source_date_epoch=epoch)
    clean = check_reproducible(context, spec, tmp_path / "report", log=lambda _m: None, keep=True)
    assert clean.reproducible, clean.summary()
    record = {"digest": read_oci(recorded).digest, "revision": "r", "image": "canary"}
    verdict = judge_recorded(
        record, "r", clean.a_digest, record_path="image.json", kept=str(tmp_path / "report" / "first.oci.tar")
    )
    assert verdict.agrees is False, verdict.lines
    explained = diff_images(read_oci(recorded), read_oci(tmp_path / "report" / "first.oci.tar"))
    assert "/kept/file" in explained.offending_paths()
    change = next(c for layer in explained.layers for c in layer.changed if c.path == "/kept/file")
    assert "the timestamp differs" in change.why
    assert not [p for p in explained.offending_paths() if p.startswith("/fixed")]
