"""A worker's Postgres asks for a password that is cheap to check: its role's SCRAM verifier
is stored with the harness's low iteration count, and a wrong password is still refused."""

from __future__ import annotations

from dataclasses import replace

import psycopg
import pytest

from tierharness.pytest_plugin import HarnessServices
from tierharness.runtime.containers import CHEAP_SCRAM_ITERATIONS


def test_the_workers_role_is_stored_with_few_scram_iterations(harness_services: HarnessServices) -> None:
    server = harness_services.postgres
    with psycopg.connect(server.url) as conn:
        row = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = current_user").fetchone()
    assert row is not None
    assert row[0].startswith(f"SCRAM-SHA-256${CHEAP_SCRAM_ITERATIONS}:"), row[0].split(":")[0]


def test_a_wrong_password_is_still_refused(harness_services: HarnessServices) -> None:
    wrong = replace(harness_services.postgres, password="not-" + harness_services.postgres.password)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong.url, connect_timeout=5).close()
