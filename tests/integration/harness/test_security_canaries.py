"""Canaries for `nox -s security` with its real tools and a real image build: each planted
problem must fail the gate (or the check's function), naming the place; the landed tree's
Dockerfiles, workflow and production image must pass."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tierharness.config import load_settings
from tierharness.errors import HarnessError
from tierharness.imaging.buildx import buildx_build
from tierharness.security import dockerfiles, workflows
from tierharness.security import secret_scan as secrets
from tierharness.security.image_scan import layer_cache, scan_image, view_image
from tierharness.security.scan_all import run_security
from tierharness.security.tools import tool

ROOT = Path(__file__).resolve().parents[3]
AWS_KEY = "AKIA" + "Q7RZ4K2M9XWT3B5N"
GH_TOKEN = "ghp" + "_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"  # pragma: allowlist secret (fake)


def _have(*names: str) -> bool:
    try:
        for name in names:
            tool(name)
    except HarnessError:
        return False
    return True


# The harness code these tests run is in this process, measured there; the tools are not ours.
pytestmark = pytest.mark.usefixtures("untraced_children")

needs_tools = pytest.mark.skipif(
    not _have(
        "bandit", "detect-secrets", "hadolint", "shellcheck", "zizmor", "check-jsonschema", "pip-audit"
    ),
    reason="the security tools are not installed (requirements/security.txt; `nox -s tests` installs them)",
)

TAGGED_WORKFLOW = """name: x
on: push
permissions: {}
jobs:
  a:
    runs-on: ubuntu-24.04
    steps:
      - uses: actions/checkout@v4
        with:
          persist-credentials: false
      - run: echo hi
"""


def _canary_tree(tmp_path: Path) -> Path:
    """A small project holding one of each source-side canary."""
    root = tmp_path / "project"
    (root / "src").mkdir(parents=True)
    (root / "src" / "settings.py").write_text(f'REGION = "eu"\nKEY_ID = "{AWS_KEY}"\n')
    (root / ".github" / "workflows").mkdir(parents=True)
    (root / ".github" / "workflows" / "ci.yml").write_text(TAGGED_WORKFLOW)
    (root / "Dockerfile").write_text(
        "FROM debian:trixie@sha256:" + "0" * 64 + "\nADD http://example.invalid/tool.tgz /opt/\nUSER root\n"
    )
    (root / "requirements").mkdir()
    (root / "requirements" / "app.in").write_text("fastapi\n")
    (root / "requirements" / "app.txt").write_text("fastapi==0.1\n    # via -r app.in\n")
    (root / "pyproject.toml").write_text(
        '[tool.harness]\n[tool.harness.lock]\nfiles = ["app"]\n'
        '[tool.harness.security]\nsource = ["src"]\ndockerfiles = ["Dockerfile"]\n'
    )
    return root


@pytest.fixture
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty machine cache: the canaries' files are scanned by the tools, not read back
    from an earlier run's findings."""
    cache = tmp_path / "machine-cache"
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(cache))
    return cache


@needs_tools
def test_canary_token_in_a_source_file(tmp_path: Path, own_cache: Path) -> None:
    root = _canary_tree(tmp_path)
    assert "src/settings.py:2" in [f.where for f in secrets.detect_secrets(root).findings]


@needs_tools
def test_kept_findings_never_hide_a_new_secret(
    tmp_path: Path, own_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _canary_tree(tmp_path)
    (root / "src" / "app.py").write_text("import os\n")
    first = secrets.detect_secrets(root)
    assert "src/settings.py:2" in [f.where for f in first.findings]
    assert f"{len(list(secrets.secrets_cache().glob('*.json')))} files" == first.note  # one entry a file
    # A file that changes is scanned again: the secret added to it is found at its line.
    with (root / "src" / "app.py").open("a") as f:
        f.write(f'\nGITHUB_TOKEN = "{GH_TOKEN}"\n')
    second = [f.where for f in secrets.detect_secrets(root).findings]
    assert "src/app.py:3" in second, second
    # Nothing changed: every finding comes back from the cache, without the tool.
    monkeypatch.setattr(
        secrets, "run_tool", lambda *a, **k: pytest.fail("scanned a file that did not change")
    )
    assert [f.where for f in secrets.detect_secrets(root).findings] == second


@needs_tools
def test_canary_workflow_using_an_action_by_tag(tmp_path: Path) -> None:
    root = _canary_tree(tmp_path)
    found = [(f.rule, f.where, f.severity) for f in workflows.zizmor(root, ".github/workflows").findings]
    assert ("unpinned-uses", ".github/workflows/ci.yml:8", "high") in found


@needs_tools
def test_canary_user_root_is_also_hadolints_dl3002(tmp_path: Path) -> None:
    root = _canary_tree(tmp_path)
    assert "DL3002" in [f.rule for f in dockerfiles.hadolint(root, ["Dockerfile"]).findings]


@needs_tools
def test_whole_gate_fails_on_the_canary_tree_naming_every_place(tmp_path: Path, own_cache: Path) -> None:
    root = _canary_tree(tmp_path)
    report = run_security(load_settings(root), log=lambda _m: None)
    assert report.verdict == "FAIL"
    gating = {(f["check"], f["where"]) for f in report.to_json()["findings"] if f["gating"]}
    for expected in [
        ("detect-secrets", "src/settings.py:2"),
        ("zizmor", ".github/workflows/ci.yml:8"),
        ("dockerfile-policy", "Dockerfile:3"),
        ("dockerfile-policy", "Dockerfile:2"),
        ("lockfile-hashes", "requirements/app.txt:1"),
        ("image", str(root / "build" / "image.oci.tar")),  # no image: never a pass
    ]:
        assert expected in gating
    written = json.loads((root / "build" / "security" / "report.json").read_text())
    assert written["verdict"] == "FAIL"
    assert "| detect-secrets | high | src/settings.py:2 |" in (root / "build/security/report.md").read_text()


def test_canary_image_built_for_real(tmp_path: Path) -> None:
    """An image built by BuildKit, so the history, labels and whiteouts are what a real build
    writes: every planted secret is found, named by place."""
    context = tmp_path / "context"
    context.mkdir()
    key = (
        "-----BEGIN " + "OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEA\n-----END OPENSSH PRIVATE KEY-----\n"
    )
    (context / "id_ed25519").write_text(key)
    (context / "Dockerfile").write_text(
        "ARG BASE\nFROM ${BASE}\n"
        f"ENV AWS_ACCESS_KEY_ID={AWS_KEY}\n"
        "ARG GH_TOKEN\n"
        'RUN test -n "$GH_TOKEN"\n'
        f'LABEL org.opencontainers.image.source="https://ci:{GH_TOKEN}@git.example.invalid/x.git"\n'
        "COPY id_ed25519 /root/.ssh/id_ed25519\n"
        "RUN rm /root/.ssh/id_ed25519\n"
        "USER 10001\n"
        'HEALTHCHECK CMD ["true"]\n'
    )
    oci = tmp_path / "canary.oci.tar"
    base = load_settings(ROOT).image("base").local
    buildx_build(context, build_args={"BASE": base, "GH_TOKEN": GH_TOKEN}, oci_dest=oci, no_cache=True)
    # The machine's layer cache, as the gate uses it: the base layers are usually read already.
    findings = scan_image(view_image(oci, layer_cache())).findings
    places = {(f.rule, f.where) for f in findings}
    assert ("aws-access-key", "image config Env AWS_ACCESS_KEY_ID") in places
    assert ("url-credentials", "image config Labels org.opencontainers.image.source") in places
    # BuildKit records the build arg's value in the created_by of the RUN that saw it.
    assert any(r == "github-token" and w.startswith("image config history") for r, w in places), places
    (deleted,) = [w for r, w in places if r == "private-key"]
    assert "/root/.ssh/id_ed25519, deleted in layer" in deleted, deleted
