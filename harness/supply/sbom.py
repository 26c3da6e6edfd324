"""A CycloneDX SBOM of an image, made from its OCI tarball alone: the Python distributions
(`*.dist-info/METADATA`) and the Debian packages (`/var/lib/dpkg/status`) in its layers.

Deterministic: components sorted, the serial number derived from the image digest, the
timestamp from SOURCE_DATE_EPOCH. So the same image always gets the same SBOM, and the
SBOM can be attested next to it. Any caller with an OCI tarball can use `sbom_from_oci`.
"""

from __future__ import annotations

import json
import re
import tarfile
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.parser import HeaderParser
from pathlib import Path
from typing import Any

from harness.build.oci import image_path, read_oci

__all__ = ["Component", "image_components", "sbom_from_oci", "write_sbom"]

_DIST_INFO = re.compile(r"/(?:site|dist)-packages/[^/]+\.dist-info/METADATA$")
_DPKG_STATUS = "/var/lib/dpkg/status"


@dataclass(frozen=True, order=True)
class Component:
    kind: str  # "pypi" or "deb"
    name: str
    version: str
    arch: str = ""

    @property
    def purl(self) -> str:
        if self.kind == "pypi":
            return f"pkg:pypi/{self.name.lower().replace('_', '-')}@{self.version}"
        return f"pkg:deb/debian/{self.name}@{self.version}" + (f"?arch={self.arch}" if self.arch else "")

    def to_cyclonedx(self) -> dict[str, Any]:
        return {
            "type": "library",
            "bom-ref": self.purl,
            "name": self.name,
            "version": self.version,
            "purl": self.purl,
        }


def _dpkg_installed(text: str) -> list[Component]:
    found = []
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line and not line[0].isspace() and ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if fields.get("Package") and "installed" in fields.get("Status", "").split():
            found.append(
                Component("deb", fields["Package"], fields.get("Version", ""), fields.get("Architecture", ""))
            )
    return found


def image_components(oci: Path) -> list[Component]:
    """What the image's final filesystem holds: later layers replace earlier ones' files."""
    image = read_oci(oci)
    files: dict[str, bytes] = {}
    with tarfile.open(oci) as outer:
        for layer_digest, layer in zip(image.layer_digests, image.manifest["layers"], strict=True):
            algo, _, hexdigest = layer_digest.partition(":")
            blob = outer.extractfile(f"blobs/{algo}/{hexdigest}")
            if blob is None:
                continue
            mode = "r|gz" if "gzip" in layer.get("mediaType", "") else "r|*"
            with tarfile.open(fileobj=blob, mode=mode) as tar:  # type: ignore[call-overload]
                for member in tar:
                    path = image_path(member.name)
                    name = path.rsplit("/", 1)[-1]
                    if name.startswith(".wh."):  # a whiteout: the file is gone from the image
                        files.pop(path.rsplit("/", 1)[0] + "/" + name[4:], None)
                        continue
                    if member.isfile() and (path == _DPKG_STATUS or _DIST_INFO.search(path)):
                        data = tar.extractfile(member)
                        files[path] = data.read() if data is not None else b""
    components: set[Component] = set()
    for path, data in files.items():
        text = data.decode("utf-8", "replace")
        if path == _DPKG_STATUS:
            components.update(_dpkg_installed(text))
        else:
            headers = HeaderParser().parsestr(text, headersonly=True)
            if headers.get("Name") and headers.get("Version"):
                components.add(Component("pypi", str(headers["Name"]), str(headers["Version"])))
    return sorted(components)


def sbom_from_oci(oci: Path, *, name: str, source_date_epoch: int) -> dict[str, Any]:
    """A CycloneDX 1.5 JSON document for the image in `oci`, named `name`."""
    digest = read_oci(oci).digest
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'oci:{name}@{digest}')}",
        "version": 1,
        "metadata": {
            "timestamp": datetime.fromtimestamp(source_date_epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tools": {"components": [{"type": "application", "name": "harness"}]},
            "component": {
                "type": "container",
                "bom-ref": f"{name}@{digest}",
                "name": name,
                "version": digest,
                "hashes": [{"alg": "SHA-256", "content": digest.removeprefix("sha256:")}],
            },
        },
        "components": [c.to_cyclonedx() for c in image_components(oci)],
    }


def write_sbom(oci: Path, dest: Path, *, name: str, source_date_epoch: int) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    document = sbom_from_oci(oci, name=name, source_date_epoch=source_date_epoch)
    dest.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    return dest
