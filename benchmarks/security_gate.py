"""How long the whole security gate takes: every check of `nox -s security` on the
current tree and built image (the tools run as they do in the session), cold (no layer
scan cached) and warm (the usual case: only layers that changed are read again).

Writes its reports to a temporary folder, so build/security is not touched. Needs the
image (`nox -s build`) and the tools (requirements/security.txt) in this environment.

    python benchmarks/security_gate.py
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

from record import figure, write_record

from tierharness.config import load_settings
from tierharness.security.scan_all import run_security


def main() -> None:
    settings = load_settings()
    image = settings.build_dir / "image.oci.tar"
    if not image.is_file():
        raise SystemExit(f"no image at {image}: run `nox -s build` first")
    figures = []
    with tempfile.TemporaryDirectory(prefix="harness-bench-") as tmp:
        bench = dataclasses.replace(settings, build_dir=Path(tmp))
        for label in ("cold", "warm", "warm"):
            started = time.monotonic()
            report = run_security(bench, image=image, log=lambda _m: None)
            seconds = time.monotonic() - started
            slowest = sorted(report.results, key=lambda r: -r.seconds)[:3]
            parts = ", ".join(f"{r.name} {r.seconds:.1f}s" for r in slowest)
            print(f"{label}: {seconds:5.1f}s  verdict {report.verdict}  (slowest: {parts})")
            figures.append(figure(f"{label} (verdict {report.verdict}; slowest: {parts})", seconds, "s"))
    write_record("security_gate", figures)


if __name__ == "__main__":
    main()
