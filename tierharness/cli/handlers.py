"""The handler of each command: it reads its arguments, calls the module of its job and
prints what that returned. The job modules are imported inside the handlers, so that a
command's start-up (and `--help`) loads only what that command needs."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from tierharness.config import PERF_OPTIONS, Settings, load_settings
from tierharness.errors import HarnessError

if TYPE_CHECKING:
    from tierharness.repro.diff import ImageDiff

__all__ = [
    "build",
    "cache_dir",
    "clean",
    "connect",
    "deploy",
    "diff",
    "dist",
    "doctor",
    "gates",
    "images",
    "keys",
    "lock",
    "merge_reports",
    "perf",
    "publish",
    "registry",
    "repro_check",
    "rotate_secrets",
    "security",
    "shard",
    "verify",
]


def _log(message: str) -> None:
    print(f"harness: {message}", file=sys.stderr)


def images(args: argparse.Namespace) -> int:
    from tierharness.imaging.resolution import resolve_images  # noqa: PLC0415  lazy: CLI start-up

    log = _log if not args.quiet else (lambda m: None)
    chosen = resolve_images(
        load_settings(), args.names or None, pull=not args.offline, rebuild=args.rebuild, log=log
    )
    for image in chosen:
        print(image.line())
    return 0


def lock(args: argparse.Namespace) -> int:
    from tierharness.imaging import project_locks  # noqa: PLC0415  lazy: CLI start-up

    settings = load_settings()
    if args.images:
        return project_locks.lock_images(settings, args.names, log=_log)
    names = args.names or list(settings.lock.files)
    if args.check:
        return project_locks.check_locks(settings, names)
    return project_locks.compile_locks(settings, names, upgrade=args.upgrade)


def build(args: argparse.Namespace) -> int:
    from tierharness.imaging.project_image import build_image  # noqa: PLC0415  lazy: CLI start-up

    settings = load_settings()
    built = build_image(settings, force=args.force, no_cache=args.no_cache, log=_log)
    how = "reused" if built.reused else f"built in {built.build_seconds:.1f}s"
    print(f"image  {built.image}")
    print(f"digest {built.digest}")
    record = settings.image_record
    print(f"{how}; steps cached {built.cached_steps}/{built.total_steps}; record {record}")
    return 0


def _print_reproducible(reproducible: bool, diff: ImageDiff) -> int:
    """Prints `reproducible`, or `NOT reproducible` and what differs; the exit code."""
    if reproducible:
        print("reproducible")
        return 0
    print("NOT reproducible")
    for line in diff.summary():
        print(f"  {line}")
    return 1


def _print_diff(diff: ImageDiff, reports: tuple[Path, Path] | None) -> int:
    print(f"first  {diff.a_digest}")
    print(f"second {diff.b_digest}")
    if _print_reproducible(diff.reproducible, diff) == 0:
        return 0
    if reports:
        print(f"report: {reports[0]} and {reports[1]}")
    return 1


def repro_check(args: argparse.Namespace) -> int:
    from tierharness.repro.check import report_folder  # noqa: PLC0415  lazy: CLI start-up
    from tierharness.repro.check import repro_check as check  # noqa: PLC0415  lazy: CLI start-up

    settings = load_settings()
    folder = report_folder(settings)
    if args.independent:
        return _independent_rebuild(settings, args.keep, folder)
    diff = check(settings, keep=args.keep, log=_log)
    code = _print_diff(diff, (folder / "report.json", folder / "report.md"))
    return code | _print_recorded(settings, diff.a_digest)


def _print_recorded(settings: Settings, clean: str) -> int:  # 1: the recorded build differs
    from tierharness.repro.recorded import judge_checkout  # noqa: PLC0415  lazy: CLI start-up

    verdict = judge_checkout(settings, clean)
    print("\n".join(verdict.lines))
    return 1 if verdict.agrees is False else 0


def _independent_rebuild(settings: Settings, keep: bool, folder: Path) -> int:
    from tierharness.repro.independent import independent_rebuild  # noqa: PLC0415  lazy: CLI start-up

    result = independent_rebuild(settings, keep=keep, log=_log)
    print(f"engine 1  {result.engine1}")
    print(f"engine 2  {result.engine2}")
    print(f"base      {result.base1} (engine 1), {result.base2} (engine 2)")
    print(f"independent rebuild in {result.seconds:.0f}s")
    _print_reproducible(result.engine1 == result.engine2, result.diff)
    print("\n".join(result.recorded.lines))
    if result.reproducible:
        return 0
    print(f"report: {folder / 'report.json'} and {folder / 'report.md'}")
    return 1


def dist(args: argparse.Namespace) -> int:
    from tierharness.distribution import make_dist  # noqa: PLC0415  lazy: CLI start-up

    settings = load_settings()
    made = make_dist(settings, check=args.check, log=_log)
    root = settings.root
    for artifact in (made.wheel, made.sdist):
        path = artifact.path.relative_to(root) if artifact.path.is_relative_to(root) else artifact.path
        print(f"{artifact.sha256}  {path}")  # as sha256sum prints it
    print(f"revision {made.revision}, SOURCE_DATE_EPOCH {made.source_date_epoch}; record {made.record}")
    if made.check is None:
        return 0
    for artifact in made.check.second:
        print(f"{artifact.sha256}  second build: {artifact.path.name}")
    if made.check.reproducible:
        print("reproducible: the second build (umask 077, another time zone, folder and mtimes) agrees")
        return 0
    print("NOT reproducible")
    for line in made.check.differences:
        print(f"  {line}")
    print(f"the second build's artifacts: {made.record.parent / 'second'}")
    return 1


def diff(args: argparse.Namespace) -> int:
    from tierharness.engine.client import docker_cli  # noqa: PLC0415  lazy: CLI start-up
    from tierharness.oci import read_oci  # noqa: PLC0415  lazy: CLI start-up
    from tierharness.process import run  # noqa: PLC0415  lazy: CLI start-up
    from tierharness.repro.diff import diff_images, write_reports  # noqa: PLC0415  lazy: CLI start-up
    from tierharness.scratch import scratch_folder  # noqa: PLC0415  lazy: CLI start-up

    with scratch_folder("diff") as tmp:
        oci = []
        for n, ref in enumerate((args.first, args.second)):
            path = Path(ref)
            if not path.is_file():
                # A local image: export it (the containerd store writes an OCI layout).
                path = Path(tmp) / f"{n}.tar"
                run(
                    [docker_cli(), "save", "--output", str(path), ref],
                    what=f"{ref!r} is not a file; exporting it as a local image",
                    fix="give the path of an OCI tarball or the name of a local image",
                )
            oci.append(read_oci(path))
        found = diff_images(oci[0], oci[1])
        reports = write_reports(found, Path(args.report_dir)) if args.report_dir else None
        return _print_diff(found, reports)


def clean(args: argparse.Namespace) -> int:
    from tierharness.engine.client import engine_client  # noqa: PLC0415  lazy: CLI start-up
    from tierharness.engine.reaper import sweep_dead_runs  # noqa: PLC0415  lazy: CLI start-up
    from tierharness.engine.reuse import kept_containers, remove_kept  # noqa: PLC0415  lazy: CLI start-up
    from tierharness.runtime.migrated import remove_migrated  # noqa: PLC0415  lazy: CLI start-up
    from tierharness.scratch import sweep_scratch  # noqa: PLC0415  lazy: CLI start-up

    if args.build_cache and (args.prune or args.all_users):
        raise HarnessError(
            "--build-cache prunes this user's build cache and nothing else",
            checked="the flags given to `clean`",
            fix="run `clean --build-cache` alone, or `clean --prune` (it prunes the build cache too)",
        )
    if args.build_cache:
        _prune_build_cache(engine_client())
        return 0
    folders = sweep_scratch()  # before the engine's first call: they need none
    client = engine_client()
    kept = remove_kept(client, all_users=args.all_users)
    dead = sweep_dead_runs(client)
    # After the sweep, so no dead run's container holds one.
    migrated = 0 if args.keep_migrated else remove_migrated(client, all_users=args.all_users)
    whose = "every user's" if args.all_users else "this user's"
    print(
        f"removed {kept} kept container(s) (--harness-reuse, --harness-keep-failed) and {migrated} "
        f"migrated image(s), {whose}; "
        f"cleaned {len(dead)} run(s) whose owner is gone, and {len(folders)} temporary folder(s) of "
        "processes that are gone"
    )
    if not args.all_users and (others := len(kept_containers(client, all_users=True))):
        print(f"left {others} kept container(s) of other users (--all-users removes them too)")
    return _prune(client) if args.prune else 0


def _prune(client: object) -> int:
    from tierharness.config import environment  # noqa: PLC0415  lazy: CLI start-up
    from tierharness.engine import retention  # noqa: PLC0415  lazy: CLI start-up
    from tierharness.imaging.stage_cache import prune_stage_caches  # noqa: PLC0415  lazy: CLI start-up

    settings, idle = load_settings(required=False), environment().build_cache_idle
    keep = settings.build.keep_images
    pulls = retention.prune_loopback_pulls(client=client)
    _prune_build_cache(client)
    builds = retention.prune_old_builds(settings.build.image, keep, client=client)
    stages = prune_stage_caches(idle)
    print(
        f"removed {len(pulls)} reference(s) pulled from runs' own registries; "
        f"{len(builds)} old build(s) of {settings.build.image} (keep-images = {keep}); "
        f"{stages} stage cache(s) no build exported into for {idle:.0f} s"
    )
    return 0


def _prune_build_cache(client: object) -> None:
    """This user's harness builds' build cache, pruned by the rules `clean --prune` states;
    what it did, printed."""
    from tierharness.config import environment  # noqa: PLC0415  lazy: CLI start-up
    from tierharness.engine import retention  # noqa: PLC0415  lazy: CLI start-up

    env = environment()
    idle, budget = env.build_cache_idle, env.build_cache_keep
    cache = retention.prune_build_cache(idle, keep_bytes=int(budget * 2**20), client=client)
    print(
        f"removed {cache.records} build cache record(s) ({cache.size / 2**20:.0f} MiB) "
        f"unused for {idle:.0f} s (HARNESS_BUILD_CACHE_IDLE) or made by --no-cache builds: "
        "only what this user's runs made"
    )
    if cache.held:
        print(
            f"left {cache.held} such record(s) ({cache.held_size / 2**20:.0f} MiB): within "
            f"HARNESS_BUILD_CACHE_KEEP ({budget:.0f} MiB); any prune makes the engine forget every "
            "cached step built on an image (the project image's stages import theirs again)"
        )


def connect(args: argparse.Namespace) -> int:
    """Into a failed test's kept copy: psql or redis-cli in its container, or its URLs."""
    import os  # noqa: PLC0415  lazy: CLI start-up
    import subprocess  # noqa: PLC0415  lazy: CLI start-up

    from tierharness.engine.client import engine_client  # noqa: PLC0415  lazy: CLI start-up
    from tierharness.runtime.postmortem import connection, find_kept, urls  # noqa: PLC0415  lazy: CLI start-up
    from tierharness.runtime.worker import engine_host, host_port  # noqa: PLC0415  lazy: CLI start-up

    test, found = find_kept(engine_client(), args.test)
    if args.url:
        print(f"# {test}", *urls(found, engine_host(), host_port), sep="\n")
        return 0
    tty = sys.stdin.isatty() and sys.stdout.isatty()
    how = connection(found, to_redis=args.redis, extra=args.passthrough, tty=tty)
    return subprocess.call(how.argv, env={**os.environ, **how.env})


def cache_dir(args: argparse.Namespace) -> int:
    """The machine's cache folder (or a folder in it), which every checkout shares."""
    from tierharness.config import machine_cache  # noqa: PLC0415  lazy: CLI start-up

    print(machine_cache(args.name or ""))
    return 0


def shard(args: argparse.Namespace) -> int:
    """What a shard's pytest run needs, as JSON (the tests session reads it)."""
    from tierharness.scale.shards import Shard  # noqa: PLC0415  lazy: CLI start-up

    one = Shard.parse(args.spec)
    print(json.dumps({"name": one.name, "pytest_args": one.pytest_args()}))
    return 0


def merge_reports(args: argparse.Namespace) -> int:
    from tierharness.scale.reports import merge_coverage, merge_junit  # noqa: PLC0415  lazy: CLI start-up

    settings = load_settings()
    junit_dir, coverage_dir = settings.build_dir / "junit", settings.build_dir / "coverage"
    merged = merge_junit(sorted(junit_dir.glob("tests-shard-*.xml")), junit_dir / "tests.xml")
    print(
        f"merged {merged.shards} shard(s) into {merged.junit}: {merged.tests} tests, "
        f"{merged.failures} failed, {merged.errors} errors, {merged.skipped} skipped"
    )
    report = merge_coverage(
        sorted((coverage_dir / "shards").glob(".coverage.shard-*")),
        coverage_dir / ".coverage",
        coverage_dir / "coverage.xml",
    )
    # The TOTAL line, not the last one (with skip_covered, that counts the skipped files).
    lines = report.strip().splitlines()
    total = next((line for line in lines if line.startswith("TOTAL")), lines[-1] if lines else "")
    print(f"merged coverage, gated (fail_under): {' '.join(total.split())}")
    return 1 if merged.failures or merged.errors else 0


def perf(args: argparse.Namespace) -> int:
    from tierharness.perf.locust_run import run_perf  # noqa: PLC0415  lazy: CLI start-up

    if args.accept_knee and not args.capacity:
        raise HarnessError(
            "--accept-knee records a capacity run's knee, and this is not a capacity run",
            checked="the flags of `perf`",
            fix="add --capacity: `nox -s perf -- --capacity --accept-knee`",
        )
    settings = load_settings()
    cfg = settings.perf.override(**{o.attr: getattr(args, o.attr) for o in PERF_OPTIONS})
    return run_perf(
        settings,
        cfg,
        target_url=args.target_url,
        capacity=args.capacity,
        accept_knee=args.accept_knee,
        log=_log,
    )


def deploy(args: argparse.Namespace) -> int:
    from tierharness.deploy.rehearse import run_rehearsal  # noqa: PLC0415  lazy: CLI start-up

    wanted = [c for item in args.candidate or ["current"] for c in item.split(",") if c]
    return run_rehearsal(load_settings(), wanted, expect_rollback=args.expect_rollback, log=_log)


def rotate_secrets(args: argparse.Namespace) -> int:
    from tierharness.deploy.rotate import run_rotation  # noqa: PLC0415  lazy: CLI start-up

    return run_rotation(load_settings(), log=_log)


def doctor(args: argparse.Namespace) -> int:
    from tierharness.doctor import diagnose, exit_code, project_root, render  # noqa: PLC0415  lazy: CLI start-up

    # Not load_settings(): a project configured in [tool.pytest.ini_options] alone has no
    # [tool.harness] table, and the plugin runs it on the defaults; doctor checks it the same way.
    checks = diagnose(load_settings(project_root(), required=False))
    print(render(checks))
    return exit_code(checks)


def security(args: argparse.Namespace) -> int:
    from tierharness.security.scan_all import run_security  # noqa: PLC0415  lazy: CLI start-up

    report = run_security(
        load_settings(),
        image=Path(args.image) if args.image else None,
        strict_vulns=args.strict_vulns,
        log=lambda m: print(f"security: {m}"),
    )
    return 1 if report.verdict == "FAIL" else 0


def gates(args: argparse.Namespace) -> int:
    from tierharness.gates import collect_gates, write_gates  # noqa: PLC0415  lazy: CLI start-up
    from tierharness.report.page import write_report  # noqa: PLC0415  lazy: CLI start-up

    settings = load_settings()
    found = collect_gates(settings)  # once: the page and the report show the same verdicts
    text, code = write_gates(settings, found)
    print(text, end="")
    print(f"written to {settings.build_dir / 'gates.md'}")
    print(f"report: {write_report(settings, found)}")
    return code


def keys(args: argparse.Namespace) -> int:
    from tierharness.supply.signing import ensure_keys  # noqa: PLC0415  lazy: CLI start-up

    pair = ensure_keys(load_settings(), force=args.force, if_missing=args.if_missing)
    print(f"private {pair.private} (0600)")
    print(f"public  {pair.public}")
    return 0


def publish(args: argparse.Namespace) -> int:
    from tierharness.supply.release import publish_and_verify  # noqa: PLC0415  lazy: CLI start-up

    settings = load_settings()
    if args.if_verifying and not settings.verify_before_run:
        return 0
    release = publish_and_verify(settings, _log)
    print(release.published.reference)
    print(f"verified: {', '.join(release.verified.checks)}")
    seconds = release.seconds
    print(
        "seconds: "
        + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items())
        + f"; total {sum(seconds.values()):.1f}"
    )
    return 0


def verify(args: argparse.Namespace) -> int:
    from tierharness.supply.release import verify_published  # noqa: PLC0415  lazy: CLI start-up

    verified = verify_published(load_settings(), _log)
    print(verified.reference)
    print(f"verified: {', '.join(verified.checks)}")
    return 0


def registry(args: argparse.Namespace) -> int:
    """The loopback registry kept running for work by hand: what to export to reach it, then
    wait for Ctrl-C (or SIGTERM)."""
    from tierharness.supply.stack_image import command_registry  # noqa: PLC0415  lazy: CLI start-up

    settings = load_settings()
    published = settings.build_dir / "publish.json"
    with command_registry(settings, "registry", _log) as running, running.docker_config() as config:
        print(f"registry  {running.host}  (storage {running.storage}; Ctrl-C stops it)")
        print(f"export DOCKER_CONFIG={config}   # its credentials, for cosign and docker")
        if published.is_file():
            record = json.loads(published.read_text())
            print(f"export REF={running.reference(record['repository'], record['digest'])}")
        sys.stdout.flush()
        # SIGTERM like Ctrl-C: the blocks above then remove the container and the credentials.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0
