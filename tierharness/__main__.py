"""`python -m tierharness`: the commands behind the nox sessions.

Thin on purpose: argument parsing here, the work in the modules it calls.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tierharness.config import PERF_OPTIONS, load_settings, withhold_secrets
from tierharness.errors import HarnessError
from tierharness.process import run

if TYPE_CHECKING:
    from tierharness.repro.diff import ImageDiff

__all__ = ["main"]


def _cmd_images(args: argparse.Namespace) -> int:
    from tierharness.build.images import resolve_images

    settings = load_settings()
    log = (lambda m: print(f"harness: {m}", file=sys.stderr)) if not args.quiet else (lambda m: None)
    for image in resolve_images(
        settings, args.names or None, pull=not args.offline, rebuild=args.rebuild, log=log
    ):
        print(image.line())
    return 0


def _cmd_lock(args: argparse.Namespace) -> int:
    from tierharness.build import project_locks

    settings = load_settings()
    if args.images:
        return project_locks.lock_images(settings, args.names, log=_log)
    names = args.names or list(settings.lock.files)
    if args.check:
        return project_locks.check_locks(settings, names)
    return project_locks.compile_locks(settings, names, upgrade=args.upgrade)


def _cmd_build(args: argparse.Namespace) -> int:
    from tierharness.build.image import build_image

    settings = load_settings()
    built = build_image(
        settings,
        force=args.force,
        no_cache=args.no_cache,
        log=lambda m: print(f"harness: {m}", file=sys.stderr),
    )
    how = "reused" if built.reused else f"built in {built.build_seconds:.1f}s"
    print(f"image  {built.image}")
    print(f"digest {built.digest}")
    record = settings.image_record
    print(f"{how}; steps cached {built.cached_steps}/{built.total_steps}; record {record}")
    return 0


def _print_diff(diff: ImageDiff, reports: tuple[Path, Path] | None) -> int:
    print(f"first  {diff.a_digest}")
    print(f"second {diff.b_digest}")
    if diff.reproducible:
        print("reproducible")
        return 0
    print("NOT reproducible")
    for line in diff.summary():
        print(f"  {line}")
    if reports:
        print(f"report: {reports[0]} and {reports[1]}")
    return 1


def _cmd_repro_check(args: argparse.Namespace) -> int:
    from tierharness.repro.check import repro_check

    settings = load_settings()
    folder = settings.build_dir / "repro"
    if args.independent:
        from tierharness.supply.rebuild import independent_rebuild

        result = independent_rebuild(settings, keep=args.keep, log=_log)
        print(f"engine 1  {result.engine1}")
        print(f"engine 2  {result.engine2}")
        print(f"recorded  {result.recorded}  ({settings.image_record.name})")
        print(f"base      {result.base1} (engine 1), {result.base2} (engine 2)")
        print(f"independent rebuild in {result.seconds:.0f}s")
        if result.reproducible:
            print("reproducible")
            return 0
        print("NOT reproducible")
        for line in result.diff.summary():
            print(f"  {line}")
        if result.engine1 == result.engine2:
            print(f"  both engines agree; {settings.image_record} is stale: `nox -s build`")
        print(f"report: {folder / 'report.json'} and {folder / 'report.md'}")
        return 1
    diff = repro_check(settings, keep=args.keep, log=_log)
    return _print_diff(diff, (folder / "report.json", folder / "report.md"))


def _cmd_dist(args: argparse.Namespace) -> int:
    from tierharness.build.dist import make_dist

    settings = load_settings()
    dist = make_dist(settings, check=args.check, log=_log)
    root = settings.root
    for artifact in (dist.wheel, dist.sdist):
        path = artifact.path.relative_to(root) if artifact.path.is_relative_to(root) else artifact.path
        print(f"{artifact.sha256}  {path}")  # as sha256sum prints it
    print(f"revision {dist.revision}, SOURCE_DATE_EPOCH {dist.source_date_epoch}; record {dist.record}")
    if dist.check is None:
        return 0
    for artifact in dist.check.second:
        print(f"{artifact.sha256}  second build: {artifact.path.name}")
    if dist.check.reproducible:
        print("reproducible: the second build (umask 077, another time zone, folder and mtimes) agrees")
        return 0
    print("NOT reproducible")
    for line in dist.check.differences:
        print(f"  {line}")
    print(f"the second build's artifacts: {dist.record.parent / 'second'}")
    return 1


def _cmd_diff(args: argparse.Namespace) -> int:
    import tempfile

    from tierharness.build.oci import read_oci
    from tierharness.engine import docker_cli
    from tierharness.repro.diff import diff_images, write_reports

    with tempfile.TemporaryDirectory(prefix="harness-diff-") as tmp:
        images = []
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
            images.append(read_oci(path))
        diff = diff_images(images[0], images[1])
        reports = write_reports(diff, Path(args.report_dir)) if args.report_dir else None
        return _print_diff(diff, reports)


def _cmd_clean(args: argparse.Namespace) -> int:
    from tierharness.build.retention import prune_build_cache, prune_loopback_pulls, prune_old_builds
    from tierharness.config import environment, load_settings
    from tierharness.engine import engine_client
    from tierharness.runtime.reaper import sweep_dead_runs
    from tierharness.runtime.reuse import kept_containers, remove_kept

    client = engine_client()
    kept = remove_kept(client, all_users=args.all_users)
    dead = sweep_dead_runs(client)
    whose = "every user's" if args.all_users else "this user's"
    print(
        f"removed {kept} kept (--harness-reuse) container(s), {whose}; "
        f"cleaned {len(dead)} run(s) whose owner is gone"
    )
    if not args.all_users and (others := len(kept_containers(client, all_users=True))):
        print(f"left {others} kept container(s) of other users (--all-users removes them too)")
    if not args.prune:
        return 0
    settings = load_settings(required=False)
    keep, idle = settings.build.keep_images, environment().build_cache_idle
    pulls = prune_loopback_pulls(client=client)
    cache = prune_build_cache(idle, client=client)
    builds = prune_old_builds(settings.build.image, keep, client=client)
    print(
        f"removed {len(pulls)} reference(s) pulled from runs' own registries; "
        f"{len(builds)} old build(s) of {settings.build.image} (keep-images = {keep}); "
        f"{cache.records} build cache record(s) ({cache.size / 2**20:.0f} MiB) "
        f"unused for {idle:.0f} s (HARNESS_BUILD_CACHE_IDLE): of each, only what this user's runs made"
    )
    return 0


def _cmd_cache_dir(args: argparse.Namespace) -> int:
    """The machine's cache folder (or a folder in it), which every checkout shares."""
    from tierharness.config import machine_cache

    print(machine_cache(args.name or ""))
    return 0


def _cmd_shard(args: argparse.Namespace) -> int:
    """What a shard's pytest run needs, as JSON (the tests session reads it)."""
    import json

    from tierharness.scale.shards import Shard

    shard = Shard.parse(args.spec)
    print(
        json.dumps(
            {"name": shard.name, "last": shard.index == shard.count, "pytest_args": shard.pytest_args()}
        )
    )
    return 0


def _cmd_merge_reports(args: argparse.Namespace) -> int:
    from tierharness.scale.reports import merge_coverage, merge_junit

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


def _cmd_perf(args: argparse.Namespace) -> int:
    from tierharness.perf.run import run_perf

    settings = load_settings()
    cfg = settings.perf.override(**{o.attr: getattr(args, o.attr) for o in PERF_OPTIONS})
    return run_perf(
        settings, cfg, target_url=args.target_url, log=lambda m: print(f"harness: {m}", file=sys.stderr)
    )


def _cmd_deploy(args: argparse.Namespace) -> int:
    from tierharness.deploy.rehearse import run_rehearsal

    wanted = [c for item in args.candidate or ["current"] for c in item.split(",") if c]
    return run_rehearsal(
        load_settings(),
        wanted,
        expect_rollback=args.expect_rollback,
        log=lambda m: print(f"harness: {m}", file=sys.stderr),
    )


def _cmd_rotate(args: argparse.Namespace) -> int:
    from tierharness.deploy.rotate import run_rotation

    return run_rotation(load_settings(), log=lambda m: print(f"harness: {m}", file=sys.stderr))


def _cmd_doctor(args: argparse.Namespace) -> int:
    from tierharness.doctor import diagnose, exit_code, project_root, render

    # Not load_settings(): a project configured in [tool.pytest.ini_options] alone has no
    # [tool.harness] table, and the plugin runs it on the defaults; doctor checks it the same way.
    checks = diagnose(load_settings(project_root(), required=False))
    print(render(checks))
    return exit_code(checks)


def _cmd_security(args: argparse.Namespace) -> int:
    from tierharness.security.run import run_security

    settings = load_settings()
    report = run_security(
        settings,
        image=Path(args.image) if args.image else None,
        strict_vulns=args.strict_vulns,
        log=lambda m: print(f"security: {m}"),
    )
    return 1 if report.verdict == "FAIL" else 0


def _cmd_gates(args: argparse.Namespace) -> int:
    from tierharness.security.gates import write_gates

    settings = load_settings()
    text, code = write_gates(settings)
    print(text, end="")
    print(f"written to {settings.build_dir / 'gates.md'}")
    return code


def _log(message: str) -> None:
    print(f"harness: {message}", file=sys.stderr)


def _cmd_keys(args: argparse.Namespace) -> int:
    from tierharness.supply.signing import ensure_keys

    pair = ensure_keys(load_settings(), force=args.force, if_missing=args.if_missing)
    print(f"private {pair.private} (0600)")
    print(f"public  {pair.public}")
    return 0


def _cmd_publish(args: argparse.Namespace) -> int:
    from tierharness.supply.release import publish_and_verify

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


def _cmd_verify(args: argparse.Namespace) -> int:
    from tierharness.supply.release import verify_published

    verified = verify_published(load_settings(), _log)
    print(verified.reference)
    print(f"verified: {', '.join(verified.checks)}")
    return 0


def _cmd_registry(args: argparse.Namespace) -> int:
    import contextlib
    import json
    import signal

    from tierharness.supply.run import command_registry

    settings = load_settings()
    published = settings.build_dir / "publish.json"
    with command_registry(settings, "registry", _log) as registry, registry.docker_config() as config:
        print(f"registry  {registry.host}  (storage {registry.storage}; Ctrl-C stops it)")
        print(f"export DOCKER_CONFIG={config}   # its credentials, for cosign and docker")
        if published.is_file():
            record = json.loads(published.read_text())
            print(f"export REF={registry.reference(record['repository'], record['digest'])}")
        sys.stdout.flush()
        # SIGTERM like Ctrl-C: the blocks above then remove the container and the credentials.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tierharness", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    images = sub.add_parser(
        "images",
        help="make the logical images available (a trusted local copy, a pull of a digest-pinned or "
        "allow-floating ref, else the offline recipe)",
    )
    images.add_argument("names", nargs="*", help="logical image names (default: all)")
    images.add_argument("--rebuild", action="store_true", help="rebuild from the offline recipes")
    images.add_argument("--offline", action="store_true", help="never pull, not even a pinned ref")
    images.add_argument("--quiet", action="store_true")
    images.set_defaults(func=_cmd_images)

    lock = sub.add_parser("lock", help="compile requirements/*.in into hash-pinned lockfiles")
    lock.add_argument("names", nargs="*", help="lockfile names (default: all, in configured order)")
    lock.add_argument("--check", action="store_true", help="fail, naming the file, when a lockfile is stale")
    lock.add_argument("--upgrade", action="store_true", help="let pip-tools pick newer versions")
    lock.add_argument(
        "--images",
        action="store_true",
        help="write images' packages.lock (Debian packages, versions, .deb hashes) instead",
    )
    lock.set_defaults(func=_cmd_lock)
    build = sub.add_parser("build", help="build the production image, the unit tier run inside it")
    build.add_argument(
        "--force", action="store_true", help="build even if nothing changed since the last build"
    )
    build.add_argument("--no-cache", action="store_true", help="ignore BuildKit's cache")
    build.set_defaults(func=_cmd_build)

    repro = sub.add_parser(
        "repro-check", help="build the image twice from clean, varied, and compare digests"
    )
    repro.add_argument(
        "--keep", action="store_true", help="keep both OCI tarballs even when they are identical"
    )
    repro.add_argument(
        "--independent",
        action="store_true",
        help="build the second time on a second Docker engine (own data root, socket, bridge, base)",
    )
    repro.set_defaults(func=_cmd_repro_check)

    dist = sub.add_parser(
        "dist", help="build the wheel and the sdist reproducibly into build/dist/ (sha256 in dist.json)"
    )
    dist.add_argument(
        "--check",
        action="store_true",
        help="build a second time (another umask, time zone, folder, mtimes) and fail when the hashes differ",
    )
    dist.set_defaults(func=_cmd_dist)

    diff = sub.add_parser("diff", help="explain the differences between two OCI tarballs or local images")
    diff.add_argument("first")
    diff.add_argument("second")
    diff.add_argument("--report-dir", help="also write report.json and report.md here")
    diff.set_defaults(func=_cmd_diff)

    clean = sub.add_parser(
        "clean", help="remove your kept (--harness-reuse) containers and leftovers of runs whose owner died"
    )
    clean.add_argument(
        "--prune",
        action="store_true",
        help="also what your harness runs recorded as made: their build cache unused for "
        "HARNESS_BUILD_CACHE_IDLE, images they pulled from their own registries, their builds beyond "
        "keep-images; only while no build or stack runs on the engine",
    )
    clean.add_argument(
        "--all-users",
        action="store_true",
        help="remove every user's kept containers, not only yours",
    )
    clean.set_defaults(func=_cmd_clean)

    cache_dir = sub.add_parser("cache-dir", help="the machine's cache folder, shared by every checkout")
    cache_dir.add_argument("name", nargs="?", help="a folder in it (e.g. mypy)")
    cache_dir.set_defaults(func=_cmd_cache_dir)

    shard = sub.add_parser("shard", help="the pytest arguments of shard K/N (JSON)")
    shard.add_argument("spec", help="K/N: the K-th of N balanced slices")
    shard.set_defaults(func=_cmd_shard)

    merge = sub.add_parser(
        "merge-reports", help="merge the shards' JUnit and coverage; the coverage gate on the merged data"
    )
    merge.set_defaults(func=_cmd_merge_reports)

    perf = sub.add_parser("perf", help="the Locust tier against the running stack, gated by thresholds")
    for option in PERF_OPTIONS:
        perf.add_argument(
            f"--{option.name}",
            type=option.kind,
            help=f"{option.help} (default: [tool.harness.perf] {option.name}, else {option.default})",
        )
    perf.add_argument("--target-url", help="load an already running service instead of starting the stack")
    perf.set_defaults(func=_cmd_perf)

    keys = sub.add_parser(
        "keys",
        help="make the signing key pair outside the repository (password: HARNESS_KEY_PASSWORD[_FILE])",
    )
    keys.add_argument("--force", action="store_true", help="replace an existing pair")
    keys.add_argument("--if-missing", action="store_true", help="keep (and check) an existing pair")
    keys.set_defaults(func=_cmd_keys)

    publish = sub.add_parser(
        "publish", help="push the built image to the loopback registry by digest, sign and attest it"
    )
    publish.add_argument(
        "--if-verifying",
        action="store_true",
        help="only when verify-before-run is on (HARNESS_VERIFY / [tool.harness.supply] verify)",
    )
    publish.set_defaults(func=_cmd_publish)

    verify = sub.add_parser(
        "verify", help="verify the published image: digest, blobs, signature, attestations, revision"
    )
    verify.set_defaults(func=_cmd_verify)

    registry = sub.add_parser(
        "registry", help="keep the loopback registry running for cosign or docker by hand, until Ctrl-C"
    )
    registry.set_defaults(func=_cmd_registry)

    deploy = sub.add_parser(
        "deploy", help="blue-green rehearsal behind HAProxy, under load, with automatic rollback"
    )
    deploy.add_argument(
        "--candidate",
        action="append",
        help="what to deploy as green, in order (repeat or comma-separate): `current` (the built "
        "image, default), `broken` (every broken recipe), one recipe's name, or an image reference",
    )
    deploy.add_argument(
        "--expect-rollback",
        action="store_true",
        help="pass when every broken candidate rolled back (a rehearsal of the rollback itself)",
    )
    deploy.set_defaults(func=_cmd_deploy)

    rotate = sub.add_parser(
        "rotate-secrets", help="rotate API keys and the database password under load, 0 failed requests"
    )
    rotate.set_defaults(func=_cmd_rotate)

    doctor = sub.add_parser(
        "doctor", help="check that this machine can run the harness, naming the fix for each problem"
    )
    doctor.set_defaults(func=_cmd_doctor)

    security = sub.add_parser(
        "security", help="the security gates: source, lockfiles, Dockerfiles, shell, workflows, the image"
    )
    security.add_argument("--image", help="OCI tarball to scan (default: the build's build/image.oci.tar)")
    security.add_argument(
        "--strict-vulns",
        action="store_true",
        help="fail when the vulnerability advisory service cannot be reached (CI, which can reach it)",
    )
    security.set_defaults(func=_cmd_security)

    gates = sub.add_parser(
        "gates", help="every quality gate on one page (build/gates.md), from the reports the sessions wrote"
    )
    gates.set_defaults(func=_cmd_gates)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    withhold_secrets()  # before any child process: none of them inherits the key password
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except HarnessError as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
