"""`python -m tierharness security` (`nox -s security`): every check, the baseline applied,
the report, the SBOM and the licence result written under `build/security/`."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tierharness import __version__
from tierharness.config import Settings
from tierharness.errors import HarnessError
from tierharness.security import dockerfiles, sast, shell, vulns, workflows
from tierharness.security import secret_scan as secrets
from tierharness.security.baseline import apply_baseline, load_baseline
from tierharness.security.findings import CheckResult, Finding
from tierharness.security.findings_report import SecurityReport, write_report
from tierharness.security.image_scan import layer_cache, scan_image, view_image
from tierharness.security.licences import check_licences
from tierharness.security.sbom_document import components, sbom_document, validate_sbom, write_sbom

__all__ = ["run_security"]


def _timed(name: str, job: Callable[[], CheckResult]) -> CheckResult:
    started = time.monotonic()
    try:
        result = job()
    except HarnessError as exc:
        # A tool that cannot run is a failed check, never a silent pass.
        result = CheckResult(name)
        result.findings.append(
            Finding(
                name, "did-not-run", "high", name, exc.what.splitlines()[0][:300], exc.fix or "see the error"
            )
        )
    result.seconds = time.monotonic() - started
    return result


def run_security(
    settings: Settings,
    *,
    image: Path | None = None,
    strict_vulns: bool = False,
    today: dt.date | None = None,
    log: Callable[[str], None] = print,
) -> SecurityReport:
    root, config = settings.root, settings.security
    out = settings.build_dir / "security"
    dockerfile_list = dockerfiles.find_dockerfiles(root, config.dockerfiles)
    lockfiles = [settings.lock.dir / f"{name}.txt" for name in settings.lock.files]
    jobs: list[tuple[str, Callable[[], CheckResult]]] = [
        ("bandit", lambda: sast.bandit(root, config.source)),
        ("detect-secrets", lambda: secrets.detect_secrets(root, config.secrets_exclude)),
        ("hadolint", lambda: dockerfiles.hadolint(root, dockerfile_list)),
        ("dockerfile-policy", lambda: dockerfiles.dockerfile_policy(root, dockerfile_list)),
        ("shellcheck", lambda: shell.shellcheck(root)),
        ("zizmor", lambda: workflows.zizmor(root, config.workflows)),
        ("workflow-schema", lambda: workflows.workflow_schema(root, config.workflows)),
        ("lockfile-hashes", lambda: vulns.lockfile_hashes(root, lockfiles)),
        ("pip-audit", lambda: vulns.pip_audit(root, lockfiles, strict=strict_vulns)),
    ]
    # The tools are subprocesses: two at a time keeps both cores busy while the image is read.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="security") as pool:
        futures = [pool.submit(_timed, name, job) for name, job in jobs]
        image_results, extras, digest = _image_checks(
            settings, image or settings.build_dir / "image.oci.tar", out
        )
        results = [f.result() for f in futures] + image_results
    baseline_path = root / config.baseline
    results.append(apply_baseline(results, load_baseline(baseline_path), baseline_path, today))
    report = SecurityReport(config.fail_on, results, digest, extras)
    write_report(report, out)
    for line in report.summary():
        log(line)
    log(f"report: {out / 'report.md'} and report.json; SBOM: {extras.get('sbom', 'not written')}")
    return report


def _image_checks(
    settings: Settings, tarball: Path, out: Path
) -> tuple[list[CheckResult], dict[str, object], str | None]:
    started = time.monotonic()
    if not tarball.is_file():
        missing = CheckResult("image")
        missing.findings.append(
            Finding(
                "image",
                "not-built",
                "high",
                str(tarball),
                "no image to scan",
                "build it first: `nox -s build` (the security session does)",
            )
        )
        return [missing], {}, None
    try:
        view = view_image(tarball, layer_cache())
    except HarnessError as exc:
        broken = CheckResult("image")
        broken.findings.append(
            Finding("image", "unreadable", "high", str(tarball), exc.what[:300], exc.fix or "")
        )
        return [broken], {}, None
    image_result = scan_image(view, settings.build.setuid_allowlist)
    image_result.seconds = time.monotonic() - started

    started = time.monotonic()
    document = sbom_document(view, settings.build.image, __version__)
    sbom_path = write_sbom(document, out / "sbom.cdx.json")
    sbom_result = CheckResult("sbom")
    problem = validate_sbom(document)
    if problem:
        sbom_result.findings.append(
            Finding(
                "sbom",
                "schema",
                "high",
                str(sbom_path),
                f"not valid CycloneDX 1.6: {problem}",
                "fix tierharness/security/sbom_document.py",
            )
        )
    comps = components(view, settings.build.image)
    counts = {kind: sum(1 for c in comps if c.kind == kind) for kind in ("python", "application", "debian")}
    sbom_result.note = (
        f"{counts['python']} Python, {counts['debian']} Debian, {counts['application']} first-party"
    )
    sbom_result.seconds = time.monotonic() - started
    licence_result = check_licences(comps, settings.security.licences)
    extras: dict[str, object] = {"sbom": str(sbom_path), "components": counts}
    return [image_result, sbom_result, licence_result], extras, view.image.digest
