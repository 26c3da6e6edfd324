"""What is inside the production image, checked on the real image and container."""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest

from tierharness.config import load_settings
from tierharness.engine.client import engine_client

ROOT_USERS = {"", "0", "root", "0:0", "root:root", "0:root", "root:0"}
COMPILERS = ["gcc", "cc", "c++", "g++", "clang", "tcc", "as", "ld", "make"]


def is_root(user: str) -> bool:
    return user.strip() in ROOT_USERS or user.split(":", maxsplit=1)[0] in ("0", "root")


@pytest.mark.parametrize("user", [*sorted(ROOT_USERS), "0:10001", "root:app"])
def test_every_spelling_of_root_counts_as_root(user: str) -> None:
    assert is_root(user)


@pytest.mark.parametrize("user", ["10001:10001", "app", "10001"])
def test_other_users_are_not_root(user: str) -> None:
    assert not is_root(user)


def _exec(stack: Any, *argv: str) -> tuple[int, str]:
    result = stack.app.get_wrapped_container().exec_run(list(argv))
    return result.exit_code, result.output.decode(errors="replace")


def test_configured_user_is_not_root_and_id_agrees(harness_stack: Any) -> None:
    config = engine_client().images.get(harness_stack.image).attrs["Config"]
    assert not is_root(config.get("User") or "")
    code, out = _exec(harness_stack, "id", "-u")
    assert code == 0
    assert out.strip() != "0"


def test_healthcheck_defined_and_healthy(harness_stack: Any) -> None:
    config = engine_client().images.get(harness_stack.image).attrs["Config"]
    assert config["Healthcheck"]["Test"][0] in ("CMD", "CMD-SHELL")
    container = harness_stack.app.get_wrapped_container()
    container.reload()
    assert container.attrs["State"]["Health"]["Status"] == "healthy"


def test_no_compiler_no_pip_in_the_image(harness_stack: Any) -> None:
    script = "for c in " + " ".join([*COMPILERS, "pip", "pip3"]) + '; do command -v "$c"; done; true'
    code, out = _exec(harness_stack, "sh", "-c", script)
    assert code == 0
    assert out.strip() == ""


def test_no_setuid_or_setgid_binaries_beyond_the_allowlist(harness_stack: Any) -> None:
    allowed = set(load_settings().build.setuid_allowlist)
    _, out = _exec(harness_stack, "sh", "-c", "find / -xdev -type f -perm /6000 2>/dev/null; true")
    assert set(out.split()) - allowed == set()


def test_oci_labels_name_source_revision_and_creation_time(harness_stack: Any) -> None:
    labels = engine_client().images.get(harness_stack.image).attrs["Config"]["Labels"]
    record = json.loads((load_settings().build_dir / "image.json").read_text())
    assert labels["org.opencontainers.image.revision"] == record["revision"]
    assert labels["org.opencontainers.image.source"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", labels["org.opencontainers.image.created"])


SECRETISH = re.compile(r"(?i)(password|passwd|secret|token|api[_-]?key|private[_-]?key)\s*[=:]\s*\S+")


def test_no_secret_in_env_labels_or_history(harness_stack: Any) -> None:
    image = engine_client().images.get(harness_stack.image)
    config = image.attrs["Config"]
    history = subprocess.run(
        ["docker", "history", "--no-trunc", "--format", "{{.CreatedBy}}", harness_stack.image],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    haystack = "\n".join([*(config.get("Env") or []), json.dumps(config.get("Labels") or {}), history])
    assert SECRETISH.search(haystack) is None
    # And none of the secrets this run handed to the container ended up in the image.
    for secret in [
        *harness_stack.api_keys.values(),
        harness_stack.postgres.password,
        harness_stack.redis.password,
    ]:
        assert secret not in haystack
