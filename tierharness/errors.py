"""One base exception for everything the harness refuses or fails to do.

Messages are built first, then raised, and always say what was checked and how
to fix it: a user should never have to read harness source to recover.
"""

from __future__ import annotations

__all__ = [
    "BuildError",
    "EngineNotAnsweringError",
    "EngineUnavailableError",
    "HarnessError",
    "ImageError",
    "LockfileError",
    "ReadinessError",
    "UnsetVariableError",
]


class HarnessError(Exception):
    """Base class: `what` went wrong, what was `checked`, and the `fix`."""

    def __init__(self, what: str, *, checked: str | None = None, fix: str | None = None) -> None:
        self.what = what
        self.checked = checked
        self.fix = fix
        lines = [what]
        if checked:
            lines.append(f"  checked: {checked}")
        if fix:
            lines.append(f"  fix: {fix}")
        super().__init__("\n".join(lines))


class EngineUnavailableError(HarnessError):
    """The Docker engine cannot be reached or is too old."""


class EngineNotAnsweringError(EngineUnavailableError):
    """Nothing answered where the engine should be (no TLS or certificate problem to name)."""


class LockfileError(HarnessError):
    """A lockfile is stale, unhashed or otherwise unusable."""


class ImageError(HarnessError):
    """A logical image could not be made available."""


class BuildError(HarnessError):
    """An image build failed."""


class ReadinessError(HarnessError):
    """A container never became ready; the message carries its logs."""


class UnsetVariableError(HarnessError):
    """The project reads a database variable the harness does not set for a worker: its
    commands would reach whatever that variable defaults to, so they are not started."""
