"""Hash-pinned lockfiles: verify them, detect stale ones, recompile them with pip-tools.

A lockfile (`requirements/X.txt`) is compiled from its input (`requirements/X.in`)
by pip-compile with `--generate-hashes`. Staleness is checked offline, from the
two files alone, so `lock --check` is fast and deterministic in CI: every direct
requirement of the input (and of the inputs it includes with `-r`) must be pinned
at a version its specifier allows, and nothing may still be pinned "via" an input
that no longer asks for it.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from tierharness.config import pip_child_env
from tierharness.errors import LockfileError
from tierharness.process import run

__all__ = [
    "Pin",
    "compile_lockfiles",
    "find_stale",
    "parse_input",
    "parse_lockfile",
    "require_hashes",
]

_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==(?P<version>[^\s;\\]+)")
_HASH = re.compile(r"--hash=(?P<algo>sha256|sha384|sha512):(?P<digest>[0-9a-f]+)")
_HASH_ONLY = re.compile(r"(?:--hash=(?:sha256|sha384|sha512):[0-9a-f]+\s*)+")
_VIA_INPUT = re.compile(r"-r\s+(?P<path>\S+\.in)")


@dataclass
class Pin:
    name: str  # canonical name
    version: str
    line: int
    hashes: list[str] = field(default_factory=list)
    via_inputs: set[str] = field(default_factory=set)  # basenames of .in files that ask for it


def parse_lockfile(path: Path) -> list[Pin]:
    """Pins of a pip-compile output, with their hashes and which inputs they came from."""
    pins: list[Pin] = []
    current: Pin | None = None
    in_via = False
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        option = line.split("#", 1)[0].strip().removesuffix("\\").strip()
        if line.startswith("-") and not _HASH_ONLY.fullmatch(option):
            # Only `--hash` continuations: an index URL, find-links, -e or -r here would let
            # the install fetch, or skip the check for, something no hash pins.
            raise LockfileError(
                f"{path.name}:{number}: option line {line[:80]!r} in a lockfile",
                checked="every option line of a lockfile is a --hash=ALGO:DIGEST continuation",
                fix="regenerate it with `nox -s lock` (it emits no index or link options)",
            )
        if not raw.startswith((" ", "\t")) and not line.startswith(("#", "-")):
            match = _PIN.match(line)
            if match is None:
                raise LockfileError(
                    f"{path.name}:{number}: not an exact pin: {line!r}",
                    checked="every requirement line of a lockfile is `name==version`",
                    fix="regenerate it with `nox -s lock`",
                )
            current = Pin(canonicalize_name(match["name"]), match["version"], number)
            pins.append(current)
            in_via = False
        if current is None:
            continue
        current.hashes.extend(m["digest"] for m in _HASH.finditer(line))
        if line.startswith("# via"):
            in_via = True
        elif in_via and not line.startswith("#"):
            in_via = False
        if in_via:
            current.via_inputs.update(Path(m["path"]).name for m in _VIA_INPUT.finditer(line))
    return pins


def require_hashes(path: Path) -> list[Pin]:
    """The pins of `path`, or LockfileError naming every package that has no hash."""
    pins = parse_lockfile(path)
    bare = [p for p in pins if not p.hashes]
    if bare:
        names = ", ".join(f"{p.name}=={p.version} (line {p.line})" for p in bare)
        raise LockfileError(
            f"{path} has pins without a hash: {names}",
            checked="every pinned line carries at least one --hash=sha256:...",
            fix="regenerate it with `nox -s lock` (pip-compile --generate-hashes)",
        )
    if not pins:
        raise LockfileError(
            f"{path} pins nothing",
            checked="at least one `name==version` line",
            fix="regenerate it with `nox -s lock`",
        )
    return pins


def parse_input(path: Path) -> tuple[list[Requirement], list[Path]]:
    """Direct requirements of a `.in` file (following `-r` includes) and its `-c` constraints."""
    requirements: list[Requirement] = []
    constraints: list[Path] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("-r ", "--requirement ")):
            included = path.parent / line.split(None, 1)[1]
            requirements.extend(parse_input(included)[0])
            continue
        if line.startswith(("-c ", "--constraint ")):
            constraints.append(path.parent / line.split(None, 1)[1])
            continue
        if line.startswith("-"):
            continue  # pip options (index urls and the like) do not name packages
        try:
            requirements.append(Requirement(line))
        except InvalidRequirement as exc:
            raise LockfileError(
                f"{path.name}:{number}: {exc}",
                checked="each line of an input is a PEP 508 requirement or a pip option",
                fix=f"fix line {number} of {path}",
            ) from exc
    return requirements, constraints


def _inputs_closure(path: Path) -> set[str]:
    names = {path.name}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith(("-r ", "--requirement ")):
            names |= _inputs_closure(path.parent / line.split(None, 1)[1])
    return names


def find_stale(input_path: Path, lock_path: Path) -> list[str]:
    """Why `lock_path` no longer matches `input_path`; empty when it is current."""
    if not lock_path.exists():
        return [f"{lock_path.name} does not exist"]
    requirements, _ = parse_input(input_path)
    pins = {p.name: p for p in parse_lockfile(lock_path)}
    problems: list[str] = []
    wanted = set()
    for req in requirements:
        name = canonicalize_name(req.name)
        wanted.add(name)
        pin = pins.get(name)
        if pin is None:
            problems.append(f"{req.name} is required by {input_path.name} but not pinned")
        elif req.specifier and not req.specifier.contains(pin.version, prereleases=True):
            problems.append(
                f"{req.name}=={pin.version} is pinned but {input_path.name} asks for {req.specifier}"
            )
    inputs = _inputs_closure(input_path)
    for pin in pins.values():
        # Pinned "via -r X.in" for one of our inputs, yet no input asks for it any more.
        if pin.via_inputs & inputs and pin.name not in wanted:
            problems.append(f"{pin.name} is pinned via {input_path.name} but no longer required there")
    return problems


def compile_lockfiles(
    lock_dir: Path, names: list[str], *, upgrade: bool = False, extra_args: list[str] | None = None
) -> None:
    """Recompile `names` in order with pip-tools, with the machine's local pip config switched off.

    The machine may add local indexes, find-links and constraints through pip's
    config; lockfiles must carry PyPI's hashes so they work on any machine.
    """
    env = pip_child_env({"CUSTOM_COMPILE_COMMAND": "nox -s lock"})
    root = lock_dir.parent
    for name in names:
        source = lock_dir / f"{name}.in"
        target = lock_dir / f"{name}.txt"
        cmd = [
            sys.executable, "-m", "piptools", "compile", "--quiet",
            "--generate-hashes", "--allow-unsafe", "--strip-extras",
            "--no-emit-index-url", "--no-emit-find-links",
            "--output-file", str(target.relative_to(root)), str(source.relative_to(root)),
        ]  # fmt: skip
        if upgrade:
            cmd.append("--upgrade")
        cmd.extend(extra_args or [])
        run(
            cmd,
            cwd=root,
            env=env,
            what=f"pip-compile of {source.name}",
            fix="fix the input, or check that PyPI is reachable",
            error=LockfileError,
        )
        require_hashes(target)
