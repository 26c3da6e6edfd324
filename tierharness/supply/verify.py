"""Verify an image in the registry before anything runs it.

In order, each failure naming the digest and what failed:
1. the tag still points at the digest that was built (a re-pointed tag is refused);
2. every blob the manifest names is in the registry with the bytes its digest says;
3. cosign: the signature verifies against the project's public key;
4. cosign: a CycloneDX SBOM and a SLSA provenance attestation, both signed with that key;
5. every verified provenance names the checkout's HEAD as its revision.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tierharness.errors import HarnessError
from tierharness.process import run
from tierharness.supply.provenance import provenance_revision
from tierharness.supply.registry import Registry
from tierharness.supply.signing import cosign, cosign_env_for

__all__ = ["MANIFEST_TYPES", "VerificationError", "Verified", "verify_image"]

MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.index.v1+json",
    )
)
_PREDICATES = {"cyclonedx": "the CycloneDX SBOM", "slsaprovenance1": "the SLSA provenance"}


class VerificationError(HarnessError):
    """The image failed verification: nothing may run it."""


@dataclass(frozen=True)
class Verified:
    reference: str  # 127.0.0.1:PORT/repository@sha256:...
    digest: str
    revision: str
    checks: list[str] = field(default_factory=list)


def _refuse(digest: str, failed: str, *, checked: str, fix: str) -> VerificationError:
    return VerificationError(f"refusing to run {digest}: {failed}", checked=checked, fix=fix)


def _resolve(registry: Registry, repository: str, tag: str) -> str:
    status, headers, _ = registry.request(
        "HEAD", f"/v2/{repository}/manifests/{tag}", headers={"Accept": MANIFEST_TYPES}
    )
    digest = headers.get("docker-content-digest", "")
    if status != 200 or not digest:
        raise VerificationError(
            f"refusing to run {repository}:{tag}: it is not in the registry (HTTP {status})",
            checked=f"HEAD /v2/{repository}/manifests/{tag} at {registry.host}",
            fix="publish it first: `nox -s publish`",
        )
    return digest


def _check_blobs(registry: Registry, repository: str, digest: str) -> int:
    """Fetch the manifest and every blob it names, hashing each: the registry serves stored
    blobs without checking them, and a pull would skip blobs the engine already has."""
    status, _, data = registry.request(
        "GET", f"/v2/{repository}/manifests/{digest}", headers={"Accept": MANIFEST_TYPES}
    )
    fix = "publish the image again (`nox -s publish`) onto clean storage"
    if status != 200 or "sha256:" + hashlib.sha256(data).hexdigest() != digest:
        raise _refuse(
            digest, "the manifest the registry serves does not hash to its digest",
            checked=f"sha256 of GET /v2/{repository}/manifests/{digest} (HTTP {status})", fix=fix,
        )  # fmt: skip
    manifest: dict[str, Any] = json.loads(data)
    blobs = [manifest["config"]["digest"], *(layer["digest"] for layer in manifest.get("layers", []))]
    for blob in blobs:
        status, _, body = registry.request("GET", f"/v2/{repository}/blobs/{blob}")
        actual = "sha256:" + hashlib.sha256(body).hexdigest()
        if status != 200 or actual != blob:
            state = "missing" if status != 200 else f"corrupted: it hashes to {actual}"
            raise _refuse(
                digest, f"blob {blob} is {state}",
                checked=f"sha256 of GET /v2/{repository}/blobs/{blob} (HTTP {status})", fix=fix,
            )  # fmt: skip
    return len(blobs)


def _cosign(argv: list[str], docker_config: Path, digest: str, failed: str, fix: str) -> str:
    proc = run(
        argv,
        what=f"cosign for {digest}",
        fix=fix,
        env=cosign_env_for(docker_config),
        check=False,
        timeout=120,
    )
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr).strip()
        raise _refuse(digest, f"{failed}:\n{output[-1500:]}", checked=" ".join(argv), fix=fix)
    return proc.stdout


def _statements(output: str) -> list[dict[str, Any]]:
    statements = []
    for line in output.splitlines():
        if line.strip().startswith("{"):
            envelope = json.loads(line)
            statements.append(json.loads(base64.b64decode(envelope["payload"])))
    return statements


def verify_image(
    registry: Registry,
    repository: str,
    *,
    expected_digest: str,
    public_key: Path,
    head: str,
    docker_config: Path,
    tag: str | None = None,
) -> Verified:
    """Verify `repository@expected_digest` (and, with `tag`, that the tag points at it)."""
    digest = expected_digest
    checks = []
    if tag is not None:
        pointed = _resolve(registry, repository, tag)
        if pointed != digest:
            raise _refuse(
                digest,
                f"the tag {repository}:{tag} points at {pointed}, not at the image that was built",
                checked=f"HEAD /v2/{repository}/manifests/{tag} against build/image.json",
                fix="publish the image built from this checkout again (`nox -s publish`)",
            )
        checks.append(f"tag {tag} -> digest")
    checks.append(f"{_check_blobs(registry, repository, digest)} blobs hashed")
    reference = registry.reference(repository, digest)
    common = ["--key", str(public_key), "--insecure-ignore-tlog=true", "--allow-insecure-registry"]
    _cosign(
        [cosign(), "verify", *common, reference], docker_config, digest,
        "its signature does not verify against the project's public key " + str(public_key),
        fix="sign it with the project's key: `nox -s publish`",
    )  # fmt: skip
    checks.append("signature")
    revisions: list[str | None] = []
    for kind, what in _PREDICATES.items():
        output = _cosign(
            [cosign(), "verify-attestation", *common, "--type", kind, reference], docker_config, digest,
            f"{what} attestation is missing or not signed with the project's key {public_key}",
            fix="attest it with the project's key: `nox -s publish`",
        )  # fmt: skip
        checks.append(f"{kind} attestation")
        if kind == "slsaprovenance1":
            revisions = [provenance_revision(s.get("predicate") or {}) for s in _statements(output)]
    wrong = sorted({str(r) for r in revisions if r != head})
    if not revisions or wrong:
        raise _refuse(
            digest,
            f"its provenance names revision {', '.join(wrong) or '(none)'}, not the checkout's HEAD {head}",
            checked="buildDefinition.externalParameters.source.digest.gitCommit of every verified provenance",
            fix="build and publish this checkout (`nox -s publish`), "
            "or check out the revision it was built from",
        )
    checks.append("provenance revision == HEAD")
    return Verified(reference, digest, head, checks)
