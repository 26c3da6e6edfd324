"""Test and stack containers are reached on loopback only: published ports bound to
127.0.0.1 (local engine), or a worker's servers on the engine's host network listening on
127.0.0.1 alone."""

from __future__ import annotations

import os
import socket
import uuid

import psycopg
import pytest

from tierharness.config import load_settings
from tierharness.engine.client import engine_client
from tierharness.engine.labels import LABEL_RUN, RunIdentity
from tierharness.errors import HarnessError
from tierharness.imaging.resolution import resolve_images
from tierharness.pytest_plugin import HarnessServices
from tierharness.runtime import containers
from tierharness.runtime.containers import (
    publish_on_loopback,
    start_postgres,
    start_redis,
    start_services,
    stop,
)
from tierharness.runtime.networking import (
    LABEL_PORT,
    free_loopback_port,
    host_network_refusal,
    use_host_network,
)


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
    identity = RunIdentity(f"t-{uuid.uuid4().hex[:8]}", "ports", os.getpid())
    container, info = start_redis(_image("redis"), identity)
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


# --------------------------------------------------------------------------- host network


def _refusal() -> str | None:
    return host_network_refusal(engine_client().info(), hostname=socket.gethostname())


def _bridge_gateway() -> str:
    """An address of this machine that is not loopback: the default bridge's gateway."""
    return str(engine_client().networks.get("bridge").attrs["IPAM"]["Config"][0]["Gateway"])


def _refused(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        return True
    return False


def test_the_workers_services_are_on_the_host_network_where_it_is_this_machines(
    harness_services: HarnessServices,
) -> None:
    reason = _refusal()
    client = engine_client()
    for info in (harness_services.postgres, harness_services.redis):
        assert info is not None
        attrs = client.containers.get(info.container_id).attrs
        mode = attrs["HostConfig"]["NetworkMode"]
        if reason is None:
            assert mode == "host", "auto chose published ports on an engine whose host network is ours"
            assert attrs["Config"]["Labels"][LABEL_PORT] == str(info.port)
            assert attrs["HostConfig"]["PortBindings"] in ({}, None)  # nothing published
            assert "NET_RAW" in attrs["HostConfig"]["CapDrop"]  # no sniffing the host's traffic
        else:
            assert mode != "host", f"auto chose the host network although {reason}"


@pytest.mark.usefixtures("harness_reaper")
def test_on_the_host_network_servers_listen_on_loopback_only() -> None:
    if (reason := _refusal()) is not None:
        pytest.skip(f"the engine's host network is not this machine's: {reason}")
    identity = RunIdentity(f"t-{uuid.uuid4().hex[:8]}", "hostnet", os.getpid())
    started = start_services(_image("postgres"), _image("redis"), identity, on_host=True)
    assert started[1] is not None
    (pg, pg_info), (rd, rd_info) = started[0], started[1]
    try:
        for info in (pg_info, rd_info):
            assert info.host == "127.0.0.1"
            assert not _refused("127.0.0.1", info.port)
            # The same port on another address of this machine: nobody answers there.
            assert _refused(_bridge_gateway(), info.port), f"port {info.port} answers off loopback"
        with psycopg.connect(pg_info.url, connect_timeout=5) as conn:
            assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
    finally:
        stop(pg)
        stop(rd)


@pytest.mark.usefixtures("harness_reaper")
def test_a_port_taken_between_pick_and_bind_gets_a_new_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """The canary: the port the harness picked is bound by another process before the
    server starts; the server exits saying so, and the harness starts it again elsewhere."""
    if (reason := _refusal()) is not None:
        pytest.skip(f"the engine's host network is not this machine's: {reason}")
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    picks = iter([taken])
    monkeypatch.setattr(containers, "free_loopback_port", lambda: next(picks, None) or free_loopback_port())
    identity = RunIdentity(f"t-{uuid.uuid4().hex[:8]}", "taken", os.getpid())
    try:
        container, info = start_postgres(_image("postgres"), identity, on_host=True)
        try:
            assert info.port != taken
            with psycopg.connect(info.url, connect_timeout=5) as conn:
                assert conn.execute("SELECT current_user").fetchone() == (info.user,)
            mine = engine_client().containers.list(
                all=True, filters={"label": f"{LABEL_RUN}={identity.run_id}"}
            )
            assert [c.id for c in mine] == [info.container_id]  # the first attempt is gone
        finally:
            stop(container)
    finally:
        squatter.close()


def test_explicit_host_network_with_a_remote_engine_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://build-host.invalid:2376")
    with pytest.raises(HarnessError, match="reached over the network") as err:
        use_host_network("host", client=None)
    assert "harness_network = auto" in err.value.fix
    assert use_host_network("auto", client=None) is False  # auto publishes instead


def _image(role: str) -> str:
    (image,) = resolve_images(load_settings(), [role], log=lambda _m: None)
    return image.ref
