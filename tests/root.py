"""Tests that truly need root say so in one form, which the gates page reports as NOT RUN
with the fix (tierharness/gates.py), instead of a skip nobody reads."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from tierharness.gates import NEEDS_ROOT

F = TypeVar("F", bound=Callable[..., Any])

SECOND_ENGINE = "a second Docker engine (dockerd, a bridge, iptables)"
SECOND_ENGINE_FIX = "run them as root: sudo .venv/bin/nox -s root-tests (.ci/run does)"


def reason(what: str, fix: str) -> str:
    return f"{NEEDS_ROOT} {what}; fix: {fix}"


def require_root(what: str = SECOND_ENGINE, fix: str = SECOND_ENGINE_FIX) -> None:
    if os.geteuid() != 0:
        pytest.skip(reason(what, fix))


# What `nox -s root-tests` selects (-m needs_root), as root, where the user's run skips them.
needs_root = pytest.mark.needs_root


def root_only(what: str, fix: str) -> Callable[[F], F]:
    def mark(test: F) -> F:
        return needs_root(pytest.mark.skipif(os.geteuid() != 0, reason=reason(what, fix))(test))

    return mark
