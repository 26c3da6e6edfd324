"""The one door for subprocesses: failures say what ran, the output's tail and the fix."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tierharness.errors import BuildError, HarnessError
from tierharness.process import run


def test_a_failing_command_raises_with_exit_code_tail_and_fix() -> None:
    code = "import sys; print('x' * 5000 + 'the-end'); sys.exit(4)"
    with pytest.raises(BuildError) as err:
        run([sys.executable, "-c", code], what="the step", fix="do the other thing", error=BuildError)
    message = str(err.value)
    assert message.startswith("the step failed (exit 4):")
    assert "the-end" in message
    assert len(message) < 4000  # the tail, not the whole output
    assert "fix: do the other thing" in message


def test_a_missing_program_is_named() -> None:
    with pytest.raises(HarnessError, match="the program 'no-such-tool-here' was not found"):
        run(["no-such-tool-here", "--version"], what="checking a tool", fix="install it")


def test_shown_replaces_the_argv_in_messages() -> None:
    with pytest.raises(HarnessError) as err:
        run(
            [sys.executable, "-c", "raise SystemExit(1)", "TOKEN=secret-value"],
            what="a build",
            fix="none",
            shown=["python", "TOKEN=..."],
        )
    assert "secret-value" not in str(err.value)
    assert "checked: python TOKEN=..." in str(err.value)


def test_explain_and_log_path(tmp_path: object) -> None:
    log = Path(str(tmp_path)) / "out.log"
    with pytest.raises(HarnessError, match="only this"):
        run(
            [sys.executable, "-c", "print('noise'); raise SystemExit(2)"],
            what="x",
            fix="y",
            log_path=log,
            explain=lambda _out: "only this",
        )
    assert log.read_text().strip() == "noise"
