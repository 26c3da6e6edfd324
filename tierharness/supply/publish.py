"""Push an image from its OCI tarball to a registry, byte for byte.

A small pusher on the OCI layout rather than `docker push`: the manifest is sent as the
exact bytes BuildKit wrote, so the digest in the registry is the one `repro-check` proves,
whatever the engine's image store does; and no credentials are written to a docker config.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tierharness.config import Settings
from tierharness.errors import HarnessError
from tierharness.supply.provenance import write_provenance
from tierharness.supply.registry import Registry, RegistryError
from tierharness.supply.sbom_attestation import write_sbom
from tierharness.supply.signing import KeyPair, attest, sign

__all__ = ["Published", "Pushed", "manifest_bytes", "publish", "push_oci"]

_INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)


@dataclass(frozen=True)
class Pushed:
    repository: str
    tag: str
    digest: str
    blobs_sent: int
    blobs_present: int


def _blob(tar: tarfile.TarFile, digest: str) -> tarfile.TarInfo:
    algo, _, hexdigest = digest.partition(":")
    try:
        return tar.getmember(f"blobs/{algo}/{hexdigest}")
    except KeyError:
        raise HarnessError(
            f"{tar.name!s}: blob {digest} is missing",
            checked="the OCI layout's blobs/ folder",
            fix="rebuild the image (`nox -s build -- --force`)",
        ) from None


def _read(tar: tarfile.TarFile, digest: str) -> bytes:
    member = tar.extractfile(_blob(tar, digest))
    return member.read() if member is not None else b""


def manifest_bytes(oci: Path) -> tuple[str, str, bytes]:
    """(digest, media type, exact bytes) of the single-platform manifest in an OCI tarball,
    following nested indexes the way `tierharness.oci.read_oci` does."""
    with tarfile.open(oci) as tar:
        index = tar.extractfile("index.json")
        if index is None:
            raise HarnessError(f"{oci} has no index.json", checked="OCI layout", fix="re-export the image")
        entry: dict[str, Any] = json.load(index)["manifests"][0]
        while entry.get("mediaType") in _INDEX_TYPES:
            nested = json.loads(_read(tar, entry["digest"]))["manifests"]
            entry = next(
                (m for m in nested if m.get("platform", {}).get("architecture") != "unknown"), nested[0]
            )
        data = _read(tar, entry["digest"])
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    if digest != entry["digest"]:
        raise HarnessError(
            f"{oci}: the manifest's bytes hash to {digest}, not {entry['digest']}",
            checked="sha256 of the manifest blob against the index",
            fix="the tarball is corrupt: rebuild it",
        )
    media = json.loads(data).get("mediaType") or entry.get("mediaType") or ""
    return digest, str(media), data


def _push_blob(registry: Registry, tar: tarfile.TarFile, repository: str, digest: str) -> bool:
    """Upload one blob unless the registry has it; True when it was sent."""
    status, _, _ = registry.request("HEAD", f"/v2/{repository}/blobs/{digest}")
    if status == 200:
        return False
    status, headers, body = registry.request("POST", f"/v2/{repository}/blobs/uploads/")
    if status != 202 or "location" not in headers:
        raise RegistryError(
            f"the registry refused to start an upload for {digest} (HTTP {status}): {body[:300]!r}",
            checked=f"POST /v2/{repository}/blobs/uploads/ at {registry.host}",
            fix="read the registry's log",
        )
    location = headers["location"]
    if location.startswith("http"):
        location = "/" + location.split("/", 3)[3]
    joiner = "&" if "?" in location else "?"
    member = _blob(tar, digest)
    stream = tar.extractfile(member)
    status, _, body = registry.request(
        "PUT",
        f"{location}{joiner}digest={digest}",
        body=stream,
        headers={"Content-Type": "application/octet-stream", "Content-Length": str(member.size)},
    )
    if status != 201:
        # The registry checks what it received against the digest named: a blob whose bytes
        # were changed in the tarball ends here.
        raise RegistryError(
            f"the registry refused blob {digest} (HTTP {status}): {body[:300]!r}",
            checked=f"PUT of {member.size} bytes to {registry.host}, which checks the digest",
            fix="the tarball may be corrupt: rebuild the image (`nox -s build -- --force`)",
        )
    return True


def push_oci(registry: Registry, oci: Path, repository: str, tag: str) -> Pushed:
    """Every blob the manifest names, then the manifest under `tag`; the registry's digest
    must be the tarball's."""
    digest, media, data = manifest_bytes(oci)
    manifest = json.loads(data)
    sent = present = 0
    with tarfile.open(oci) as tar:
        for blob in [manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"])]:
            if _push_blob(registry, tar, repository, blob):
                sent += 1
            else:
                present += 1
    status, headers, body = registry.request(
        "PUT", f"/v2/{repository}/manifests/{tag}", body=data, headers={"Content-Type": media}
    )
    if status != 201:
        raise RegistryError(
            f"the registry refused the manifest of {oci} (HTTP {status}): {body[:300]!r}",
            checked=f"PUT /v2/{repository}/manifests/{tag} at {registry.host}",
            fix="read the registry's log",
        )
    stored = headers.get("docker-content-digest", "")
    if stored != digest:
        raise RegistryError(
            f"the registry stored the manifest as {stored or '(no digest)'}, not {digest}",
            checked="the Docker-Content-Digest header of the manifest upload",
            fix="the registry changed the manifest; use distribution 2.8 (the `registry` logical image)",
        )
    return Pushed(repository, tag, digest, sent, present)


@dataclass(frozen=True)
class Published:
    reference: str  # 127.0.0.1:PORT/repository@sha256:...
    pushed: Pushed
    sbom: Path
    provenance: Path
    seconds: dict[str, float]


def publish(
    settings: Settings,
    registry: Registry,
    record: dict[str, Any],
    pair: KeyPair,
    *,
    log: Callable[[str], None] = lambda _m: None,
) -> Published:
    """Push the built image (build/image.oci.tar, described by `record`), sign it, attach
    its SBOM and provenance attestations; record the result in build/publish.json."""
    oci = settings.build_dir / "image.oci.tar"
    seconds: dict[str, float] = {}
    started = time.monotonic()
    repository = settings.repository
    pushed = push_oci(registry, oci, repository, str(record["revision"])[:12])
    if pushed.digest != record["digest"]:
        raise HarnessError(
            f"{oci} holds {pushed.digest}, but build/image.json records {record['digest']}",
            checked="the tarball's manifest digest against the build record",
            fix="rebuild: `nox -s build -- --force`",
        )
    seconds["push"] = time.monotonic() - started
    reference = registry.reference(repository, pushed.digest)
    log(f"pushed {reference} ({pushed.blobs_sent} blob(s) sent, {pushed.blobs_present} already there)")
    folder = settings.build_dir / "supply"
    sbom = write_sbom(oci, folder / "sbom.cdx.json", name=repository)
    provenance = write_provenance(settings, record, folder / "provenance.json")
    with registry.docker_config() as docker_config:
        mark = time.monotonic()
        sign(pair, reference, docker_config)
        seconds["sign"] = time.monotonic() - mark
        mark = time.monotonic()
        attest(pair, reference, sbom, "cyclonedx", docker_config)
        attest(pair, reference, provenance, "slsaprovenance1", docker_config)
        seconds["attest"] = time.monotonic() - mark
    published = Published(reference, pushed, sbom, provenance, seconds)
    settings.build_dir.joinpath("publish.json").write_text(
        json.dumps(
            {"repository": repository, "tag": pushed.tag, "digest": pushed.digest,
             "revision": record["revision"], "reference": reference},
            indent=2, sort_keys=True,
        ) + "\n"
    )  # fmt: skip
    return published
