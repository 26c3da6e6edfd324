"""The running stack publishes the service on loopback only (a local engine)."""

from __future__ import annotations

from typing import Any

import pytest

from tierharness.config import environment


def test_the_service_port_is_published_on_127_0_0_1_only(harness_stack: Any) -> None:
    if not environment().engine_is_local:
        pytest.skip("a remote engine keeps Docker's default publishing")
    for container in (harness_stack.app, harness_stack.postgres_container, harness_stack.redis_container):
        wrapped = container.get_wrapped_container()
        wrapped.reload()
        published = [b for spec in wrapped.attrs["NetworkSettings"]["Ports"].values() if spec for b in spec]
        assert published
        assert {b["HostIp"] for b in published} == {"127.0.0.1"}, wrapped.name
