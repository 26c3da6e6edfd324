"""The host-process engine's networking on this machine: its bridge on a free 10.x /24, the
pool its own networks are cut from, the iptables rules that let its containers reach each
other, and removing all of that again (also the bridges of its networks that a killed
dockerd left behind)."""

from __future__ import annotations

import ipaddress
import re
import secrets
import shutil
from dataclasses import replace

from tierharness.engine.second_engine_record import EngineRecord
from tierharness.errors import HarnessError
from tierharness.process import run

__all__ = ["FIX_ROOT", "accept_forwarding", "free_subnet", "make_bridge", "remove_networks"]

_NETWORK_BRIDGE = re.compile(r"br-[0-9a-f]{12}")  # a Docker network's bridge: br- and its id's start

FIX_ROOT = (
    "a second engine as a host process needs root (ip link, dockerd), dockerd >= 26 and the iproute2 "
    "tools; without root, use the container engine (HARNESS_SECOND_ENGINE=container, the default for "
    "other users)"
)


def _addresses() -> list[tuple[str, ipaddress.IPv4Interface]]:
    """(link, address) of every IPv4 address on this machine."""
    proc = run(["ip", "-4", "-o", "addr", "show"], what="listing addresses", fix=FIX_ROOT)
    found = []
    for line in proc.stdout.splitlines():
        fields = line.split()
        for i, field in enumerate(fields[:-1]):
            if field == "inet":
                found.append((fields[1], ipaddress.IPv4Interface(fields[i + 1])))
    return found


def free_subnet(prefixlen: int = 24, avoid: tuple[ipaddress.IPv4Network, ...] = ()) -> ipaddress.IPv4Network:
    """A 10.x network of `prefixlen` that no interface of this machine uses yet."""
    used = [address.network for _, address in _addresses()] + list(avoid)
    for _ in range(100):
        third = secrets.randbelow(254) if prefixlen == 24 else 0
        candidate = ipaddress.IPv4Network(f"10.{secrets.randbelow(200) + 40}.{third}.0/{prefixlen}")
        if not any(candidate.overlaps(net) for net in used):
            return candidate
    raise HarnessError(
        f"no free /{prefixlen} for the second engine's networks", checked="ip -4 addr", fix=FIX_ROOT
    )


def make_bridge(record: EngineRecord) -> None:
    """The engine's bridge, up, with the first address of its subnet."""
    subnet = ipaddress.IPv4Network(record.subnet)
    gateway = f"{next(subnet.hosts())}/{subnet.prefixlen}"
    for argv in (
        ["ip", "link", "add", "name", record.bridge, "type", "bridge"],
        ["ip", "addr", "add", gateway, "dev", record.bridge],
        ["ip", "link", "set", record.bridge, "up"],
    ):
        run(argv, what="making the second engine's bridge", fix=FIX_ROOT)


def _forward_rules(record: EngineRecord) -> list[list[str]]:
    """Its containers may reach each other (a stack's service its Postgres): with the first
    engine's iptables, bridged traffic passes FORWARD, whose policy is DROP for any bridge the
    first engine did not make. Only traffic within its own networks is accepted."""
    return [["-s", net, "-d", net, "-j", "ACCEPT"] for net in (record.subnet, record.pool) if net]


def _forward_chain() -> str:
    """DOCKER-USER, the chain Docker keeps for rules of others, when the first engine made it;
    else FORWARD; "" without iptables."""
    if shutil.which("iptables") is None:
        return ""
    proc = run(["iptables", "-S", "DOCKER-USER"], what="iptables", fix=FIX_ROOT, check=False)
    return "DOCKER-USER" if proc.returncode == 0 else "FORWARD"


def accept_forwarding(record: EngineRecord) -> EngineRecord:
    """Insert `_forward_rules` where this machine's iptables wants them; the record, saved
    with that chain before the rules exist, so they are removed with the engine whatever
    happens next. Without iptables, the record as it was."""
    chain = _forward_chain()
    if not chain:
        return record
    record = replace(record, forward_chain=chain)
    record.save()
    for rule in _forward_rules(record):
        run(["iptables", "-I", chain, *rule], what="accepting its containers' traffic", fix=FIX_ROOT)
    return record


def remove_networks(record: EngineRecord) -> None:
    """Remove the engine's bridge, its FORWARD rules, and the bridges of its own networks."""
    if shutil.which("ip") is None:
        return  # no iproute2 here: no bridge, address or rule of this engine's could have been made
    run(["ip", "link", "delete", record.bridge], what="deleting the bridge", fix=FIX_ROOT, check=False)
    if record.forward_chain:
        for rule in _forward_rules(record):
            for _ in range(10):  # inserted once; a crash and a retry may have inserted it twice
                argv = ["iptables", "-D", record.forward_chain, *rule]
                if run(argv, what="removing a FORWARD rule", fix=FIX_ROOT, check=False).returncode:
                    break
    # The bridges of its own networks (a stack's), when a killed dockerd could not remove them:
    # only a network's bridge (br-ID) with an address in its own pool, which nothing else on
    # this machine used.
    if record.pool:
        pool = ipaddress.IPv4Network(record.pool)
        links = {link for link, address in _addresses() if address.ip in pool}
        for link in sorted(link for link in links if _NETWORK_BRIDGE.fullmatch(link)):
            run(["ip", "link", "delete", link], what=f"deleting {link}", fix=FIX_ROOT, check=False)
