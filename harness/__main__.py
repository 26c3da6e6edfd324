"""`python -m harness`: the commands behind the nox sessions.

Thin on purpose: argument parsing here, the work in the modules it calls.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from harness.config import PERF_OPTIONS, load_settings
from harness.errors import HarnessError
from harness.process import run

if TYPE_CHECKING:
    from harness.repro.diff import ImageDiff

__all__ = ["main"]


def _cmd_images(args: argparse.Namespace) -> int:
    from harness.build.images import resolve_images

    settings = load_settings()
    log = (lambda m: print(f"harness: {m}", file=sys.stderr)) if not args.quiet else (lambda m: None)
    for image in resolve_images(
        settings, args.names or None, pull=not args.offline, rebuild=args.rebuild, log=log
    ):
        print(image.line())
    return 0


def _cmd_lock(args: argparse.Namespace) -> int:
    from harness.build import lockfiles

    settings = load_settings()
    names = args.names or list(settings.lock.files)
    if args.check:
        failures = 0
        for name in names:
            source, target = settings.lock.dir / f"{name}.in", settings.lock.dir / f"{name}.txt"
            problems = lockfiles.find_stale(source, target)
            try:
                lockfiles.require_hashes(target)
            except HarnessError as exc:
                problems.append(str(exc))
            for problem in problems:
                print(f"STALE {target.relative_to(settings.root)}: {problem}", file=sys.stderr)
            failures += bool(problems)
            if not problems:
                print(f"ok    {target.relative_to(settings.root)}")
        if failures:
            print(f"{failures} lockfile(s) stale: run `nox -s lock` and commit the result", file=sys.stderr)
        return 1 if failures else 0
    lockfiles.compile_lockfiles(settings.lock.dir, names, upgrade=args.upgrade)
    for name in names:
        print(f"compiled {settings.lock.dir.relative_to(settings.root)}/{name}.txt")
    return 0


def _cmd_build(args: argparse.Namespace) -> int:
    from harness.build.image import build_image

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
    from harness.repro.check import repro_check

    settings = load_settings()
    diff = repro_check(settings, keep=args.keep, log=lambda m: print(f"harness: {m}", file=sys.stderr))
    folder = settings.build_dir / "repro"
    return _print_diff(diff, (folder / "report.json", folder / "report.md"))


def _cmd_diff(args: argparse.Namespace) -> int:
    import tempfile

    from harness.build.oci import read_oci
    from harness.engine import docker_cli
    from harness.repro.diff import diff_images, write_reports

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
    from harness.engine import engine_client
    from harness.runtime.reaper import sweep_dead_runs
    from harness.runtime.reuse import remove_kept

    client = engine_client()
    kept = remove_kept(client)
    dead = sweep_dead_runs(client)
    print(
        f"removed {kept} kept (--harness-reuse) container(s); cleaned {len(dead)} run(s) whose owner is gone"
    )
    return 0


def _cmd_perf(args: argparse.Namespace) -> int:
    from harness.perf.run import run_perf

    settings = load_settings()
    cfg = settings.perf.override(**{o.attr: getattr(args, o.attr) for o in PERF_OPTIONS})
    return run_perf(
        settings, cfg, target_url=args.target_url, log=lambda m: print(f"harness: {m}", file=sys.stderr)
    )


def _cmd_deploy(args: argparse.Namespace) -> int:
    from harness.deploy.bluegreen import run_rehearsal

    wanted = [c for item in args.candidate or ["current"] for c in item.split(",") if c]
    return run_rehearsal(
        load_settings(),
        wanted,
        expect_rollback=args.expect_rollback,
        log=lambda m: print(f"harness: {m}", file=sys.stderr),
    )


def _cmd_rotate(args: argparse.Namespace) -> int:
    from harness.deploy.rotate import run_rotation

    return run_rotation(load_settings(), log=lambda m: print(f"harness: {m}", file=sys.stderr))


def _cmd_doctor(args: argparse.Namespace) -> int:
    from harness.doctor import diagnose, exit_code, render

    checks = diagnose(load_settings())
    print(render(checks))
    return exit_code(checks)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harness", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    images = sub.add_parser(
        "images", help="make the logical images available (local, pull, or offline build)"
    )
    images.add_argument("names", nargs="*", help="logical image names (default: all)")
    images.add_argument("--rebuild", action="store_true", help="rebuild from the offline recipes")
    images.add_argument("--offline", action="store_true", help="never try the registry")
    images.add_argument("--quiet", action="store_true")
    images.set_defaults(func=_cmd_images)

    lock = sub.add_parser("lock", help="compile requirements/*.in into hash-pinned lockfiles")
    lock.add_argument("names", nargs="*", help="lockfile names (default: all, in configured order)")
    lock.add_argument("--check", action="store_true", help="fail, naming the file, when a lockfile is stale")
    lock.add_argument("--upgrade", action="store_true", help="let pip-tools pick newer versions")
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
    repro.set_defaults(func=_cmd_repro_check)

    diff = sub.add_parser("diff", help="explain the differences between two OCI tarballs or local images")
    diff.add_argument("first")
    diff.add_argument("second")
    diff.add_argument("--report-dir", help="also write report.json and report.md here")
    diff.set_defaults(func=_cmd_diff)

    clean = sub.add_parser(
        "clean", help="remove kept (--harness-reuse) containers and leftovers of runs whose owner died"
    )
    clean.set_defaults(func=_cmd_clean)

    perf = sub.add_parser("perf", help="the Locust tier against the running stack, gated by thresholds")
    for option in PERF_OPTIONS:
        perf.add_argument(
            f"--{option.name}",
            type=option.kind,
            help=f"{option.help} (default: [tool.harness.perf] {option.name}, else {option.default})",
        )
    perf.add_argument("--target-url", help="load an already running service instead of starting the stack")
    perf.set_defaults(func=_cmd_perf)

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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
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
