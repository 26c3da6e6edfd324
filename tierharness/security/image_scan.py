"""The built image, read from its OCI tarball: secrets in every layer (files deleted by a
later layer included), in `Env`, labels and every history entry's `created_by`; the final
filesystem's user, setuid/setgid bits, compilers and pip; the HEALTHCHECK.

Reading every layer costs seconds per hundred MB, so each layer's scan is kept in the
machine's cache (`layer_cache()`: every checkout shares it, as BuildKit's cache is shared),
keyed by the layer's digest and by the rules that made it: content-addressed, it cannot go
stale. A fresh clone reads only the layers that changed, usually the service's own.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tierharness.config import machine_cache
from tierharness.oci import OciImage, image_path, read_oci
from tierharness.security.findings import CheckResult, Finding
from tierharness.security.kept import keep, read_kept
from tierharness.security.secret_scan import CONFIG_RULES, FILE_RULES, match_rules

__all__ = ["ImageView", "LayerScan", "layer_cache", "scan_image", "view_image"]

# Bump when what a LayerScan holds changes: older cache files are then ignored. (A change of
# the rules or patterns below changes the cache key by itself: see `_cache_key`.)
_CACHE_VERSION = "2"
_MAX_SCANNED = 32 << 20  # bigger files are databases and archives, not where keys are left
COMPILERS = frozenset({"gcc", "cc", "c++", "g++", "clang", "clang++", "tcc", "as", "ld", "make", "cpp"})
_BIN_DIRS = frozenset({"/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"})
# pip itself, or a pip wheel that ensurepip would install (bundled, or Debian's python-wheels).
_PIP = re.compile(
    r"(?:/bin/pip[0-9.]*|/(?:site|dist)-packages/pip/__init__\.py"
    r"|/ensurepip/_bundled/pip-[^/]+\.whl|/python-wheels/pip-[^/]+\.whl)$"
)
# What the SBOM needs from the filesystem, kept as text.
_CAPTURE = re.compile(
    r"^(?:/var/lib/dpkg/status|.*/site-packages/[^/]+\.dist-info/METADATA|/usr/share/doc/[^/]+/copyright)$"
)
# Hashes of the installed-files lists: the SBOM's hash of each package.
_HASHED = re.compile(r"^(?:/var/lib/dpkg/info/[^/]+\.md5sums|.*/site-packages/[^/]+\.dist-info/RECORD)$")


@dataclass
class LayerScan:
    digest: str
    entries: dict[str, tuple[str, int]] = field(default_factory=dict)  # path -> (type, mode)
    deleted: list[str] = field(default_factory=list)  # whiteouts: paths this layer removes
    opaque: list[str] = field(default_factory=list)  # directories this layer empties first
    secrets: list[tuple[str, str, str]] = field(default_factory=list)  # (path, rule, excerpt)
    captured: dict[str, str] = field(default_factory=dict)
    hashes: dict[str, str] = field(default_factory=dict)


def _capture(path: str, data: bytes) -> str:
    if path.endswith("/copyright"):
        # Only the licence names are needed; the full texts would bloat the cache.
        return "\n".join(ln for ln in data.decode(errors="replace").splitlines() if ln.startswith("License:"))
    return data.decode(errors="replace")


def _scan_layer(image: OciImage, index: int) -> LayerScan:
    scan = LayerScan(image.layer_digests[index])
    for member, reader in image.walk_layer(index):
        path = image_path(member.name)
        base = posixpath.basename(path)
        if base == ".wh..wh..opq":
            scan.opaque.append(posixpath.dirname(path))
            continue
        if base.startswith(".wh."):
            scan.deleted.append(posixpath.join(posixpath.dirname(path), base[4:]))
            continue
        kind = (
            "file"
            if member.isfile()
            else "dir"
            if member.isdir()
            else "link"
            if member.issym() or member.islnk()
            else "other"
        )
        scan.entries[path] = (kind, member.mode)
        if reader is None or member.size > _MAX_SCANNED:
            continue
        data = reader.read()
        scan.secrets.extend((path, rule, excerpt) for rule, excerpt in match_rules(data, FILE_RULES))
        if _CAPTURE.match(path):
            scan.captured[path] = _capture(path, data)
        elif _HASHED.match(path):
            scan.hashes[path] = hashlib.sha256(data).hexdigest()
    return scan


def layer_cache() -> Path:
    """Where layer scans are kept: the machine's cache folder (HARNESS_CACHE_DIR)."""
    return machine_cache("layer-scans")


def _cache_key() -> str:
    """What a cached scan depends on besides the layer's bytes: the format and every rule."""
    parts = [_CACHE_VERSION, str(_MAX_SCANNED), _CAPTURE.pattern, _HASHED.pattern]
    parts += [f"{name}={pattern.pattern!r}" for name, pattern in FILE_RULES]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _layer_scan(image: OciImage, index: int, cache: Path | None) -> LayerScan:
    digest = image.layer_digests[index]
    cached = cache / f"{digest.replace(':', '-')}.{_cache_key()}.json" if cache else None
    raw = read_kept(cached) if cached is not None else None
    if raw is not None:
        try:
            raw["entries"] = {k: tuple(v) for k, v in raw["entries"].items()}
            raw["secrets"] = [tuple(s) for s in raw["secrets"]]
            return LayerScan(**raw)
        except (TypeError, KeyError, AttributeError):
            pass  # not a scan this version wrote: the layer is read again, and the file replaced
    scan = _scan_layer(image, index)
    if cached is not None:
        keep(cached, asdict(scan))
    return scan


@dataclass
class ImageView:
    """The image as it runs: its config, and the filesystem after every layer is applied."""

    image: OciImage
    layers: list[LayerScan]
    files: dict[str, tuple[str, int]]
    captured: dict[str, str]
    hashes: dict[str, str]

    @property
    def config(self) -> dict[str, Any]:
        conf: dict[str, Any] = self.image.config.get("config") or {}
        return conf

    def layer_steps(self) -> list[str]:
        """The history entry (`created_by`) that made each layer."""
        steps = [
            h.get("created_by", "") for h in self.image.config.get("history", []) if not h.get("empty_layer")
        ]
        return steps + [""] * (len(self.layers) - len(steps))


def _remove(tree: dict[str, Any], path: str, *, keep_self: bool = False) -> None:
    prefix = path.rstrip("/") + "/"
    for name in [n for n in tree if n.startswith(prefix) or (n == path and not keep_self)]:
        del tree[name]


def view_image(path: Path, cache: Path | None = None) -> ImageView:
    image = read_oci(path)
    layers = [_layer_scan(image, i, cache) for i in range(len(image.layer_digests))]
    files: dict[str, tuple[str, int]] = {}
    captured: dict[str, str] = {}
    hashes: dict[str, str] = {}
    for scan in layers:
        for tree in (files, captured, hashes):
            for folder in scan.opaque:
                _remove(tree, folder, keep_self=True)
            for gone in scan.deleted:
                _remove(tree, gone)
        files.update(scan.entries)
        captured.update(scan.captured)
        hashes.update(scan.hashes)
    return ImageView(image, layers, files, captured, hashes)


def _is_root(user: str) -> bool:
    return user.split(":", 1)[0].strip() in ("", "0", "root")


def scan_image(view: ImageView, setuid_allowlist: Sequence[str] = ()) -> CheckResult:
    """Every image check; findings name the layer and path, or the config field."""
    result = CheckResult("image", note=f"{view.image.digest[:19]}, {len(view.layers)} layers")
    result.findings += _layer_secrets(view)
    result.findings += _config_secrets(view)
    result.findings += _root_user(view.config)
    result.findings += _filesystem_policy(view, set(setuid_allowlist))
    result.findings += _no_healthcheck(view.config)
    return result


def _layer_secrets(view: ImageView) -> list[Finding]:
    """Secrets in any layer's files: also those a later layer deletes, which every copy of the
    image still carries."""
    steps = view.layer_steps()
    found = []
    for index, scan in enumerate(view.layers):
        for path, rule, excerpt in scan.secrets:
            later = [i for i in range(index + 1, len(view.layers)) if _gone(view.layers[i], path)]
            hidden = f", deleted in layer {later[0]} but still in the image's layers" if later else ""
            found.append(
                Finding(
                    "image-secrets",
                    rule,
                    "critical",
                    f"image layer {index} ({steps[index][:60]}): {path}{hidden}",
                    f"{rule} in a file: {excerpt}",
                    "never copy secrets into an image (a later delete does not remove them from the "
                    "layer); use a build secret mount (RUN --mount=type=secret) and rotate this one",
                )
            )
    return found


def _config_secrets(view: ImageView) -> list[Finding]:
    """Secrets in the image config: `Env`, labels and every history entry's `created_by`."""
    config = view.config
    texts = [(f"Env {e.split('=', 1)[0]}", e) for e in config.get("Env") or []]
    texts += [(f"Labels {k}", f"{k}={v}") for k, v in (config.get("Labels") or {}).items()]
    texts += [
        (f"history {n} created_by", h.get("created_by", ""))
        for n, h in enumerate(view.image.config.get("history", []))
    ]
    return [
        Finding(
            "image-secrets",
            rule,
            "critical",
            f"image config {where}",
            f"{rule}: {excerpt}",
            "pass secrets at run time (environment, *_FILE) or as a build secret mount, never as "
            "ENV, LABEL or an ARG a RUN sees (build args are recorded in the history)",
        )
        for where, text in texts
        for rule, excerpt in match_rules(text.encode(), CONFIG_RULES)
    ]


def _root_user(config: dict[str, Any]) -> list[Finding]:
    user = str(config.get("User") or "")
    if not _is_root(user):
        return []
    return [
        Finding(
            "image-policy",
            "root-user",
            "high",
            "image config User",
            f"the image runs as root ({user or 'unset'})",
            "end the final stage with USER 10001:10001 (numeric, not root)",
        )
    ]


def _no_healthcheck(config: dict[str, Any]) -> list[Finding]:
    health = (config.get("Healthcheck") or {}).get("Test") or []
    if health and health[0] != "NONE":
        return []
    return [
        Finding(
            "image-policy",
            "no-healthcheck",
            "high",
            "image config Healthcheck",
            "no HEALTHCHECK",
            "add a HEALTHCHECK to the final stage",
        )
    ]


def _filesystem_policy(view: ImageView, setuid_allowed: set[str]) -> list[Finding]:
    """What the final filesystem must not hold: setuid/setgid files outside the allowlist,
    compilers and pip."""
    found = []
    for path, (kind, mode) in sorted(view.files.items()):
        if kind == "file" and mode & 0o6000 and path not in setuid_allowed:
            found.append(
                Finding(
                    "image-policy",
                    "setuid",
                    "high",
                    f"image {path}",
                    f"setuid/setgid bit set (mode {oct(mode)})",
                    "strip it in the Dockerfile (chmod ug-s), or add the path to [tool.harness.build] "
                    "setuid-allowlist with a reason",
                )
            )
        if posixpath.basename(path) in COMPILERS and posixpath.dirname(path) in _BIN_DIRS:
            found.append(
                Finding(
                    "image-policy",
                    "compiler",
                    "high",
                    f"image {path}",
                    "a compiler or build tool in production",
                    "build in an earlier stage and copy only the result into the final one",
                )
            )
        if _PIP.search(path):
            found.append(
                Finding(
                    "image-policy",
                    "pip",
                    "high",
                    f"image {path}",
                    "pip in the production image",
                    "install into a venv made --without-pip, with pip kept in a build stage",
                )
            )
    return found


def _gone(scan: LayerScan, path: str) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in scan.deleted) or any(
        path.startswith(o.rstrip("/") + "/") for o in scan.opaque
    )
