"""The Debian mirror, read from the machine's own apt configuration.

No mirror host name is written into the project: whatever this machine uses for
Debian is what the offline image recipes use.
"""

from __future__ import annotations

from pathlib import Path

from tierharness.config import environment
from tierharness.errors import ImageError

__all__ = ["debian_mirror"]

_SUITES = {"bookworm", "trixie", "forky", "sid", "unstable", "testing", "stable"}


def _from_deb822(text: str) -> str | None:
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if ":" in line and not line.startswith((" ", "#")):
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.strip()
        suites = set(fields.get("suites", "").split())
        types = set(fields.get("types", "deb").split())
        if "deb" in types and suites & _SUITES and fields.get("uris"):
            return fields["uris"].split()[0]
    return None


def _from_one_line(text: str) -> str | None:
    for line in text.splitlines():
        parts = line.split()
        # deb [options] URI suite components...
        parts = [p for p in parts if not (p.startswith("[") or p.endswith("]"))]
        if len(parts) >= 3 and parts[0] == "deb" and parts[2] in _SUITES:
            return parts[1]
    return None


def debian_mirror(etc_apt: Path = Path("/etc/apt")) -> str:
    """The URI of the machine's main Debian archive (not -security, not -updates)."""
    override = environment().debian_mirror
    if override:
        return override
    checked: list[str] = []
    for path in sorted((etc_apt / "sources.list.d").glob("*.sources")):
        checked.append(str(path))
        found = _from_deb822(path.read_text(encoding="utf-8", errors="replace"))
        if found:
            return found
    for path in [etc_apt / "sources.list", *sorted((etc_apt / "sources.list.d").glob("*.list"))]:
        if path.is_file():
            checked.append(str(path))
            found = _from_one_line(path.read_text(encoding="utf-8", errors="replace"))
            if found:
                return found
    raise ImageError(
        "no Debian mirror found in the apt configuration",
        checked=", ".join(checked) or f"{etc_apt}/sources.list(.d)",
        fix="configure apt for Debian, or set HARNESS_DEBIAN_MIRROR to a Debian archive URI",
    )
