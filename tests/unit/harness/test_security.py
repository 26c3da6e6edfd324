"""The security gate's own logic, without its external tools: image scan (on small OCI
tarballs written by the test), Dockerfile policy, lockfile hashes, baseline, licences,
SBOM, report and the gates page. Canaries: each planted problem must be found, by place."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest

from tests.unit.harness.oci_images import write_oci
from tests.unit.harness.repo_files import ROOT, repo_file
from tierharness.config import LicencePolicy, load_settings
from tierharness.deploy.report import Outcome
from tierharness.deploy.report import write_verdict as _verdict
from tierharness.deploy.timeline import Timeline
from tierharness.errors import HarnessError
from tierharness.gates import collect_gates, render_gates
from tierharness.security import image_scan, vulns
from tierharness.security.baseline import apply_baseline, load_baseline
from tierharness.security.dockerfiles import dockerfile_policy
from tierharness.security.findings import CheckResult, Finding
from tierharness.security.findings_report import SecurityReport
from tierharness.security.image_scan import layer_cache, scan_image, view_image
from tierharness.security.licences import check_licences, expression_allowed
from tierharness.security.sbom_document import Component, components, sbom_document
from tierharness.security.scan_all import _timed
from tierharness.security.vulns import lockfile_hashes

# Secret-shaped values are assembled at run time: the tree itself must stay clean for
# the gate's own secret scan.
AWS_KEY = "AKIA" + "Q7RZ4K2M9XWT3B5N"
GH_TOKEN = "ghp" + "_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"  # pragma: allowlist secret (fake)
PRIVATE_KEY = (
    b"-----BEGIN " + b"OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEA\n-----END OPENSSH PRIVATE KEY-----\n"
)
HEALTHY = {"User": "10001:10001", "Healthcheck": {"Test": ["CMD", "true"]}}


def _image_findings(tmp_path: Path, layers: list, **kwargs: object) -> list[Finding]:
    path = write_oci(tmp_path / "image.oci.tar", layers, **kwargs)  # type: ignore[arg-type]
    return scan_image(view_image(path)).findings


def _where(findings: list[Finding], rule: str | None = None) -> list[str]:
    return [f.where for f in findings if rule is None or f.rule == rule]


# --------------------------------------------------------------------------- image canaries


def test_clean_small_image_passes(tmp_path: Path) -> None:
    assert _image_findings(tmp_path, [{"/app/main.py": b"print('hi')\n"}], config=HEALTHY) == []


def test_canary_aws_key_in_env_is_found_naming_the_variable(tmp_path: Path) -> None:
    config = {**HEALTHY, "Env": ["PATH=/usr/bin", f"AWS_ACCESS_KEY_ID={AWS_KEY}"]}
    findings = _image_findings(tmp_path, [{"/a": b"x"}], config=config)
    assert "image config Env AWS_ACCESS_KEY_ID" in _where(findings, "aws-access-key")
    assert AWS_KEY not in json.dumps([f.to_json() for f in findings])  # reported redacted


def test_canary_token_in_an_arg_used_by_run_is_found_in_history(tmp_path: Path) -> None:
    # What BuildKit records for `ARG GH_TOKEN` followed by a RUN: the value, in created_by.
    history = [f"RUN |1 GH_TOKEN={GH_TOKEN} /bin/sh -c make"]
    findings = _image_findings(tmp_path, [{"/a": b"x"}], config=HEALTHY, history=history)
    assert "image config history 0 created_by" in _where(findings, "github-token")


def test_canary_token_in_a_label_is_found(tmp_path: Path) -> None:
    source = "https://builder:" + "s3cr3tt0ken" + "@git.example.invalid/app.git"
    config = {**HEALTHY, "Labels": {"org.opencontainers.image.source": source}}
    findings = _image_findings(tmp_path, [{"/a": b"x"}], config=config)
    assert _where(findings, "url-credentials") == ["image config Labels org.opencontainers.image.source"]


def test_canary_private_key_added_then_deleted_is_found_in_its_layer(tmp_path: Path) -> None:
    layers = [{"/root/.ssh/id_ed25519": PRIVATE_KEY}, {"/root/.ssh/id_ed25519": None}]
    history = ["COPY id_ed25519 /root/.ssh/", "RUN rm /root/.ssh/id_ed25519"]
    findings = _image_findings(tmp_path, layers, config=HEALTHY, history=history)
    (where,) = _where(findings, "private-key")
    assert where.startswith("image layer 0 (COPY id_ed25519 /root/.ssh/): /root/.ssh/id_ed25519")
    assert "deleted in layer 1" in where


def test_deleted_file_is_gone_from_the_final_filesystem(tmp_path: Path) -> None:
    path = write_oci(tmp_path / "i.tar", [{"/x/secret": b"1", "/x/keep": b"2"}, {"/x/secret": None}])
    files = view_image(path).files
    assert "/x/keep" in files
    assert "/x/secret" not in files


@pytest.mark.parametrize(
    ("config", "rule"),
    [
        ({"User": "", "Healthcheck": {"Test": ["CMD", "true"]}}, "root-user"),
        ({"User": "root:root", "Healthcheck": {"Test": ["CMD", "true"]}}, "root-user"),
        ({"User": "0", "Healthcheck": {"Test": ["CMD", "true"]}}, "root-user"),
        ({"User": "10001"}, "no-healthcheck"),
        ({"User": "10001", "Healthcheck": {"Test": ["NONE"]}}, "no-healthcheck"),
    ],
)
def test_config_policy(tmp_path: Path, config: dict[str, object], rule: str) -> None:
    assert rule in [f.rule for f in _image_findings(tmp_path, [{"/a": b"x"}], config=config)]


def test_setuid_compiler_and_pip_are_found_and_the_allowlist_is_honoured(tmp_path: Path) -> None:
    layers = [
        {
            "/usr/bin/passwd": (b"elf", 0o4755),
            "/usr/bin/su": (b"elf", 0o4755),
            "/usr/bin/gcc": (b"elf", 0o755),
            "/usr/share/python-wheels/pip-25.1.1-py3-none-any.whl": b"zip",
            "/opt/venv/lib/python3.13/site-packages/pip/__init__.py": b"",
        }
    ]
    path = write_oci(tmp_path / "i.tar", layers, config=HEALTHY)
    findings = scan_image(view_image(path), setuid_allowlist=["/usr/bin/su"])
    assert _where(findings.findings, "setuid") == ["image /usr/bin/passwd"]
    assert _where(findings.findings, "compiler") == ["image /usr/bin/gcc"]
    assert len(_where(findings.findings, "pip")) == 2


def test_layer_scans_are_cached_by_digest_and_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_oci(tmp_path / "i.tar", [{"/etc/key.pem": PRIVATE_KEY}], config=HEALTHY)
    cache = tmp_path / "cache"
    first = scan_image(view_image(path, cache)).findings
    assert any(f.rule == "private-key" for f in first)
    (cached,) = cache.iterdir()
    assert scan_image(view_image(path, cache)).findings == first

    # A cached scan is what is reported: planted, it shows (so the cache is read) ...
    raw = json.loads(cached.read_text())
    raw["secrets"] = []
    cached.write_text(json.dumps(raw))
    assert not any(f.rule == "private-key" for f in scan_image(view_image(path, cache)).findings)
    # ... but a change of the rules is a new key: the layer is read again.
    monkeypatch.setattr(image_scan, "FILE_RULES", (*image_scan.FILE_RULES, ("new", re.compile(b"x^"))))
    assert scan_image(view_image(path, cache)).findings == first
    assert len(list(cache.iterdir())) == 2
    # A file this version cannot read is read again, and replaced.
    for stale in cache.iterdir():
        stale.write_text("{not json")
    assert scan_image(view_image(path, cache)).findings == first


def test_the_layer_cache_is_the_machines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "machine"))
    assert layer_cache() == tmp_path / "machine" / "layer-scans"


# --------------------------------------------------------------------------- Dockerfiles


def _policy(tmp_path: Path, text: str) -> list[Finding]:
    (tmp_path / "Dockerfile").write_text(text)
    return dockerfile_policy(tmp_path, ["Dockerfile"]).findings


def test_canary_user_root_in_the_final_stage(tmp_path: Path) -> None:
    text = 'FROM base AS build\nUSER 10001\nFROM base\nRUN true\nUSER root\nCMD ["x"]\n'
    assert _where(_policy(tmp_path, text), "final-user-root") == ["Dockerfile:5"]


def test_a_stage_without_user_runs_as_root(tmp_path: Path) -> None:
    text = 'FROM base AS build\nUSER 10001\nFROM base\nCMD ["x"]\n'
    assert _where(_policy(tmp_path, text), "final-user-root") == ["Dockerfile"]


def test_canary_add_from_a_url(tmp_path: Path) -> None:
    text = "FROM base\nADD --chown=1:1 \\\n    http://example.invalid/tool.tgz /opt/\nUSER 10001\n"
    assert _where(_policy(tmp_path, text), "add-url") == ["Dockerfile:2"]


def test_the_production_dockerfile_passes_the_policy() -> None:
    repo_file("Dockerfile.enterprise")
    assert dockerfile_policy(ROOT, ["Dockerfile.enterprise"]).findings == []


# --------------------------------------------------------------------------- lockfiles


def test_canary_lockfile_entry_without_hash(tmp_path: Path) -> None:
    lock = tmp_path / "requirements" / "app.txt"
    lock.parent.mkdir()
    lock.write_text(
        "fastapi==1.0 \\\n    --hash=sha256:" + "a" * 64 + "\nuvicorn==0.1\n    # via -r app.in\n"
    )
    result = lockfile_hashes(tmp_path, [lock])
    assert _where(result.findings) == ["requirements/app.txt:3"]
    assert "uvicorn==0.1" in result.findings[0].what


def test_committed_lockfiles_all_carry_hashes() -> None:
    settings = load_settings(ROOT)
    paths = [settings.lock.dir / f"{n}.txt" for n in settings.lock.files]
    assert lockfile_hashes(ROOT, paths).findings == []


# --------------------------------------------------------------------------- baseline


def _finding(where: str = "a/Dockerfile:3", rule: str = "DL3008") -> Finding:
    return Finding("hadolint", rule, "medium", where, "pin versions", "pin them")


def _baseline(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "security-baseline.toml"
    path.write_text(body)
    return path


ENTRY = (
    '[[accept]]\ncheck = "hadolint"\nrule = "DL3008"\nwhere = "a/Dockerfile:*"\nreason = "because"\n'
    "expires = {}\n"
)


def test_baseline_accepts_a_matching_finding_until_it_expires(tmp_path: Path) -> None:
    path = _baseline(tmp_path, ENTRY.format("2027-01-31"))
    results = [CheckResult("hadolint", [_finding()])]
    own = apply_baseline(results, load_baseline(path), path, today=dt.date(2026, 12, 1))
    assert own.findings == []
    assert results[0].gating("medium") == []
    assert results[0].findings[0].accepted == "because (until 2027-01-31)"


def test_expired_baseline_entry_fails_and_accepts_nothing(tmp_path: Path) -> None:
    path = _baseline(tmp_path, ENTRY.format("2026-01-31"))
    results = [CheckResult("hadolint", [_finding()])]
    own = apply_baseline(results, load_baseline(path), path, today=dt.date(2026, 12, 1))
    assert [f.rule for f in own.findings] == ["expired"]
    assert len(results[0].gating("medium")) == 1


def test_baseline_entry_matching_nothing_fails(tmp_path: Path) -> None:
    path = _baseline(tmp_path, ENTRY.format("2027-01-31"))
    own = apply_baseline([CheckResult("hadolint", [])], load_baseline(path), path, today=dt.date(2026, 12, 1))
    assert [f.rule for f in own.findings] == ["unused"]
    assert own.status("medium") == "failed"


@pytest.mark.parametrize(
    "body",
    [
        '[[accept]]\ncheck = "x"\nrule = "y"\nwhere = "z"\nreason = "r"\n',  # no expiry
        '[[accept]]\ncheck = "x"\nrule = "y"\nwhere = "z"\nreason = "r"\nexpires = "soon"\n',
        '[[accept]]\ncheck = "x"\nrule = "y"\nwhere = "z"\nreason = " "\nexpires = 2027-01-01\n',
        '[[accept]]\ncheck = "x"\nrule = "y"\nwhere = "z"\nreason = "r"\nexpires = 2027-01-01\nnote = 1\n',
        "[others]\n",
    ],
)
def test_malformed_baseline_is_refused(tmp_path: Path, body: str) -> None:
    with pytest.raises(HarnessError):
        load_baseline(_baseline(tmp_path, body))


def test_committed_baseline_is_short_and_unexpired() -> None:
    entries = load_baseline(repo_file("security-baseline.toml"))
    assert len(entries) <= 4  # each accepted finding is named; a fifth is a sign to fix, not to accept
    assert all(e.expires > dt.date(2026, 11, 1) and e.reason for e in entries)


def test_committed_baseline_names_each_file_it_accepts() -> None:
    """A pattern over files would accept a finding in any file added later, with nobody's reason."""
    for entry in load_baseline(repo_file("security-baseline.toml")):
        path = entry.where.removesuffix(":*")
        assert not set("*?[") & set(path), entry


def test_a_baseline_pattern_over_files_is_refused(tmp_path: Path) -> None:
    body = ENTRY.format("2027-01-31").replace("a/Dockerfile:*", "tierharness/recipes/*/Dockerfile:*")
    with pytest.raises(HarnessError) as err:
        load_baseline(_baseline(tmp_path, body))
    assert "where = 'tierharness/recipes/*/Dockerfile:*', a pattern over files" in str(err.value)
    assert "its exact path" in str(err.value)


# --------------------------------------------------------------------------- licences, SBOM


def test_licence_expressions() -> None:
    allowed = {"MIT", "Apache-2.0", "BSD-2-Clause"}
    assert expression_allowed("Apache-2.0 AND BSD-2-Clause", allowed)
    assert expression_allowed("GPL-3.0-only OR MIT", allowed)
    assert not expression_allowed("MIT AND GPL-3.0-only", allowed)


def test_licence_policy_fails_naming_the_package_and_honours_exceptions() -> None:
    comps = [
        Component("python", "ok", "1", "pkg:pypi/ok@1", licences=["MIT"]),
        Component("python", "gpl-thing", "2", "pkg:pypi/gpl-thing@2", licences=["GPL-3.0-only"]),
        Component("python", "excused", "3", "pkg:pypi/excused@3", expression="LGPL-3.0-only"),
        Component("python", "silent", "4", "pkg:pypi/silent@4"),
        Component("debian", "bash", "5", "pkg:deb/debian/bash@5", licences=["GPL-3+"]),
    ]
    policy = LicencePolicy(allow=("MIT",), exceptions={"excused": "reason", "gone": "reason"})
    result = check_licences(comps, policy)
    assert sorted((f.rule, f.where) for f in result.findings) == [
        ("not-allowed", "sbom pkg:pypi/gpl-thing@2"),
        ("stale-exception", "[tool.harness.security.licences.exceptions] gone"),
        ("unknown", "sbom pkg:pypi/silent@4"),
    ]


def _sbom_image(tmp_path: Path) -> Path:
    status = (
        "Package: bash\nStatus: install ok installed\nArchitecture: amd64\nVersion: 5.2\n\n"
        "Package: gone\nStatus: deinstall ok config-files\nVersion: 1\n\n"
    )
    meta = "Metadata-Version: 2.4\nName: fastapi\nVersion: 1.0\nLicense-Expression: MIT\n\n"
    layers = [
        {
            "/var/lib/dpkg/status": status.encode(),
            "/var/lib/dpkg/info/bash.md5sums": b"abc  bin/bash\n",
            "/usr/share/doc/bash/copyright": b"Format: x\n\nFiles: *\nLicense: GPL-3+\n",
            "/opt/venv/lib/python3.13/site-packages/fastapi-1.0.dist-info/METADATA": meta.encode(),
            "/opt/venv/lib/python3.13/site-packages/fastapi-1.0.dist-info/RECORD": b"fastapi/__init__.py,,\n",
            "/app/main.py": b"",
        }
    ]
    config = {**HEALTHY, "WorkingDir": "/app", "Labels": {"org.opencontainers.image.revision": "abc123"}}
    return write_oci(tmp_path / "i.tar", layers, config=config)


def test_sbom_lists_python_debian_and_first_party_with_licences_and_hashes(tmp_path: Path) -> None:
    view = view_image(_sbom_image(tmp_path))
    doc = sbom_document(view, "team/app", "0.1.0")
    by_purl = {c["purl"]: c for c in doc["components"]}
    assert set(by_purl) == {
        "pkg:pypi/fastapi@1.0",
        "pkg:deb/debian/bash@5.2?arch=amd64",
        "pkg:generic/team-app@abc123",
    }
    assert by_purl["pkg:pypi/fastapi@1.0"]["licenses"] == [{"expression": "MIT"}]
    assert by_purl["pkg:deb/debian/bash@5.2?arch=amd64"]["licenses"] == [{"license": {"name": "GPL-3+"}}]
    assert all(len(c["hashes"][0]["content"]) == 64 for c in doc["components"] if c["type"] == "library")
    assert doc["bomFormat"] == "CycloneDX"
    assert sbom_document(view, "team/app", "0.1.0") == doc  # deterministic
    assert [c.kind for c in components(view, "team/app")] == ["python", "application", "debian"]


# --------------------------------------------------------------------------- report, gates


def test_report_is_fail_on_gating_finding_and_never_passed_when_unchecked() -> None:
    audit = CheckResult("pip-audit", unchecked="the advisory service was not reached")
    report = SecurityReport("medium", [CheckResult("bandit"), audit])
    assert report.verdict == "UNCHECKED"
    assert "UNCHECKED" in report.summary()[-1]
    assert "passed" not in report.to_json()["checks"][1]["status"]
    report.results.append(CheckResult("hadolint", [_finding()]))
    assert report.verdict == "FAIL"
    assert "| hadolint | medium | a/Dockerfile:3 |" in report.to_markdown()


def test_gates_page_reads_reports_and_says_not_run_and_unchecked(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.harness]\n[tool.coverage.report]\nfail_under = 80\n")
    settings = load_settings(tmp_path)
    (tmp_path / "build" / "security").mkdir(parents=True)
    audit = CheckResult("pip-audit", unchecked="not reached", note="0 of 3 pins audited")
    report = SecurityReport("medium", [audit, CheckResult("licences")], extras={"components": {"python": 21}})
    (tmp_path / "build" / "security" / "report.json").write_text(json.dumps(report.to_json()))
    (tmp_path / "build" / "junit").mkdir()
    (tmp_path / "build" / "junit" / "e2e.xml").write_text(
        '<testsuites><testsuite tests="3" failures="1" errors="0" skipped="0"/></testsuites>'
    )
    (tmp_path / "build" / "repro").mkdir()
    (tmp_path / "build" / "repro" / "report.json").write_text('{"reproducible": true}')
    (tmp_path / "build" / "perf").mkdir()
    run = {"passed": False, "stats": {"total": {"p95_ms": 250, "rps": 80, "fail_ratio": 0, "requests": 900}}}
    # A capacity run after it is judged by its knee, not the fixed load's thresholds: not shown here.
    capacity = {"passed": True, "knee": {"users": 20, "rps": 150.0, "p95_ms": 40}, "stats": {"total": {}}}
    lines = [json.dumps(run), json.dumps(capacity)]
    (tmp_path / "build" / "perf" / "history.jsonl").write_text("\n".join(lines) + "\n")
    gates = {g.name: g.status for g in collect_gates(settings)}
    assert gates["reproducible image"] == "PASS"
    assert gates["performance"] == "FAIL"
    assert gates["vulnerabilities"] == "UNCHECKED"
    assert gates["security findings"] == "PASS"
    assert gates["coverage"] == "NOT RUN"
    assert gates["e2e (image over HTTP, fuzzing)"] == "FAIL"
    assert gates["deploy rehearsal"] == "NOT RUN"
    assert "Verdict: FAIL" in render_gates(collect_gates(settings))


def test_gates_page_shows_the_deploy_rehearsal_with_its_rollback_from_the_first_bad_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:

    (tmp_path / "pyproject.toml").write_text("[tool.harness]\n")
    (tmp_path / "deploy" / "k8s").mkdir(parents=True)
    (tmp_path / "deploy" / "k8s" / "prometheusrule.yaml").write_text(
        "        - alert: A\n          for: 5m\n"
    )
    monkeypatch.chdir(tmp_path)  # the project whose settings the verdict reads
    settings = load_settings(tmp_path)
    history = tmp_path / "h.csv"
    history.write_text(
        "Timestamp,Name,100%,Total Request Count,Total Failure Count\n"
        + "".join(f"{t},Aggregated,40,{t - 999},{int(t >= 1004)}\n" for t in range(1000, 1012))
    )
    outcome = Outcome("errors", "img", deployed=False, reason="alert HighErrorRate", rollback_seconds=1.5)
    outcome.switch_at, outcome.rolled_back_at = 1000.5, 1008.0
    results = {"stats": {"total": {"requests": 12, "failures": 1, "p95_ms": 40, "rps": 1.0}}}
    folder = settings.build_dir / "deploy"
    _verdict(Timeline(), [(outcome, True)], results, history, folder, expect_rollback=True, limit=10.0)
    capsys.readouterr()
    gate = {g.name: g for g in collect_gates(settings)}["deploy rehearsal"]
    assert gate.status == "PASS", gate
    assert "errors: rolled back 5 s after the first bad request" in gate.value, gate.value
    assert "(about 363 s with the shipped rules, computed)" in gate.value  # 5 - 1 - 1 + 300 + 60
    assert "from the first bad request" in gate.threshold


def test_gates_page_names_each_root_only_test_group_not_run_with_its_fix(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.harness]\n")
    settings = load_settings(tmp_path)
    (tmp_path / "build" / "junit").mkdir(parents=True)
    engine = "needs root: a second Docker engine; fix: run as root"
    (tmp_path / "build" / "junit" / "tests.xml").write_text(
        '<testsuites><testsuite tests="4" failures="0" errors="0" skipped="3">'
        f'<testcase name="a"><skipped message="tests/x.py:9: {engine}"/></testcase>'
        f'<testcase name="b"><skipped message="{engine}"/></testcase>'
        '<testcase name="c"><skipped message="needs root: chown; fix: sudo"/></testcase>'
        '<testcase name="d"/></testsuite></testsuites>'
    )
    gates = {g.name: g for g in collect_gates(settings)}
    assert gates["unit + integration tests"].status == "PASS"
    second = gates["needs root: a second Docker engine"]
    assert (second.status, second.value) == ("NOT RUN", "2 test(s) skipped; fix: run as root")
    assert gates["needs root: chown"].status == "NOT RUN"
    page = render_gates(collect_gates(settings))
    assert "NOT RUN: " in page
    assert "needs root: a second Docker engine" in page.rsplit("NOT RUN: ", 1)[1]

    # Run as root beside it (.ci/run's root lane): the skips are covered, the root run is a gate.
    (tmp_path / "build" / "junit" / "root-tests.xml").write_text(
        '<testsuites><testsuite tests="3" failures="0" errors="0" skipped="0"/></testsuites>'
    )
    gates = {g.name: g for g in collect_gates(settings)}
    assert gates["root-only tests (as root)"].status == "PASS"
    assert not [name for name in gates if name.startswith("needs root:")]


# --------------------------------------------------------------------------- vulnerabilities

SKIPPED = {"name": "fastapi", "skip_reason": "Dependency not found on PyPI and could not be audited"}


@pytest.mark.parametrize("strict", [False, True])
def test_pip_audit_that_reached_nothing_is_unchecked_never_passed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, strict: bool
) -> None:

    # What pip-audit prints (exit 0, "No known vulnerabilities found") when the service is away.
    monkeypatch.setattr(vulns, "run_tool", lambda *a, **k: {"dependencies": [SKIPPED], "fixes": []})
    result = vulns.pip_audit(tmp_path, [tmp_path / "app.txt"], strict=strict)
    assert result.status("medium") == ("failed" if strict else "unchecked")
    assert "not reached" in (result.unchecked or "")


def test_pip_audit_vulnerability_fails_the_gate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:

    vuln = {"id": "PYSEC-0000-1", "fix_versions": ["2.0"], "description": "bad"}
    dep = {"name": "demo", "version": "1.0", "vulns": [vuln]}
    monkeypatch.setattr(vulns, "run_tool", lambda *a, **k: {"dependencies": [dep], "fixes": []})
    result = vulns.pip_audit(tmp_path, [tmp_path / "app.txt"], strict=False)
    assert result.status("medium") == "failed"
    assert [(f.rule, f.where, f.severity) for f in result.findings] == [("PYSEC-0000-1", "demo==1.0", "high")]
    assert "2.0" in result.findings[0].fix


def test_a_tool_that_cannot_run_fails_its_check(monkeypatch: pytest.MonkeyPatch) -> None:

    def broken() -> CheckResult:
        raise HarnessError("the security tool 'zizmor' is not installed", fix="install it")

    result = _timed("zizmor", broken)
    assert result.status("medium") == "failed"
    assert result.findings[0].rule == "did-not-run"
