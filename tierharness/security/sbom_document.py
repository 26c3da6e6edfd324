"""A CycloneDX (JSON, 1.6) bill of materials of the production image, from its OCI tarball:
the Python packages of its virtualenv(s), from their dist-info METADATA, and the Debian
packages of its dpkg status, each with version, purl, licence where known and a hash.

The hash is of the package's installed-files list as the image holds it (the wheel's
RECORD, dpkg's md5sums), which itself lists every file's digest: a change to any
installed file changes it. The document is deterministic: same image, same bytes.
"""

from __future__ import annotations

import email.parser
import json
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tierharness.security.image_scan import ImageView

__all__ = ["Component", "components", "sbom_document", "validate_sbom", "write_sbom"]

# Trove classifiers and free-text License fields, as SPDX ids where the meaning is unambiguous.
_SPDX = {
    "mit license": "MIT",
    "mit": "MIT",
    "apache software license": "Apache-2.0",
    "apache 2.0": "Apache-2.0",
    "apache-2.0": "Apache-2.0",
    "apache license 2.0": "Apache-2.0",
    "isc license (iscl)": "ISC",
    "python software foundation license": "PSF-2.0",
    "mozilla public license 2.0 (mpl 2.0)": "MPL-2.0",
    "gnu lesser general public license v3 (lgplv3)": "LGPL-3.0-only",
    "bsd-3-clause": "BSD-3-Clause",
    "bsd-2-clause": "BSD-2-Clause",
    "bsd 3-clause": "BSD-3-Clause",
}


@dataclass
class Component:
    kind: str  # "python", "application" (the image's own code) or "debian"
    name: str
    version: str
    purl: str
    licences: list[str] = field(default_factory=list)
    expression: str | None = None  # an SPDX expression, when the package states one
    sha256: str | None = None
    hash_of: str = ""

    def licence_names(self) -> list[str]:
        return [self.expression] if self.expression else self.licences


def _python(view: ImageView) -> list[Component]:
    found = []
    for path, text in sorted(view.captured.items()):
        if not path.endswith(".dist-info/METADATA"):
            continue
        meta = email.parser.HeaderParser().parsestr(text)
        name, version = meta.get("Name", "?"), meta.get("Version", "?")
        comp = Component("python", name, version, f"pkg:pypi/{name.lower().replace('_', '-')}@{version}")
        expression = (meta.get("License-Expression") or "").strip()
        if expression:
            comp.expression = expression
        else:
            free = (meta.get("License") or "").strip()
            classifiers = [
                c.split("::")[-1].strip()
                for c in meta.get_all("Classifier") or []
                if c.startswith("License ::")
            ]
            names = classifiers or ([free] if free and "\n" not in free and len(free) < 60 else [])
            comp.licences = sorted({_SPDX.get(n.lower(), n) for n in names})
        record = path.rsplit("/", 1)[0] + "/RECORD"
        comp.sha256, comp.hash_of = view.hashes.get(record), "RECORD"
        found.append(comp)
    return found


def _debian(view: ImageView) -> list[Component]:
    status = view.captured.get("/var/lib/dpkg/status", "")
    found = []
    for paragraph in status.split("\n\n"):
        fields: dict[str, str] = dict(re.findall(r"^([A-Za-z-]+): ?(.*)$", paragraph, flags=re.MULTILINE))
        if "Package" not in fields or not fields.get("Status", "").endswith(" installed"):
            continue
        name, version, arch = fields["Package"], fields.get("Version", "?"), fields.get("Architecture", "all")
        comp = Component("debian", name, version, f"pkg:deb/debian/{name}@{version}?arch={arch}")
        source = fields.get("Source", name).split()[0]
        for doc in (name, source):
            copyright_text = view.captured.get(f"/usr/share/doc/{doc}/copyright")
            if copyright_text:
                names = {ln.split(":", 1)[1].strip() for ln in copyright_text.splitlines()}
                # Non-DEP-5 files put licence text after "License:"; only short names are names.
                comp.licences = sorted(n for n in names if n and len(n.split()) <= 5)
                break
        for candidate in (f"/var/lib/dpkg/info/{name}:{arch}.md5sums", f"/var/lib/dpkg/info/{name}.md5sums"):
            if candidate in view.hashes:
                comp.sha256, comp.hash_of = view.hashes[candidate], "dpkg md5sums"
                break
        found.append(comp)
    return found


def _first_party(view: ImageView, image_name: str) -> list[Component]:
    """The image's own Python code (under its WORKDIR, from no distribution): listed so the
    bill names everything that runs, not only what was installed."""
    workdir = str(view.config.get("WorkingDir") or "").rstrip("/")
    if not workdir or not any(p.startswith(workdir + "/") and p.endswith(".py") for p in view.files):
        return []
    labels = view.config.get("Labels") or {}
    version = labels.get("org.opencontainers.image.revision") or view.image.digest
    return [
        Component("application", image_name, version, f"pkg:generic/{image_name.replace('/', '-')}@{version}")
    ]


def components(view: ImageView, image_name: str = "app") -> list[Component]:
    return _python(view) + _first_party(view, image_name) + _debian(view)


def _licences_json(comp: Component) -> list[dict[str, Any]]:
    if comp.expression:
        return [{"expression": comp.expression}]
    out: list[dict[str, Any]] = []
    for name in comp.licences:
        is_id = name in _SPDX.values()
        out.append({"license": {"id": name} if is_id else {"name": name}})
    return out


def sbom_document(view: ImageView, image_name: str, tool_version: str) -> dict[str, Any]:
    comps = components(view, image_name)
    created = view.image.config.get("created") or "1970-01-01T00:00:00Z"
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        # Derived from the image digest: the same image always gets the same document.
        "serialNumber": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, view.image.digest)}",
        "version": 1,
        "metadata": {
            "timestamp": created[:19] + "Z" if not created.endswith("Z") else created,
            "tools": {"components": [{"type": "application", "name": "harness", "version": tool_version}]},
            "component": {
                "type": "container",
                "bom-ref": view.image.digest,
                "name": image_name,
                "version": view.image.digest,
            },
        },
        "components": [
            {
                "type": "application" if c.kind == "application" else "library",
                "bom-ref": c.purl,
                "name": c.name,
                "version": c.version,
                "purl": c.purl,
                **({"licenses": _licences_json(c)} if c.licence_names() else {}),
                **({"hashes": [{"alg": "SHA-256", "content": c.sha256}]} if c.sha256 else {}),
                "properties": [
                    {"name": "harness:ecosystem", "value": c.kind},
                    *([{"name": "harness:hash-of", "value": c.hash_of}] if c.sha256 else []),
                ],
            }
            for c in comps
        ],
    }


def validate_sbom(document: dict[str, Any]) -> str | None:
    """The first schema error, or None. Uses cyclonedx-python-lib's validator when it is
    installed (the security session installs it)."""
    try:
        from cyclonedx.schema import SchemaVersion  # noqa: PLC0415  lazy: cyclonedx is the optional `security` extra
        from cyclonedx.validation.json import JsonStrictValidator  # noqa: PLC0415  lazy: cyclonedx is the optional `security` extra
    except ImportError:
        return None
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(document))
    return None if error is None else str(error)[:500]


def write_sbom(document: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path
