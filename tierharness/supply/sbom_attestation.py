"""The SBOM attested next to a published image: the security gate's CycloneDX document
(`tierharness.security.sbom_document`: the virtualenv's distributions and the dpkg status, with versions,
licences and hashes), made from the OCI tarball alone. Deterministic, so the same image
always gets the same SBOM."""

from __future__ import annotations

from pathlib import Path

from tierharness import __version__
from tierharness.security.image_scan import layer_cache, view_image
from tierharness.security.sbom_document import Component, components, sbom_document
from tierharness.security.sbom_document import write_sbom as _write_document

__all__ = ["image_components", "write_sbom"]


def image_components(oci: Path) -> list[Component]:
    """The image's components (Debian packages, Python distributions, the service itself)."""
    return components(view_image(oci, layer_cache()))


def write_sbom(oci: Path, dest: Path, *, name: str) -> Path:
    """The image's CycloneDX SBOM, named `name`, written to `dest`."""
    return _write_document(sbom_document(view_image(oci, layer_cache()), name, __version__), dest)
