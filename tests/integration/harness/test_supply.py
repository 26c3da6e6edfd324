"""The supply chain against the real registry and cosign: publish by digest, sign, attest,
and every tamper case refused by verification.

Images here are tiny OCI tarballs written by the test (one layer with a dist-info and a
dpkg status), so each case is a real push, signature and attestation in a second or two.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness.test_adoption import _run
from tierharness import config
from tierharness.__main__ import main
from tierharness.config import Settings, SupplyConfig, environment, load_settings
from tierharness.engine.client import engine_client
from tierharness.engine.labels import LABEL_RUN, RunIdentity
from tierharness.engine.reaper import remove_labelled
from tierharness.engine.run_ids import new_run_id
from tierharness.errors import HarnessError
from tierharness.supply.publish import manifest_bytes, push_oci
from tierharness.supply.registry import Registry, RegistryError, running_registry, start_registry
from tierharness.supply.sbom_attestation import image_components, write_sbom
from tierharness.supply.signing import KeyPair, SigningKeyError, attest, create_keys, key_pair, sign
from tierharness.supply.stack_image import head_revision, image_to_run, verified_image
from tierharness.supply.verify import MANIFEST_TYPES, VerificationError, Verified, verify_image

PASSWORD = "correct horse battery staple"  # pragma: allowlist secret (a test key's password)
HEAD = "1" * 40


def _blob(folder: Path, data: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    (folder / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (folder / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def _layer(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def make_oci(path: Path, marker: str) -> str:
    """A one-layer OCI tarball at `path` whose content (and so digest) depends on `marker`."""
    layout = path.with_suffix(".layout")
    layer = _layer(
        {
            "marker.txt": marker.encode(),
            "opt/venv/lib/python3.13/site-packages/demo_pkg-1.2.3.dist-info/METADATA": (
                b"Metadata-Version: 2.1\nName: demo_pkg\nVersion: 1.2.3\n"
            ),
            "var/lib/dpkg/status": (
                b"Package: libdemo1\nStatus: install ok installed\nArchitecture: amd64\nVersion: 4.5-6\n\n"
                b"Package: gone\nStatus: deinstall ok config-files\nVersion: 1\n"
            ),
        }
    )
    compressed = gzip.compress(layer, mtime=0)
    layer_desc = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **_blob(layout, compressed)}
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(layer).hexdigest()}"]},
        }
    ).encode()
    config_desc = {"mediaType": "application/vnd.oci.image.config.v1+json", **_blob(layout, config)}
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config_desc,
            "layers": [layer_desc],
        }
    ).encode()
    manifest_desc = {"mediaType": "application/vnd.oci.image.manifest.v1+json", **_blob(layout, manifest)}
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [manifest_desc]}))
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    with tarfile.open(path, "w") as tar:
        for item in sorted(layout.rglob("*")):
            tar.add(item, arcname=str(item.relative_to(layout)), recursive=False)
    return str(manifest_desc["digest"])


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    keys = tmp_path_factory.mktemp("keys")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HARNESS_KEY_DIR", str(keys / "project"))
        patch.setenv("HARNESS_KEY_PASSWORD", PASSWORD)
        patch.delenv("HARNESS_KEY_PASSWORD_FILE", raising=False)
        yield keys


@pytest.fixture(scope="module")
def settings(env: Path, project_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    work = tmp_path_factory.mktemp("supply")
    return replace(load_settings(project_root), state_dir=work / "state", build_dir=work / "build")


@pytest.fixture(scope="module")
def pair(settings: Settings) -> KeyPair:
    return create_keys(settings)


@pytest.fixture(scope="module")
def other_pair(settings: Settings, env: Path) -> KeyPair:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HARNESS_KEY_DIR", str(env / "someone-else"))
        return create_keys(settings)


@pytest.fixture(scope="module")
def identity(harness_reaper: None) -> RunIdentity:
    # Owned by this pytest process: if the run is killed, a reaper's sweep removes it.
    return RunIdentity(new_run_id("supply-"), "supply", os.getpid())


@pytest.fixture(scope="module")
def registry(settings: Settings, identity: RunIdentity) -> Iterator[Registry]:
    with running_registry(settings, identity) as running:
        yield running


@pytest.fixture
def docker_config(registry: Registry) -> Iterator[Path]:
    with registry.docker_config() as folder:
        yield folder


@dataclass(frozen=True)
class Keys:
    project: KeyPair
    other: KeyPair


@pytest.fixture(scope="module")
def keys(pair: KeyPair, other_pair: KeyPair) -> Keys:
    return Keys(pair, other_pair)


def _predicate(revision: str) -> dict[str, Any]:
    return {
        "buildDefinition": {
            "buildType": "https://example.invalid/test/v1",
            "externalParameters": {"source": {"digest": {"gitCommit": revision}}},
        },
        "runDetails": {"builder": {"id": "https://example.invalid/test-builder"}},
    }


def publish_demo(
    tmp_path: Path,
    registry: Registry,
    docker_config: Path,
    signer: KeyPair | None,
    *,
    repository: str = "demo/app",
    sbom_signer: KeyPair | None = None,
    provenance_signer: KeyPair | None = None,
    revision: str = HEAD,
    tag: str = "v1",
) -> str:
    """Push a fresh demo image; sign and attest it with the keys given (None: skip that)."""
    oci = tmp_path / f"{secrets.token_hex(4)}.oci.tar"
    digest = make_oci(oci, secrets.token_hex(8))
    pushed = push_oci(registry, oci, repository, tag)
    assert pushed.digest == digest
    reference = registry.reference(repository, digest)
    if signer is not None:
        sign(signer, reference, docker_config)
    if sbom_signer is not None:
        sbom = write_sbom(oci, tmp_path / "sbom.json", name=repository)
        attest(sbom_signer, reference, sbom, "cyclonedx", docker_config)
    if provenance_signer is not None:
        provenance = tmp_path / "provenance.json"
        provenance.write_text(json.dumps(_predicate(revision)))
        attest(provenance_signer, reference, provenance, "slsaprovenance1", docker_config)
    return digest


def _verify(registry: Registry, pair: KeyPair, docker_config: Path, digest: str, **kw: Any) -> Verified:
    kw.setdefault("repository", "demo/app")
    return verify_image(
        registry, kw.pop("repository"), expected_digest=digest, public_key=pair.public, head=HEAD,
        docker_config=docker_config, **kw,
    )  # fmt: skip


# --------------------------------------------------------------------------- publish


def test_publish_keeps_the_digest_signs_attests_and_verifies(
    tmp_path: Path, registry: Registry, docker_config: Path, pair: KeyPair
) -> None:
    digest = publish_demo(tmp_path, registry, docker_config, pair, sbom_signer=pair, provenance_signer=pair)

    verified = _verify(registry, pair, docker_config, digest, tag="v1")

    assert verified.reference == f"{registry.host}/demo/app@{digest}"
    assert verified.checks == [
        "tag v1 -> digest", "2 blobs hashed", "signature", "cyclonedx attestation",
        "slsaprovenance1 attestation", "provenance revision == HEAD",
    ]  # fmt: skip
    status, headers, _ = registry.request(
        "HEAD",
        f"/v2/demo/app/manifests/{digest}",
        headers={"Accept": MANIFEST_TYPES},
    )
    assert (status, headers["docker-content-digest"]) == (200, digest)


def test_the_sbom_lists_python_and_debian_packages_from_the_tarball_alone(tmp_path: Path) -> None:
    oci = tmp_path / "demo.oci.tar"
    make_oci(oci, "sbom")
    purls = sorted(c.purl for c in image_components(oci))
    assert purls == ["pkg:deb/debian/libdemo1@4.5-6?arch=amd64", "pkg:pypi/demo-pkg@1.2.3"]
    first = write_sbom(oci, tmp_path / "a.json", name="demo").read_bytes()
    assert first == write_sbom(oci, tmp_path / "b.json", name="demo").read_bytes()
    assert manifest_bytes(oci)[0] in json.loads(first)["metadata"]["component"]["version"]


# --------------------------------------------------------------------------- tamper cases


def test_a_tag_re_pointed_to_another_image_is_refused(
    tmp_path: Path, registry: Registry, docker_config: Path, pair: KeyPair
) -> None:
    repo = "demo/repointed"
    digest = publish_demo(
        tmp_path, registry, docker_config, pair, repository=repo, sbom_signer=pair, provenance_signer=pair
    )
    other = publish_demo(tmp_path, registry, docker_config, None, repository=repo)  # same tag, v1

    with pytest.raises(VerificationError) as err:
        _verify(registry, pair, docker_config, digest, repository=repo, tag="v1")

    assert f"refusing to run {digest}" in str(err.value)
    assert f"points at {other}" in str(err.value)


def test_an_image_signed_by_another_key_is_refused(
    tmp_path: Path, registry: Registry, docker_config: Path, pair: KeyPair, other_pair: KeyPair
) -> None:
    digest = publish_demo(
        tmp_path, registry, docker_config, other_pair, sbom_signer=pair, provenance_signer=pair, tag="v2"
    )
    with pytest.raises(VerificationError, match="signature does not verify") as err:
        _verify(registry, pair, docker_config, digest)
    assert digest in str(err.value)


@pytest.mark.parametrize("case", ["missing", "signed by another key"])
def test_an_sbom_attestation_missing_or_not_signed_by_the_project_is_refused(
    case: str, tmp_path: Path, registry: Registry, docker_config: Path, keys: Keys
) -> None:
    pair = keys.project
    sbom_signer = None if case == "missing" else keys.other
    digest = publish_demo(
        tmp_path, registry, docker_config, pair, sbom_signer=sbom_signer, provenance_signer=pair, tag="v3"
    )
    with pytest.raises(VerificationError, match="the CycloneDX SBOM attestation is missing or not signed"):
        _verify(registry, pair, docker_config, digest)


def test_a_missing_provenance_is_refused(
    tmp_path: Path, registry: Registry, docker_config: Path, pair: KeyPair
) -> None:
    digest = publish_demo(tmp_path, registry, docker_config, pair, sbom_signer=pair, tag="v4")
    with pytest.raises(VerificationError, match="the SLSA provenance attestation is missing"):
        _verify(registry, pair, docker_config, digest)


def test_a_provenance_from_another_revision_is_refused(
    tmp_path: Path, registry: Registry, docker_config: Path, pair: KeyPair
) -> None:
    digest = publish_demo(
        tmp_path, registry, docker_config, pair, sbom_signer=pair, provenance_signer=pair,
        revision="2" * 40, tag="v5",
    )  # fmt: skip
    with pytest.raises(VerificationError) as err:
        _verify(registry, pair, docker_config, digest)
    assert f"names revision {'2' * 40}, not the checkout's HEAD {HEAD}" in str(err.value)


def test_a_corrupted_blob_in_the_registry_storage_is_refused(
    tmp_path: Path, registry: Registry, docker_config: Path, pair: KeyPair
) -> None:
    digest = publish_demo(
        tmp_path, registry, docker_config, pair, sbom_signer=pair, provenance_signer=pair, tag="v6"
    )
    _, _, data = registry.request(
        "GET",
        f"/v2/demo/app/manifests/{digest}",
        headers={"Accept": MANIFEST_TYPES},
    )
    layer = json.loads(data)["layers"][0]["digest"].removeprefix("sha256:")
    stored = registry.storage / "docker/registry/v2/blobs/sha256" / layer[:2] / layer / "data"
    stored.write_bytes(stored.read_bytes()[:-4] + b"evil")

    with pytest.raises(VerificationError) as err:
        _verify(registry, pair, docker_config, digest)
    assert f"blob sha256:{layer} is corrupted" in str(err.value)


# --------------------------------------------------------------------------- keys


def test_a_private_key_readable_by_others_is_refused(settings: Settings, pair: KeyPair) -> None:
    pair.private.chmod(0o644)
    try:
        with pytest.raises(SigningKeyError, match="has mode 0644: others can read it") as err:
            key_pair(settings)
        assert f"chmod 600 {pair.private}" in str(err.value)
    finally:
        pair.private.chmod(0o600)


def test_a_key_folder_inside_the_repository_is_refused(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_KEY_DIR", str(settings.root / "keys"))
    with pytest.raises(SigningKeyError, match="inside the repository"):
        create_keys(settings)
    assert not (settings.root / "keys").exists()


def test_the_key_password_comes_from_a_file_and_is_required(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_KEY_DIR", str(tmp_path / "keys"))
    # Empty, not unset: it overrides a password the harness withheld when this run started.
    monkeypatch.setenv("HARNESS_KEY_PASSWORD", "")
    with pytest.raises(Exception, match="no password for the signing key"):
        create_keys(settings)
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    monkeypatch.setenv("HARNESS_KEY_PASSWORD_FILE", str(secret))
    made = create_keys(settings)
    assert oct(made.private.stat().st_mode & 0o777) == "0o600"
    assert PASSWORD not in made.private.read_text()


# The project's migration: records what it was given, then creates a table in the worker's
# database (a migration that creates nothing is refused).
_RECORDING_MIGRATION = """
import json, os, psycopg
with open(os.environ["RECORD_TO"], "w") as out:
    json.dump(dict(os.environ), out)
with psycopg.connect("", autocommit=True) as conn:
    conn.execute("CREATE TABLE IF NOT EXISTS t (id int)")
"""

_WORKER_TEST = """
import os

def test_the_worker_does_not_hold_the_key_password(harness_services):
    assert "HARNESS_KEY_PASSWORD" not in os.environ
"""


@pytest.mark.usefixtures("env")
def test_children_never_see_the_key_password_and_cosign_still_gets_it(
    tmp_path: Path, settings: Settings, registry: Registry, docker_config: Path
) -> None:
    """HARNESS_KEY_PASSWORD set for a pytest run: neither its xdist worker nor the project's
    migration command inherits it. Set for `harness keys`: cosign gets it, and the pair it
    makes signs with that password."""
    assert os.environ["HARNESS_KEY_PASSWORD"] == PASSWORD  # what the `env` fixture exports
    project = tmp_path / "project"
    project.mkdir()
    postgres = load_settings().image("postgres").local
    (project / "pyproject.toml").write_text(
        "[tool.pytest.ini_options]\n"
        'harness_provision = "early"\nharness_services = "postgres"\nharness_migrate = "python migrate.py"\n'
        f'harness_postgres_image = "{postgres}"\n'
        # The migration's own environment is what is checked: it must run, not a migrated image.
        "harness_migrate_once = false\n"
    )
    (project / "migrate.py").write_text(_RECORDING_MIGRATION)
    (project / "test_worker.py").write_text(_WORKER_TEST)
    record = tmp_path / "migrate-env.json"
    run_id = new_run_id("secret-")
    try:
        proc = _run(project, "-n", "1", run_id=run_id, env={"RECORD_TO": str(record)})
    finally:
        remove_labelled(engine_client(), {"label": [f"{LABEL_RUN}={run_id}"]})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    seen = json.loads(record.read_text())
    assert seen["PYTEST_XDIST_WORKER"] == "gw0"  # the migration ran in the worker, its parent
    assert "HARNESS_KEY_PASSWORD" not in seen
    assert PASSWORD not in json.dumps(seen)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(config.variables, "_withheld", {})  # what `main` withholds, kept for this test only
        patch.setenv("HARNESS_KEY_PASSWORD", PASSWORD)  # back in place for the module's other tests
        patch.setenv("HARNESS_KEY_DIR", str(tmp_path / "keys"))
        assert main(["keys"]) == 0  # cosign generate-key-pair, COSIGN_PASSWORD from the variable
        assert "HARNESS_KEY_PASSWORD" not in os.environ  # taken out before any child started
        assert PASSWORD not in repr(environment())
        made = key_pair(settings)
        oci = tmp_path / "demo.oci.tar"
        digest = make_oci(oci, "withheld")
        push_oci(registry, oci, "demo/withheld", "v1")
        sign(made, registry.reference("demo/withheld", digest), docker_config)


def test_the_wrong_key_password_gives_a_clear_error(
    tmp_path: Path, registry: Registry, docker_config: Path, pair: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    oci = tmp_path / "demo.oci.tar"
    digest = make_oci(oci, "wrong-password")
    push_oci(registry, oci, "demo/app", "v7")
    monkeypatch.setenv("HARNESS_KEY_PASSWORD", "not the password")

    with pytest.raises(SigningKeyError) as err:
        sign(pair, registry.reference("demo/app", digest), docker_config)

    assert f"the password does not open the private key {pair.private}" in str(err.value)
    assert "not the password" not in str(err.value)


# --------------------------------------------------------------------------- the registry


def _leftovers(identity: RunIdentity) -> list[Any]:
    containers = engine_client().containers.list(
        all=True, ignore_removed=True, filters={"label": [f"harness.run-id={identity.run_id}"]}
    )
    return [c for c in containers if c.labels.get("harness.worker") == identity.worker]


def test_the_registry_needs_the_run_credentials(registry: Registry) -> None:
    assert registry.request("GET", "/v2/", auth=False)[0] == 401
    assert registry.request("GET", "/v2/")[0] == 200
    assert registry.password not in repr(registry)
    container = engine_client().containers.get(registry.container_id)
    assert registry.password not in json.dumps(container.attrs)
    assert container.ports["5000/tcp"][0]["HostIp"] == "127.0.0.1"


def test_a_port_already_taken_fails_with_the_log_and_leaves_nothing(
    settings: Settings, identity: RunIdentity
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        mine = replace(identity, worker="port-taken")
        busy = replace(settings, supply=SupplyConfig(registry_port=port))
        with pytest.raises(RegistryError) as err:
            start_registry(busy, mine)
    assert f"could not start on 127.0.0.1:{port}" in str(err.value)
    assert "its log" in str(err.value)
    assert "registry-port = 0" in str(err.value)
    assert _leftovers(mine) == []


def test_a_registry_that_never_gets_ready_fails_with_the_log_and_leaves_nothing(
    settings: Settings, identity: RunIdentity
) -> None:
    """An image that is no registry (the harness's postgres): its container exits at once."""
    mine = replace(identity, worker="never-ready")
    wrong = replace(settings, supply=SupplyConfig(registry_image="postgres", registry_timeout=20))
    with pytest.raises(RegistryError) as err:
        start_registry(wrong, mine)
    assert "never became ready: the container exited" in str(err.value)
    assert "docker-registry" in str(err.value).split("its log:", 1)[1]  # the container's own words
    assert _leftovers(mine) == []


# --------------------------------------------------------------------------- verify before run


def _records(settings: Settings, digest: str, repository: str, tag: str) -> None:
    settings.build_dir.mkdir(parents=True, exist_ok=True)
    settings.image_record.write_text(json.dumps({"digest": digest, "image": "unused"}))
    published = {"repository": repository, "tag": tag, "digest": digest}
    (settings.build_dir / "publish.json").write_text(json.dumps(published))


@pytest.mark.parametrize("tamper", ["none", "another revision", "unsigned"])
@pytest.mark.usefixtures("pair")  # the key pair must exist on this worker, whatever ran before
def test_a_stack_runs_only_a_verified_image_and_starts_nothing_otherwise(
    tamper: str, tmp_path: Path, settings: Settings, registry: Registry, docker_config: Path
) -> None:
    """What the stack fixture (and perf) call before starting anything, on a registry of
    their own: the published image verified against build/image.json and HEAD."""
    pair = key_pair(settings)
    identity = RunIdentity(new_run_id("supply-"), "verify", os.getpid())
    head = head_revision(settings)
    repository, tag = f"demo/run-{tamper.replace(' ', '-')}", "t1"
    digest = publish_demo(
        tmp_path, registry, docker_config, None if tamper == "unsigned" else pair, repository=repository,
        sbom_signer=pair, provenance_signer=pair, tag=tag,
        revision="2" * 40 if tamper == "another revision" else head,
    )  # fmt: skip
    _records(settings, digest, repository, tag)
    mine = identity

    if tamper == "none":
        reference = verified_image(settings, mine)
        assert reference.endswith(f"/{repository}@{digest}")
        engine_client().images.remove(reference)
    else:
        with pytest.raises(VerificationError, match=f"refusing to run {digest}"):
            verified_image(settings, mine)
    assert _leftovers(mine) == []  # the run's own registry is gone; nothing else was started


@pytest.mark.usefixtures("pair")  # the key pair must exist on this worker, whatever ran before
def test_with_a_key_pair_and_no_setting_the_stack_runs_the_image_verified_by_digest(
    tmp_path: Path,
    settings: Settings,
    registry: Registry,
    docker_config: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HARNESS_VERIFY", raising=False)
    assert settings.verify_before_run  # the pair is there, and the project's pyproject.toml says nothing
    pair = key_pair(settings)
    digest = publish_demo(
        tmp_path, registry, docker_config, pair, repository="demo/auto", sbom_signer=pair,
        provenance_signer=pair, tag="a1", revision=head_revision(settings),
    )  # fmt: skip
    _records(settings, digest, "demo/auto", "a1")
    mine = RunIdentity(new_run_id("supply-"), "auto", os.getpid())

    reference = image_to_run(settings, "demo/auto:built", mine)

    assert reference.startswith("127.0.0.1:")
    assert reference.endswith(f"/demo/auto@{digest}")
    engine_client().images.remove(reference)
    assert _leftovers(mine) == []


def test_without_a_key_pair_the_stack_runs_the_built_image_and_says_so(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HARNESS_VERIFY", raising=False)
    monkeypatch.setenv("HARNESS_KEY_DIR", str(tmp_path / "no-keys"))
    lines: list[str] = []
    mine = RunIdentity(new_run_id("supply-"), "unverified", os.getpid())

    assert image_to_run(settings, "demo/app:built", mine, lines.append) == "demo/app:built"

    assert lines == [
        f"running demo/app:built unverified: no signing key pair ({tmp_path / 'no-keys' / 'cosign.key'}, "
        f"{tmp_path / 'no-keys' / 'cosign.pub'} missing), and [tool.harness.supply] verify is auto"
    ]
    assert _leftovers(mine) == []


@pytest.mark.parametrize("switch", ["HARNESS_VERIFY=1", "verify = true"])
def test_verify_on_without_a_key_pair_is_an_error_naming_the_files_and_the_fix(
    switch: str, tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_KEY_DIR", str(tmp_path / "no-keys"))
    if switch == "HARNESS_VERIFY=1":
        monkeypatch.setenv("HARNESS_VERIFY", "1")
    else:
        monkeypatch.delenv("HARNESS_VERIFY", raising=False)
        settings = replace(settings, supply=SupplyConfig(verify=True))
    mine = RunIdentity(new_run_id("supply-"), "refused", os.getpid())

    with pytest.raises(HarnessError) as err:
        image_to_run(settings, "demo/app:built", mine)

    source = "HARNESS_VERIFY" if switch == "HARNESS_VERIFY=1" else "[tool.harness.supply] verify"
    assert f"verify-before-run is on ({source}), but there is no key pair to verify with" in err.value.what
    assert str(tmp_path / "no-keys" / "cosign.pub") in err.value.what
    assert f"the key files in {tmp_path / 'no-keys'}" in str(err.value.checked)
    assert "`python -m tierharness keys`, `nox -s publish`" in str(err.value.fix)
    assert _leftovers(mine) == []


def test_a_killed_command_leaves_no_registry_behind(tmp_path: Path, project_root: Path) -> None:
    """`python -m tierharness registry` SIGKILLed: the reaper it started removes the container,
    and the folders of the registry's credentials and of the client's (no `finally` ran)."""
    temporary = tmp_path / "tmp"  # the command's and its reaper's temporary folder
    temporary.mkdir()
    env = {
        **os.environ,
        "HARNESS_STATE_DIR": str(tmp_path / "state"),
        "HARNESS_PROJECT_ROOT": str(project_root),
        "TMPDIR": str(temporary),
    }
    command = subprocess.Popen(
        [sys.executable, "-m", "tierharness", "registry"], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert command.stdout is not None
        assert command.stdout.readline().startswith("registry  127.0.0.1:")
        flt = {"label": ["harness.role=registry", f"harness.pid={command.pid}"]}
        assert len(engine_client().containers.list(filters=flt)) == 1
        assert len(list(temporary.iterdir())) == 2  # the credentials: the registry's, the client's
        command.send_signal(signal.SIGKILL)
        command.wait()

        # ignore_removed: the reaper may remove the container between the listing and its inspection.
        def left() -> list[object]:
            return [
                *engine_client().containers.list(all=True, filters=flt, ignore_removed=True),
                *temporary.iterdir(),
            ]

        deadline = time.monotonic() + 20
        while left() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert left() == []
    finally:
        if command.poll() is None:
            command.kill()
