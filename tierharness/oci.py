"""Reading OCI image tarballs (what `buildx --output type=oci` and `docker save` write):
the manifest, the config, and every layer's files with their metadata and content hash."""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tierharness.errors import HarnessError

__all__ = ["FileEntry", "OciImage", "read_oci"]

_INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
_TAR_TYPES = {
    tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink",
    tarfile.LNKTYPE: "hardlink", tarfile.CHRTYPE: "char", tarfile.BLKTYPE: "block", tarfile.FIFOTYPE: "fifo",
}  # fmt: skip


@dataclass(frozen=True)
class FileEntry:
    path: str
    type: str
    mode: int
    uid: int
    gid: int
    size: int
    mtime: int
    sha256: str | None
    link: str | None

    def fields(self) -> dict[str, Any]:
        return {
            "type": self.type, "mode": oct(self.mode), "owner": f"{self.uid}:{self.gid}", "size": self.size,
            "mtime": self.mtime, "sha256": self.sha256, "link": self.link,
        }  # fmt: skip


@dataclass
class OciImage:
    source: str
    digest: str  # the platform manifest's digest
    manifest: dict[str, Any]
    config: dict[str, Any]
    layer_digests: list[str]
    _path: Path = field(repr=False, default=Path())
    # First bytes of small changed files, kept for explanations (e.g. a .pyc header).
    heads: dict[tuple[int, str], bytes] = field(default_factory=dict, repr=False)

    @contextmanager
    def _layer(self, index: int) -> Iterator[tarfile.TarFile]:
        """Layer `index`, streamed from the tarball (layers can be hundreds of MB)."""
        digest = self.layer_digests[index]
        media = self.manifest["layers"][index].get("mediaType", "")
        with tarfile.open(self._path) as outer:
            blob = outer.extractfile(_blob_name(digest))
            if blob is None:
                raise HarnessError(
                    f"{self.source}: layer {digest} missing", checked="OCI layout", fix="re-export"
                )
            mode = "r|gz" if "gzip" in media else "r|*"
            with tarfile.open(fileobj=blob, mode=mode) as layer:  # type: ignore[call-overload]
                yield layer

    def walk_layer(self, index: int) -> Iterator[tuple[tarfile.TarInfo, IO[bytes] | None]]:
        """Every member of layer `index` with a reader for its content (None unless a regular
        file), streamed: read each file before asking for the next member."""
        with self._layer(index) as layer:
            for member in layer:
                yield member, (layer.extractfile(member) if member.isfile() else None)

    def layer_files(self, index: int) -> dict[str, FileEntry]:
        """Every entry of layer `index`, by path (absolute, like inside the image). The first
        bytes of each file are kept in `heads`, for explanations (a .pyc header, say)."""
        entries: dict[str, FileEntry] = {}
        with self._layer(index) as layer:
            for member in layer:
                path = image_path(member.name)
                sha = None
                if member.isfile():
                    sha, self.heads[(index, path)] = _hash_and_head(layer.extractfile(member))
                entries[path] = FileEntry(
                    path=path,
                    type=_TAR_TYPES.get(member.type, "other"),
                    mode=member.mode,
                    uid=member.uid,
                    gid=member.gid,
                    size=member.size,
                    mtime=int(member.mtime),
                    sha256=sha,
                    link=member.linkname or None,
                )
        return entries

    def read_file(self, index: int, path: str) -> bytes | None:
        """The content of regular file `path` in layer `index`, or None."""
        with self._layer(index) as layer:
            for member in layer:
                if member.isfile() and image_path(member.name) == path:
                    data = layer.extractfile(member)
                    return data.read() if data else b""
        return None


def image_path(member_name: str) -> str:
    """A layer member's name as a path inside the image: `./etc/passwd` -> `/etc/passwd`."""
    name = member_name.removeprefix("./").strip("/")
    return "/" + name if name not in ("", ".") else "/"


def _blob_name(digest: str) -> str:
    algo, _, hexdigest = digest.partition(":")
    return f"blobs/{algo}/{hexdigest}"


def _hash_and_head(data: IO[bytes] | None) -> tuple[str, bytes]:
    digest = hashlib.sha256()
    first = b""
    if data is not None:
        while chunk := data.read(1 << 20):
            if not first:
                first = chunk[:4096]
            digest.update(chunk)
    return digest.hexdigest(), first


def _json_blob(tar: tarfile.TarFile, digest: str) -> dict[str, Any]:
    member = tar.extractfile(_blob_name(digest))
    if member is None:
        raise HarnessError(f"missing blob {digest}", checked="OCI layout", fix="re-export the image")
    data: dict[str, Any] = json.load(member)
    return data


def read_oci(path: Path) -> OciImage:
    """The single-platform image in an OCI tarball (nested indexes are followed)."""
    try:
        tar = tarfile.open(path)  # noqa: SIM115 - closed by the `with tar:` below
    except (OSError, tarfile.TarError) as exc:
        raise HarnessError(
            f"{path} is not a readable image tarball: {exc}",
            checked="an OCI layout tar (index.json + blobs/)",
            fix="export with `docker buildx build --output type=oci,dest=...` or `docker save`",
        ) from exc
    with tar:
        member = tar.extractfile("index.json")
        if member is None:
            raise HarnessError(
                f"{path} has no index.json",
                checked="OCI layout",
                fix="export it as OCI (or with docker save)",
            )
        entry = json.load(member)["manifests"][0]
        while entry.get("mediaType") in _INDEX_TYPES:
            nested = _json_blob(tar, entry["digest"])["manifests"]
            entry = next(
                (m for m in nested if m.get("platform", {}).get("architecture") != "unknown"), nested[0]
            )
        manifest = _json_blob(tar, entry["digest"])
        config = _json_blob(tar, manifest["config"]["digest"])
    return OciImage(
        source=str(path),
        digest=entry["digest"],
        manifest=manifest,
        config=config,
        layer_digests=[layer["digest"] for layer in manifest["layers"]],
        _path=path,
    )
