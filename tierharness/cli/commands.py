"""Every command of `python -m tierharness` in one table: its name, its help, its arguments
and its handler. The parser is built from it (main.py); the handlers are in handlers.py."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tierharness.cli import handlers
from tierharness.config import PERF_OPTIONS

__all__ = ["COMMANDS", "Argument", "Command"]


@dataclass(frozen=True)
class Argument:
    """What `add_argument` gets: the flags (or the positional's name) and the options."""

    flags: tuple[str, ...]
    options: Mapping[str, Any] = field(default_factory=dict)


def _arg(*flags: str, **options: Any) -> Argument:
    return Argument(flags, options)


def _flag(name: str, text: str | None = None) -> Argument:
    """An on/off option, with `text` as its help."""
    return Argument((name,), {"action": "store_true"} | ({"help": text} if text else {}))


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    arguments: tuple[Argument, ...]
    handler: Callable[[argparse.Namespace], int]
    passthrough: str | None = None  # what the words after `--` are for; None: the command takes none


_PERF = (
    *(
        _arg(
            f"--{option.name}",
            type=option.kind,
            help=f"{option.help} (default: [tool.harness.perf] {option.name}, else {option.default})",
        )
        for option in PERF_OPTIONS
    ),
    _arg("--target-url", help="load an already running service instead of starting the stack"),
    _flag(
        "--capacity", "step the users up to the knee (the last step within the thresholds) and gate its RPS"
    ),
    _flag(
        "--accept-knee", "with --capacity: record this run's knee as the baseline (knee-baseline), to commit"
    ),
)

COMMANDS: tuple[Command, ...] = (
    Command(
        "images",
        "make the logical images available (a trusted local copy, a pull of a digest-pinned or "
        "allow-floating ref, else the offline recipe)",
        (
            _arg("names", nargs="*", help="logical image names (default: all)"),
            _flag("--rebuild", "rebuild from the offline recipes"),
            _flag("--offline", "never pull, not even a pinned ref"),
            _flag("--quiet"),
        ),
        handlers.images,
    ),
    Command(
        "lock",
        "compile requirements/*.in into hash-pinned lockfiles",
        (
            _arg("names", nargs="*", help="lockfile names (default: all, in configured order)"),
            _flag("--check", "fail, naming the file, when a lockfile is stale"),
            _flag("--upgrade", "let pip-tools pick newer versions"),
            _flag("--images", "write images' packages.lock (Debian packages, versions, .deb hashes) instead"),
        ),
        handlers.lock,
    ),
    Command(
        "build",
        "build the production image, the unit tier run inside it",
        (
            _flag("--force", "build even if nothing changed since the last build"),
            _flag("--no-cache", "ignore BuildKit's cache"),
        ),
        handlers.build,
    ),
    Command(
        "repro-check",
        "build the image twice from clean, varied, and compare digests (and the recorded build's)",
        (
            _flag("--keep", "keep both OCI tarballs even when they are identical"),
            _flag(
                "--independent",
                "build the second time on a second Docker engine (own data root, socket, bridge, base)",
            ),
        ),
        handlers.repro_check,
    ),
    Command(
        "dist",
        "build the wheel and the sdist reproducibly into build/dist/ (sha256 in dist.json)",
        (
            _flag(
                "--check",
                "build a second time (another umask, time zone, folder, mtimes) and fail when the "
                "hashes differ",
            ),
        ),
        handlers.dist,
    ),
    Command(
        "diff",
        "explain the differences between two OCI tarballs or local images",
        (
            _arg("first"),
            _arg("second"),
            _arg("--report-dir", help="also write report.json and report.md here"),
        ),
        handlers.diff,
    ),
    Command(
        "clean",
        "remove your kept containers (--harness-reuse, --harness-keep-failed), migrated images and "
        "leftovers of dead runs",
        (
            _flag(
                "--prune",
                "also what your harness runs recorded as made: their build cache unused for "
                "HARNESS_BUILD_CACHE_IDLE (that of --no-cache builds at once; none until past "
                "HARNESS_BUILD_CACHE_KEEP MiB), images they pulled "
                "from their own registries, their builds "
                "beyond keep-images; only while no build or stack runs on the engine",
            ),
            _flag("--all-users", "remove every user's kept containers and migrated images, not only yours"),
            _flag("--keep-migrated", "leave the migrated images (a CI runner's warm start)"),
            _flag(
                "--build-cache",
                "only the build cache that --prune prunes, nothing else: safe beside running stacks "
                "(not beside builds), as at the end of a pipeline whose last steps build nothing",
            ),
        ),
        handlers.clean,
    ),
    Command(
        "connect",
        "psql (or redis-cli) into the copy of a failed test's database (and Redis) that "
        "--harness-keep-failed kept; its password never shows unless --url asks for it",
        (
            _arg("test", help="the failed test's id, as its report printed it (or a part naming it alone)"),
            _flag("--redis", "redis-cli into the kept Redis instead of psql"),
            _flag("--url", "print the URLs, passwords included, instead of connecting"),
        ),
        handlers.connect,
        passthrough="arguments for psql (or, with --redis, redis-cli)",
    ),
    Command(
        "cache-dir",
        "the machine's cache folder, shared by every checkout",
        (_arg("name", nargs="?", help="a folder in it (e.g. mypy)"),),
        handlers.cache_dir,
    ),
    Command(
        "shard",
        "the pytest arguments of shard K/N (JSON)",
        (_arg("spec", help="K/N: the K-th of N balanced slices"),),
        handlers.shard,
    ),
    Command(
        "merge-reports",
        "merge the shards' JUnit and coverage; the coverage gate on the merged data",
        (),
        handlers.merge_reports,
    ),
    Command("perf", "the Locust tier against the running stack, gated by thresholds", _PERF, handlers.perf),
    Command(
        "keys",
        "make the signing key pair outside the repository (password: HARNESS_KEY_PASSWORD[_FILE])",
        (
            _flag("--force", "replace an existing pair"),
            _flag("--if-missing", "keep (and check) an existing pair"),
        ),
        handlers.keys,
    ),
    Command(
        "publish",
        "push the built image to the loopback registry by digest, sign and attest it",
        (
            _flag(
                "--if-verifying",
                "only when verify-before-run is on (HARNESS_VERIFY / [tool.harness.supply] verify)",
            ),
        ),
        handlers.publish,
    ),
    Command(
        "verify",
        "verify the published image: digest, blobs, signature, attestations, revision",
        (),
        handlers.verify,
    ),
    Command(
        "registry",
        "keep the loopback registry running for cosign or docker by hand, until Ctrl-C",
        (),
        handlers.registry,
    ),
    Command(
        "deploy",
        "blue-green rehearsal behind HAProxy, under load, with automatic rollback",
        (
            _arg(
                "--candidate",
                action="append",
                help="what to deploy as green, in order (repeat or comma-separate): `current` (the "
                "built image, default), `broken` (every broken recipe), one recipe's name, or an "
                "image reference",
            ),
            _flag(
                "--expect-rollback",
                "pass when every broken candidate rolled back (a rehearsal of the rollback itself)",
            ),
        ),
        handlers.deploy,
    ),
    Command(
        "rotate-secrets",
        "rotate API keys and the database password under load, 0 failed requests",
        (),
        handlers.rotate_secrets,
    ),
    Command(
        "doctor",
        "check that this machine can run the harness, naming the fix for each problem",
        (),
        handlers.doctor,
    ),
    Command(
        "security",
        "the security gates: source, lockfiles, Dockerfiles, shell, workflows, the image",
        (
            _arg("--image", help="OCI tarball to scan (default: the build's build/image.oci.tar)"),
            _flag(
                "--strict-vulns",
                "fail when the vulnerability advisory service cannot be reached (CI, which can reach it)",
            ),
        ),
        handlers.security,
    ),
    Command(
        "gates",
        "every quality gate on one page (build/gates.md), from the reports the sessions wrote",
        (),
        handlers.gates,
    ),
)
