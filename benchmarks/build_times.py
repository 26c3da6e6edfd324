"""Cold build vs warm rebuild after a change to service code only.

Works on a snapshot of the working tree (so the checkout is not touched): one
build with no cache, then a one-line change under services/, then a rebuild.
Prints both times and how many dependency layers the rebuild reused.

    python benchmarks/build_times.py
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from record import figure, write_record

from tierharness.config import find_project_root, load_settings
from tierharness.gitrepo import snapshot
from tierharness.imaging.project_image import build_image


def main() -> None:
    root = find_project_root()
    with tempfile.TemporaryDirectory(prefix="harness-bench-") as tmp:
        copy = snapshot(root, Path(tmp) / "tree")
        wheelhouse = load_settings(root).build_dir / "wheelhouse"
        if wheelhouse.exists():  # the download is not what this measures
            shutil.copytree(wheelhouse, copy / "build" / "wheelhouse")
        settings = load_settings(copy)
        cold = build_image(settings, force=True, no_cache=True, log=lambda _m: None)
        print(
            f"cold build (no cache): {cold.build_seconds:6.1f}s, "
            f"steps cached {cold.cached_steps}/{cold.total_steps}"
        )
        target = copy / "services" / "api_gateway" / "__init__.py"
        target.write_text(target.read_text() + "# a change to service code only\n")
        warm = build_image(settings, force=True, log=lambda _m: None)
        print(
            f"warm rebuild:          {warm.build_seconds:6.1f}s, "
            f"steps cached {warm.cached_steps}/{warm.total_steps}"
        )
        print(
            f"dependency layers reused: {warm.deps_cached}/{warm.deps_total}; "
            f"warm/cold time: {warm.build_seconds / cold.build_seconds:.0%}"
        )
    write_record(
        "build_times",
        [
            figure("cold build (no cache)", cold.build_seconds, "s"),
            figure("warm rebuild after a change to service code only", warm.build_seconds, "s"),
            figure("steps cached in the warm rebuild", f"{warm.cached_steps}/{warm.total_steps}"),
            figure("dependency layers reused", f"{warm.deps_cached}/{warm.deps_total}", "", "all"),
        ],
    )


if __name__ == "__main__":
    main()
