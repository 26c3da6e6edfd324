"""Small OCI image tarballs written directly, for tests of what reads them: no engine,
no build, milliseconds. Each layer maps a path to bytes (a file), (bytes, mode), or None
(a whiteout: this layer deletes the path)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

Layer = dict[str, "bytes | tuple[bytes, int] | None"]


def _tar(layer: Layer) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, content in layer.items():
            name = path.lstrip("/")
            if content is None:
                folder, _, base = name.rpartition("/")
                name, data, mode = f"{folder}/.wh.{base}" if folder else f".wh.{base}", b"", 0o644
            elif isinstance(content, tuple):
                data, mode = content
            else:
                data, mode = content, 0o644
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def write_oci(
    dest: Path,
    layers: list[Layer],
    *,
    config: dict[str, Any] | None = None,
    history: list[str] | None = None,
) -> Path:
    """An OCI layout tarball at `dest`. `history` is one `created_by` per layer (empty-layer
    entries such as ENV or LABEL can be added as "ENV ..." strings after a "|empty|" prefix)."""
    blobs: dict[str, bytes] = {}

    def put(data: bytes) -> dict[str, Any]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return {"digest": digest, "size": len(data)}

    layer_descs = [
        {"mediaType": "application/vnd.oci.image.layer.v1.tar", **put(_tar(layer))} for layer in layers
    ]
    entries = []
    for created_by in history or [f"layer {i}" for i in range(len(layers))]:
        empty = created_by.startswith("|empty|")
        entries.append(
            {"created_by": created_by.removeprefix("|empty|"), **({"empty_layer": True} if empty else {})}
        )
    image_config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2026-01-01T00:00:00Z",
        "config": config
        if config is not None
        else {"User": "10001:10001", "Healthcheck": {"Test": ["CMD", "true"]}},
        "rootfs": {"type": "layers", "diff_ids": [d["digest"] for d in layer_descs]},
        "history": entries,
    }
    config_desc = {
        "mediaType": "application/vnd.oci.image.config.v1+json",
        **put(json.dumps(image_config).encode()),
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_desc,
        "layers": layer_descs,
    }
    manifest_desc = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        **put(json.dumps(manifest).encode()),
    }
    index = {"schemaVersion": 2, "manifests": [manifest_desc]}
    with tarfile.open(dest, "w") as out:
        for name, data in [
            ("oci-layout", b'{"imageLayoutVersion": "1.0.0"}'),
            ("index.json", json.dumps(index).encode()),
            *((f"blobs/sha256/{d.split(':')[1]}", b) for d, b in blobs.items()),
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
    return dest
