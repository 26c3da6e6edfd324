"""The security tools' executables: installed beside the interpreter by `nox -s security`
(requirements/security.txt), found there first, then on PATH."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tierharness.errors import HarnessError
from tierharness.process import run

__all__ = ["run_tool", "tool"]

_INSTALL = "run `nox -s security` (it installs requirements/security.txt), or install that lockfile"


def tool(name: str) -> str:
    """The path of tool `name`: the running interpreter's venv first (a nox session's), then PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise HarnessError(
            f"the security tool {name!r} is not installed",
            checked=f"{beside} and PATH",
            fix=_INSTALL,
        )
    return found


def run_tool(
    name: str,
    args: Sequence[str],
    *,
    cwd: Path,
    ok_codes: Sequence[int] = (0, 1),
    env: dict[str, str] | None = None,
) -> Any:
    """Run tool `name` with `args` (its JSON on stdout) and return the parsed JSON. Exit codes
    outside `ok_codes` (most tools exit 1 when they found something) are errors."""
    proc = run([tool(name), *args], cwd=cwd, env=env, check=False, what=f"{name}", fix=_INSTALL, timeout=300)
    if proc.returncode not in ok_codes:
        raise HarnessError(
            f"{name} failed (exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()[-1500:]}",
            checked=" ".join([name, *args]),
            fix=f"run that command by hand in {cwd} to see why",
        )
    try:
        return json.loads(proc.stdout or "null")
    except json.JSONDecodeError as exc:
        raise HarnessError(
            f"{name} did not print JSON: {proc.stdout[:300]!r}",
            checked=" ".join([name, *args]),
            fix="check the tool's version against requirements/security.txt",
        ) from exc
