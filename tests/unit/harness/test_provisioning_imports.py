"""What a worker imports to provision its Postgres and Redis: testcontainers' own module for
Postgres imports all of SQLAlchemy wherever it is installed (this environment has it, for
examples/inventory), for one exception class. The harness's provisioning path configures
plain containers instead, and must import neither that module nor SQLAlchemy."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

_PROBE = """
import importlib.util, json, sys
import tierharness.runtime.worker
print(json.dumps({
    "installed": importlib.util.find_spec("sqlalchemy") is not None,
    "imported": sorted(m for m in ("sqlalchemy", "testcontainers.community.postgres",
        "testcontainers.community.redis") if m in sys.modules),
}))
"""


def test_the_provisioning_path_imports_no_sqlalchemy() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    if not found["installed"]:
        pytest.skip("SQLAlchemy is not installed here, so its import cannot be caught")
    assert found["imported"] == [], f"tierharness.runtime.worker imports {found['imported']}"
