"""How a worker's tests reach its services: on the engine's host network, or through ports
published on loopback.

A published port costs each container its own network namespace, a veth pair, iptables
rules, a userland proxy and the engine re-executing itself as a start hook: about 0.1 CPU-s
a container, a fifth of what a cold worker with its two containers costs. On the engine's host network
the server just listens on 127.0.0.1, at a port the harness picked. That is the tests'
loopback only when the engine runs on this machine, as root, outside a VM, and this process
is not in a container of its own; `auto` checks exactly that, and otherwise publishes.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any, Literal, get_args

from tierharness.engine.client import endpoint
from tierharness.errors import HarnessError

__all__ = [
    "LABEL_PORT",
    "NETWORK_MODES",
    "NetworkMode",
    "free_loopback_port",
    "host_network_refusal",
    "refusal_here",
    "use_host_network",
]

NetworkMode = Literal["auto", "host", "bridge"]
NETWORK_MODES: tuple[str, ...] = get_args(NetworkMode)
# On a host-network container: the port its server listens on (nothing is published to read).
LABEL_PORT = "harness.port"
_SETTING = "--harness-network / ini harness_network"


def host_network_refusal(info: Mapping[str, Any], *, hostname: str) -> str | None:
    """Why the local engine's host network is not this process's loopback (from the engine's
    `info`), or None when it is."""
    if str(info.get("OSType", "")).lower() != "linux":
        return f"the engine runs {info.get('OSType') or 'non-Linux'} containers"
    if any("rootless" in str(option) for option in info.get("SecurityOptions") or ()):
        return "the engine is rootless: its host network is a namespace of its own"
    if "docker desktop" in str(info.get("OperatingSystem", "")).lower():
        return "Docker Desktop runs the engine in a VM, whose host network is not this machine's"
    if info.get("Name") != hostname:
        return (
            f"the engine's host is {info.get('Name')!r} and this process's is {hostname!r}: "
            "it runs in another container or machine"
        )
    return None


def refusal_here(client: Any) -> str | None:
    """Why the engine `client` talks to cannot put servers on this process's loopback through
    its host network, or None when it can (a remote engine is not asked)."""
    where = endpoint()
    if not where.is_local:
        return f"the engine is reached over the network ({where.host})"
    return host_network_refusal(client.info(), hostname=socket.gethostname())


def use_host_network(mode: str, client: Any) -> bool:
    """Whether a worker's services go on the engine's host network, for `mode`: `bridge`
    never, `host` always (an error when it cannot work), `auto` when it works here."""
    if mode not in NETWORK_MODES:
        raise HarnessError(
            f"harness_network = {mode!r} is not a network mode",
            checked=_SETTING,
            fix="use auto (the default), host or bridge",
        )
    if mode == "bridge":
        return False
    reason = refusal_here(client)
    if reason is None:
        return True
    if mode == "host":
        raise HarnessError(
            f"harness_network = host, but {reason}",
            checked=f"{_SETTING} against the engine's `docker info` (OS, security options, host name)",
            fix="use harness_network = auto, which publishes ports on loopback where the host network "
            "cannot be reached, or bridge",
        )
    return False


def free_loopback_port() -> int:
    """A TCP port free on 127.0.0.1 now. Another process may take it before the server binds
    it; the caller starts again on a new one when the server says the address is in use."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
