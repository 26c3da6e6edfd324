"""Tests that truly need root say so in one form, which the gates page reports as NOT RUN
with the fix (tierharness/security/gates.py), instead of a skip nobody reads."""

from __future__ import annotations

import os

import pytest

from tierharness.security.gates import NEEDS_ROOT

SECOND_ENGINE = "a second Docker engine (dockerd, a bridge, iptables)"
SECOND_ENGINE_FIX = "run these tests as root: sudo .venv/bin/nox -s tests -- PATH (.ci/run does, as root)"


def reason(what: str, fix: str) -> str:
    return f"{NEEDS_ROOT} {what}; fix: {fix}"


def require_root(what: str = SECOND_ENGINE, fix: str = SECOND_ENGINE_FIX) -> None:
    if os.geteuid() != 0:
        pytest.skip(reason(what, fix))


def root_only(what: str, fix: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(os.geteuid() != 0, reason=reason(what, fix))
