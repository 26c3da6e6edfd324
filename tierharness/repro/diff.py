"""Why two builds of an image differ: down to the layer, the file and the field, with a
likely cause for each difference. Renders JSON and Markdown reports."""

from __future__ import annotations

import json
import re
import shutil
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tierharness.oci import FileEntry, OciImage
from tierharness.process import run
from tierharness.scratch import scratch_folder

__all__ = ["ChangedFile", "ImageDiff", "LayerDiff", "diff_images", "explain", "step_label", "write_reports"]

ARCHIVE_SUFFIXES = (".whl", ".zip", ".jar", ".egg", ".tar", ".tar.gz", ".tgz", ".gz", ".xz", ".bz2", ".zst")
MAX_LISTED = 200  # per layer and kind; the JSON report says how many were left out


@dataclass
class ChangedFile:
    path: str
    fields: dict[str, list[Any]]  # field -> [a, b]
    kind: str | None  # "pyc", "archive" or None
    why: str
    deep_diff: str | None = None


@dataclass
class LayerDiff:
    index: int
    created_by: str
    a_digest: str | None
    b_digest: str | None
    added: list[str] = field(default_factory=list)  # only in b
    removed: list[str] = field(default_factory=list)  # only in a
    changed: list[ChangedFile] = field(default_factory=list)
    left_out: int = 0

    @property
    def same(self) -> bool:
        return self.a_digest == self.b_digest


@dataclass
class ImageDiff:
    a: str
    b: str
    a_digest: str
    b_digest: str
    config: list[dict[str, Any]]
    layers: list[LayerDiff]

    @property
    def reproducible(self) -> bool:
        return self.a_digest == self.b_digest

    def offending_paths(self) -> list[str]:
        paths: list[str] = []
        for layer in self.layers:
            paths += [c.path for c in layer.changed] + layer.added + layer.removed
        return paths

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["reproducible"] = self.reproducible
        for layer, raw in zip(self.layers, data["layers"], strict=True):
            raw["same"] = layer.same
        return data

    def summary(self) -> list[str]:
        lines = []
        for item in self.config:
            lines.append(f"config {item['path']}: {item['a']!r} != {item['b']!r}")
        for layer in self.layers:
            if layer.same:
                continue
            where = f"layer {layer.index} ({layer.created_by[:80]})"
            for change in layer.changed:
                lines.append(f"{where}: {change.path} changed ({', '.join(change.fields)}): {change.why}")
            for path in layer.added:
                lines.append(f"{where}: {path} only in the second build")
            for path in layer.removed:
                lines.append(f"{where}: {path} only in the first build")
            if layer.left_out:
                lines.append(f"{where}: and {layer.left_out} more difference(s), see the JSON report")
        return lines

    def to_markdown(self) -> str:
        verdict = "reproducible" if self.reproducible else "NOT reproducible"
        out = [
            f"# Image comparison: {verdict}",
            "",
            f"- first:  `{self.a}` — `{self.a_digest}`",
            f"- second: `{self.b}` — `{self.b_digest}`",
            "",
        ]
        if self.config:
            out += ["## Image config", "", "| field | first | second |", "|---|---|---|"]
            out += [f"| `{c['path']}` | `{c['a']}` | `{c['b']}` |" for c in self.config]
            out.append("")
        for layer in self.layers:
            if layer.same:
                continue
            out += [f"## Layer {layer.index}: `{layer.created_by}`", ""]
            out += [f"- first `{layer.a_digest}`", f"- second `{layer.b_digest}`", ""]
            if layer.changed:
                out += ["| path | what differs | kind | likely cause |", "|---|---|---|---|"]
                for c in layer.changed:
                    what = "; ".join(f"{k}: {v[0]} → {v[1]}" for k, v in c.fields.items())
                    out.append(f"| `{c.path}` | {what} | {c.kind or ''} | {c.why} |")
                out.append("")
            for title, paths in (
                ("Only in the second build", layer.added),
                ("Only in the first build", layer.removed),
            ):
                if paths:
                    out += [f"{title}:", "", *[f"- `{p}`" for p in paths], ""]
            for c in layer.changed:
                if c.deep_diff:
                    out += [f"diffoscope on `{c.path}`:", "", "```", c.deep_diff, "```", ""]
            if layer.left_out:
                out += [f"... and {layer.left_out} more (see the JSON report).", ""]
        return "\n".join(out)


def _kind(path: str) -> str | None:
    if path.endswith(".pyc"):
        return "pyc"
    if path.endswith(ARCHIVE_SUFFIXES):
        return "archive"
    return None


def _pyc_header(head: bytes) -> tuple[int, int] | None:
    """(flags, source mtime) of a .pyc header: flags 0 means timestamp-based invalidation."""
    if len(head) < 16:
        return None
    flags, mtime = struct.unpack("<II", head[4:12])
    return flags, mtime


def explain(path: str, fields: dict[str, list[Any]], heads: tuple[bytes, bytes] = (b"", b"")) -> str:
    """The likely cause of a difference, and what fixes it."""
    if path.startswith("/var/cache/apt/") and path.endswith(".bin"):
        return "apt's binary package cache, left by `apt-get update`; remove /var/cache/apt/*.bin in that RUN"
    if path.startswith("/var/lib/apt/lists/"):
        return "apt's package lists; remove /var/lib/apt/lists/* in the same RUN"
    if path.startswith(("/var/log/", "/var/cache/ldconfig/")):
        return "a log or cache written during the build; remove it in the same RUN"
    kind = _kind(path)
    if kind == "pyc" and "sha256" in fields:
        headers = [_pyc_header(h) for h in heads]
        if any(h is not None and h[0] == 0 for h in headers):
            stamps = ", ".join(str(h[1]) if h else "?" for h in headers)
            return (
                "timestamp-based .pyc (compiled without SOURCE_DATE_EPOCH): its header records the source's "
                f"mtime ({stamps}); compile with --invalidation-mode checked-hash or pass SOURCE_DATE_EPOCH "
                "to the RUN step (ARG SOURCE_DATE_EPOCH)"
            )
        return "hash-based .pyc whose source differs: look at the .py beside it"
    if kind == "archive" and "sha256" in fields:
        return "both sides are archives: members differ inside (timestamps, order, content); see diffoscope"
    if "sha256" in fields or "size" in fields:
        return (
            "content differs: a build step writes something that changes from run to run "
            "(a date, a random value, a build path, a host name)"
        )
    reasons = []
    if "mtime" in fields:
        reasons.append(
            "the timestamp differs: older than SOURCE_DATE_EPOCH, so not clamped; "
            "set it in the build (touch -d @$SOURCE_DATE_EPOCH)"
        )
    if "mode" in fields:
        reasons.append(
            "permissions differ: they follow the checkout's or the build's umask; normalise them (chmod)"
        )
    if "owner" in fields:
        reasons.append("ownership differs: set it explicitly (COPY --chown, chown)")
    if reasons:
        return "; ".join(reasons)
    return "metadata differs: " + ", ".join(fields)


def _compare_entries(a: FileEntry, b: FileEntry) -> dict[str, list[Any]]:
    fa, fb = a.fields(), b.fields()
    return {k: [fa[k], fb[k]] for k in fa if fa[k] != fb[k]}


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(_flatten(inner, f"{prefix}.{key}" if prefix else key))
        return out
    if isinstance(value, list):
        out = {}
        for i, inner in enumerate(value):
            out.update(_flatten(inner, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def _config_diff(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    # Layer identities (rootfs.diff_ids) are reported per layer, not here.
    fa = {k: v for k, v in _flatten(a).items() if not k.startswith("rootfs.")}
    fb = {k: v for k, v in _flatten(b).items() if not k.startswith("rootfs.")}
    return [
        {"path": k, "a": fa.get(k), "b": fb.get(k)}
        for k in sorted(set(fa) | set(fb))
        if fa.get(k) != fb.get(k)
    ]


_BUILD_ARGS = re.compile(r"^RUN \|\d+ (?:[A-Za-z_][A-Za-z0-9_]*=\S* )*")


def step_label(created_by: str) -> str:
    """`RUN |3 A=1 B=2 /bin/sh -c make # buildkit` -> `RUN make`: the instruction a person wrote."""
    label = _BUILD_ARGS.sub("RUN ", created_by.strip())
    label = label.replace("/bin/sh -c ", "", 1).removesuffix(" # buildkit")
    return label


def _created_by(config: dict[str, Any]) -> list[str]:
    """History entries that produced a layer, in layer order."""
    return [
        step_label(h.get("created_by", "")) for h in config.get("history", []) if not h.get("empty_layer")
    ]


def _deep_diff(a: OciImage, b: OciImage, index: int, path: str) -> str | None:
    tool = shutil.which("diffoscope")
    if tool is None:
        return None
    with scratch_folder("diffoscope") as tmp:
        files = []
        for side, image in (("first", a), ("second", b)):
            target = Path(tmp) / side / Path(path).name
            target.parent.mkdir(parents=True)
            target.write_bytes(image.read_file(index, path) or b"")
            files.append(str(target))
        # diffoscope exits 1 when the files differ, which is the point: its text is the answer.
        proc = run(
            [tool, "--text", "-", *files],
            what=f"diffoscope on {path}",
            fix="the deep diff is optional: uninstall diffoscope to skip it",
            check=False,
            timeout=120,
        )
        return proc.stdout[-5000:] or None


def diff_images(a: OciImage, b: OciImage, *, deep: bool = True) -> ImageDiff:
    history_a, history_b = _created_by(a.config), _created_by(b.config)
    layers: list[LayerDiff] = []
    for index in range(max(len(a.layer_digests), len(b.layer_digests))):
        da = a.layer_digests[index] if index < len(a.layer_digests) else None
        db = b.layer_digests[index] if index < len(b.layer_digests) else None
        created = (history_a[index] if index < len(history_a) else "") or (
            history_b[index] if index < len(history_b) else ""
        )
        layer = LayerDiff(index, created.strip(), da, db)
        layers.append(layer)
        if da == db:
            continue
        files_a = a.layer_files(index) if da else {}
        files_b = b.layer_files(index) if db else {}
        removed = sorted(set(files_a) - set(files_b))
        added = sorted(set(files_b) - set(files_a))
        changed = []
        for path in sorted(set(files_a) & set(files_b)):
            fields = _compare_entries(files_a[path], files_b[path])
            if fields:
                heads = (a.heads.get((index, path), b""), b.heads.get((index, path), b""))
                changed.append(ChangedFile(path, fields, _kind(path), explain(path, fields, heads)))
        total = len(removed) + len(added) + len(changed)
        layer.removed, layer.added, layer.changed = (
            removed[:MAX_LISTED],
            added[:MAX_LISTED],
            changed[:MAX_LISTED],
        )
        layer.left_out = max(0, total - len(layer.removed) - len(layer.added) - len(layer.changed))
        if deep:
            for change in layer.changed[:5]:
                if "sha256" in change.fields:
                    change.deep_diff = _deep_diff(a, b, index, change.path)
    return ImageDiff(a.source, b.source, a.digest, b.digest, _config_diff(a.config, b.config), layers)


def write_reports(diff: ImageDiff, folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / "report.json", folder / "report.md"
    json_path.write_text(json.dumps(diff.to_json(), indent=2) + "\n", encoding="utf-8")
    md_path.write_text(diff.to_markdown() + "\n", encoding="utf-8")
    return json_path, md_path
