"""The image differ on hand-made OCI tarballs: no engine needed to check what it reports."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import struct
import tarfile
from pathlib import Path

import pytest

from tierharness.errors import HarnessError
from tierharness.oci import read_oci
from tierharness.repro.diff import diff_images, explain, step_label, write_reports

Files = dict[str, tuple[bytes, int, int]]  # path -> (content, mode, mtime)


def _layer(files: Files) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for path, (content, mode, mtime) in sorted(files.items()):
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode, info.mtime = len(content), mode, mtime
            tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), mtime=0)


def make_oci(path: Path, layers: list[Files], env: list[str], steps: list[str]) -> Path:
    blobs: dict[str, bytes] = {}

    def put(data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return digest

    layer_digests = [put(_layer(files)) for files in layers]
    config = {
        "architecture": "amd64", "os": "linux", "config": {"Env": env},
        "rootfs": {"type": "layers", "diff_ids": layer_digests},
        "history": [{"created_by": s} for s in steps],
    }  # fmt: skip
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": put(json.dumps(config).encode()),
        },
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": len(blobs[d])}
            for d in layer_digests
        ],
    }
    manifest_digest = put(json.dumps(manifest).encode())
    index = {
        "schemaVersion": 2,
        "manifests": [{"mediaType": manifest["mediaType"], "digest": manifest_digest}],
    }
    with tarfile.open(path, "w") as tar:
        for name, data in [("index.json", json.dumps(index).encode())] + [
            (f"blobs/sha256/{d.split(':')[1]}", b) for d, b in blobs.items()
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _pyc(flags: int, mtime: int) -> bytes:
    return b"\xf3\r\r\n" + struct.pack("<III", flags, mtime, 10) + b"code"


BASE: Files = {"/etc/os-release": (b"debian\n", 0o644, 100), "/bin/tool": (b"x", 0o755, 100)}


def test_identical_images_are_reproducible(tmp_path: Path) -> None:
    a = make_oci(tmp_path / "a.tar", [BASE], ["A=1"], ["ADD rootfs"])
    b = make_oci(tmp_path / "b.tar", [BASE], ["A=1"], ["ADD rootfs"])
    diff = diff_images(read_oci(a), read_oci(b))
    assert diff.reproducible
    assert diff.summary() == []


def test_differences_are_named_by_layer_file_and_field(tmp_path: Path) -> None:
    second_a: Files = {
        "/app/stamp": (b"1\n", 0o644, 200),
        "/app/m.pyc": (_pyc(0, 1000), 0o644, 200),
        "/app/wheel.whl": (b"zip-a", 0o644, 200),
        "/app/mode": (b"same", 0o644, 200),
        "/app/old": (b"same", 0o644, 5),
        "/tmp/gone": (b"", 0o644, 200),
    }
    second_b: Files = {
        "/app/stamp": (b"2\n", 0o644, 200),
        "/app/m.pyc": (_pyc(0, 2000), 0o644, 200),
        "/app/wheel.whl": (b"zip-b", 0o644, 200),
        "/app/mode": (b"same", 0o664, 200),
        "/app/old": (b"same", 0o644, 6),
        "/tmp/new": (b"", 0o644, 200),
    }
    steps = ["ADD rootfs", "RUN |2 A=1 B=2 /bin/sh -c make stuff # buildkit"]
    a = make_oci(tmp_path / "a.tar", [BASE, second_a], ["A=1"], steps)
    b = make_oci(tmp_path / "b.tar", [BASE, second_b], ["A=2"], steps)
    diff = diff_images(read_oci(a), read_oci(b), deep=False)
    assert not diff.reproducible
    assert diff.config == [{"path": "config.Env[0]", "a": "A=1", "b": "A=2"}]
    assert diff.layers[0].same
    layer = diff.layers[1]
    assert layer.created_by == "RUN make stuff"
    assert layer.added == ["/tmp/new"]
    assert layer.removed == ["/tmp/gone"]
    changes = {c.path: c for c in layer.changed}
    assert set(changes) == {"/app/stamp", "/app/m.pyc", "/app/wheel.whl", "/app/mode", "/app/old"}
    assert changes["/app/mode"].fields == {"mode": ["0o644", "0o664"]}
    assert "umask" in changes["/app/mode"].why
    assert changes["/app/old"].fields == {"mtime": [5, 6]}
    assert changes["/app/old"].why.startswith("the timestamp differs")
    assert changes["/app/m.pyc"].kind == "pyc"
    assert "1000, 2000" in changes["/app/m.pyc"].why
    assert changes["/app/wheel.whl"].kind == "archive"
    assert "content differs" in changes["/app/stamp"].why
    json_path, md_path = write_reports(diff, tmp_path / "report")
    assert json.loads(json_path.read_text())["reproducible"] is False
    markdown = md_path.read_text()
    assert "NOT reproducible" in markdown
    assert "`/app/stamp`" in markdown
    assert "## Layer 1: `RUN make stuff`" in markdown


def test_a_missing_layer_is_reported_whole(tmp_path: Path) -> None:
    a = make_oci(tmp_path / "a.tar", [BASE], [], ["ADD rootfs"])
    b = make_oci(tmp_path / "b.tar", [BASE, {"/extra": (b"x", 0o644, 1)}], [], ["ADD rootfs", "RUN extra"])
    diff = diff_images(read_oci(a), read_oci(b), deep=False)
    assert diff.layers[1].a_digest is None
    assert diff.layers[1].added == ["/extra"]


@pytest.mark.parametrize(
    ("path", "fields", "expected"),
    [
        ("/var/cache/apt/pkgcache.bin", {"sha256": [1, 2]}, "apt-get update"),
        ("/var/lib/apt/lists/x_Packages", {"sha256": [1, 2]}, "package lists"),
        ("/var/log/dpkg.log", {"sha256": [1, 2]}, "log or cache"),
        ("/x", {"owner": ["0:0", "1:1"]}, "ownership"),
        ("/x.pyc", {"sha256": [1, 2]}, "hash-based .pyc"),
        ("/x", {"link": ["a", "b"]}, "metadata differs: link"),
    ],
)
def test_explanations(path: str, fields: dict, expected: str) -> None:
    assert expected in explain(path, fields)


def test_step_label_strips_buildkit_noise() -> None:
    assert step_label("RUN |1 SOURCE_DATE_EPOCH=1 /bin/sh -c echo hi # buildkit") == "RUN echo hi"
    assert step_label("COPY /app /app # buildkit") == "COPY /app /app"


def test_not_an_image_is_a_clear_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_text("not a tar")
    with pytest.raises(HarnessError, match="docker save"):
        read_oci(junk)
