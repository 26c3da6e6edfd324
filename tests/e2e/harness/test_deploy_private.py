"""The rehearsal's stack keeps its controls to the invoking user: the proxy's runtime API is
no TCP listener on the host, only a unix socket that user alone can open."""

from __future__ import annotations

import os
import socket
import stat

from tierharness.config import load_settings
from tierharness.deploy.rehearsal_stack import rehearsal
from tierharness.deploy.timeline import Timeline
from tierharness.engine.labels import RunIdentity
from tierharness.engine.run_ids import new_run_id
from tierharness.imaging.project_image import build_image


def _answers_as_runtime_api(port: int) -> bool:
    """Whether the host port `port` answers HAProxy's `show info` (the runtime API over TCP)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(b"show info\n")
            return b"Name: HAProxy" in sock.recv(4096)
    except OSError:
        return False


def test_the_runtime_api_is_no_tcp_listener_only_a_socket_the_user_alone_opens(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings()
    image = build_image(settings, log=lambda _m: None).image
    identity = RunIdentity.for_this_process(new_run_id("test-deploy-private-"))
    folder = tmp_path / "deploy"
    with rehearsal(
        settings, identity, image, folder=folder, timeline=Timeline(), users=1, instances=1
    ) as reh:
        assert reh.api.stats()["blue"].status.startswith("UP")  # the rehearsal steers it
        proxy = reh.client.containers.get(identity.name("proxy"))
        published = {
            int(binding["HostPort"])
            for bindings in proxy.attrs["NetworkSettings"]["Ports"].values()
            for binding in bindings or []
        }
        public = {int(url.rsplit(":", 1)[1]) for url in (reh.proxy_url, reh.smoke_url)}
        assert published == public, f"the proxy publishes more than its two frontends: {published}"
        assert [p for p in published if _answers_as_runtime_api(p)] == []

        sockets = [p for p in folder.rglob("*") if stat.S_ISSOCK(p.lstat().st_mode)]
        assert sockets, f"no runtime-API socket under {folder}"
        for path in sockets:
            st = path.lstat()
            assert (st.st_mode & 0o777, st.st_uid) == (0o600, os.getuid()), path
            parent = path.parent.lstat()
            assert (parent.st_mode & 0o777, parent.st_uid) == (0o700, os.getuid()), path.parent
