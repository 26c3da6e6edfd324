"""One door for subprocesses: `run()` runs a command and, when it fails, raises a
`HarnessError` (or the subclass asked for) saying what ran, the tail of its output and the
fix. No other module checks return codes or cuts output tails on its own.

Commands are argv lists, never shell strings. `shown` replaces the argv in messages where
the real one carries values that must not be printed (build arguments, say).
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from tierharness.errors import HarnessError

__all__ = ["TAIL_CHARS", "run", "start_child", "start_detached"]

TAIL_CHARS = 3000


def _tail(text: str, limit: int = TAIL_CHARS) -> str:
    text = text.strip()
    return text if len(text) <= limit else "..." + text[-limit:]


def run(
    argv: Sequence[str],
    *,
    what: str,
    fix: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    error: type[HarnessError] = HarnessError,
    shown: Sequence[str] | None = None,
    check: bool = True,
    capture: bool = True,
    timeout: float | None = None,
    log_path: Path | None = None,
    explain: Callable[[str], str] | None = None,
    umask: int | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `argv`; on a non-zero exit (when `check`) or a missing program, raise `error`.

    `what` names the job ("pip-compile for app.in"), `fix` what the user should do. The
    message carries the exit code and the tail of stdout+stderr, or what `explain` makes of
    the whole output when the caller knows better (a failed build step's own lines, say).
    With `log_path`, the whole output is also written there, failed or not. With `umask`, the
    child runs under it, whatever this process's (the modes of the files it writes depend on it).
    """
    display = " ".join(shown if shown is not None else argv)
    try:
        proc = subprocess.run(
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            capture_output=capture,
            text=True,
            check=False,
            timeout=timeout,
            umask=-1 if umask is None else umask,
        )
    except FileNotFoundError as exc:
        raise error(
            f"{what}: the program {argv[0]!r} was not found",
            checked=f"{argv[0]} on PATH (cwd {cwd or '.'})",
            fix=fix,
        ) from exc
    except OSError as exc:  # not executable, a bad cwd, ...
        raise error(f"{what}: {display} could not be started: {exc}", checked=display, fix=fix) from exc
    except subprocess.TimeoutExpired as exc:
        raise error(f"{what}: no answer within {timeout:g}s", checked=display, fix=fix) from exc
    output = (proc.stdout or "") + (proc.stderr or "")
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text(output, encoding="utf-8")
    if check and proc.returncode != 0:
        excerpt = explain(output) if explain is not None else _tail(output)
        raise error(f"{what} failed (exit {proc.returncode}):\n{excerpt}", checked=display, fix=fix)
    return proc


def _background(
    argv: Sequence[str], log_path: Path, *, env: Mapping[str, str] | None, outlive: bool
) -> subprocess.Popen[bytes]:
    """Start `argv` in the background, output appended to `log_path`: in its own session when
    it must `outlive` the harness, else sent SIGTERM when the harness dies."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=dict(env) if env is not None else None,
            start_new_session=outlive,
            preexec_fn=None if outlive else _die_with_parent,  # noqa: PLW1509 - no threads before exec
            close_fds=True,
        )


def start_detached(argv: Sequence[str], *, log_path: Path) -> subprocess.Popen[bytes]:
    """Start `argv` in its own session: it outlives a SIGKILL of the process group that started
    it (what the reaper needs)."""
    return _background(argv, log_path, env=None, outlive=True)


def _die_with_parent() -> None:
    """In the child, before exec: be sent SIGTERM when the harness dies, even by SIGKILL."""
    # Not Linux: no such call; the caller still stops the child on a normal exit.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def start_child(
    argv: Sequence[str], *, log_path: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start `argv` in the background (load during a deploy rehearsal), output to `log_path`.
    Unlike `start_detached`, it never outlives the harness: it is stopped when the harness dies."""
    return _background(argv, log_path, env=env, outlive=False)
