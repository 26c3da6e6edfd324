"""The running image fuzzed from its own OpenAPI document (schemathesis, bounded): no
request may get a server error, and every answer must match the document."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tierharness.config import load_settings
from tierharness.process import run

# Enough to reach every operation in every phase on 2 cores within a couple of minutes.
MAX_EXAMPLES = "25"
CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"


def _schemathesis(harness_stack: Any, junit: Path, *extra: str) -> tuple[int, str]:
    argv = [
        str(Path(sys.executable).parent / "schemathesis"), "run", f"{harness_stack.base_url}/openapi.json",
        "--checks", CHECKS, "--max-examples", MAX_EXAMPLES, "--seed", "20261126",
        "--phases", "examples,coverage,fuzzing,stateful", "--request-timeout", "10",
        "--header", f"X-API-Key: {harness_stack.api_keys['e2e']}",
        "--report", "junit", "--report-junit-path", str(junit), "--no-color", *extra,
    ]  # fmt: skip
    # The key is this run's random one; the message shows the command without it.
    shown = [a if harness_stack.api_keys["e2e"] not in a else "X-API-Key: ..." for a in argv]
    proc = run(argv, what="schemathesis", fix="see the failures above", check=False, shown=shown, timeout=600)
    return proc.returncode, proc.stdout + proc.stderr


def test_fuzzing_finds_no_server_error_and_no_schema_violation(harness_stack: Any) -> None:
    junit = load_settings().build_dir / "junit" / "fuzz.xml"
    junit.parent.mkdir(parents=True, exist_ok=True)
    code, output = _schemathesis(harness_stack, junit)
    assert code == 0, output[-6000:]
    assert "Server error" not in output
