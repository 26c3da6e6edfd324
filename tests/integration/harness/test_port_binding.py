"""Published ports of test and stack containers listen on loopback only (local engine)."""

from __future__ import annotations

import os
import uuid

import pytest

from harness.build.images import resolve_images
from harness.config import load_settings
from harness.runtime.containers import publish_on_loopback, start_redis, stop
from harness.runtime.labels import RunIdentity


class _Ports:
    def __init__(self) -> None:
        self.ports: dict[str, object] = {"5432": None, "8080": 18080}


def test_exposed_ports_are_bound_to_loopback_with_a_local_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    container = _Ports()
    publish_on_loopback(container)  # type: ignore[arg-type]
    assert container.ports == {"5432": ("127.0.0.1", None), "8080": 18080}


def test_a_remote_engine_keeps_todays_publishing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://build-host.invalid:2376")
    container = _Ports()
    publish_on_loopback(container)  # type: ignore[arg-type]
    assert container.ports == {"5432": None, "8080": 18080}


def test_a_started_container_publishes_on_127_0_0_1_only() -> None:
    (redis_image,) = resolve_images(load_settings(), ["redis"], log=lambda _m: None)
    identity = RunIdentity(f"t-{uuid.uuid4().hex[:8]}", "ports", os.getpid())
    container, info = start_redis(redis_image.ref, identity)
    try:
        wrapped = container.get_wrapped_container()
        wrapped.reload()
        bindings = wrapped.attrs["HostConfig"]["PortBindings"]
        published = wrapped.attrs["NetworkSettings"]["Ports"]
        assert {b["HostIp"] for spec in bindings.values() for b in spec} == {"127.0.0.1"}
        assert {b["HostIp"] for spec in published.values() if spec for b in spec} == {"127.0.0.1"}
        assert info.port == int(published["6379/tcp"][0]["HostPort"])
    finally:
        stop(container)
