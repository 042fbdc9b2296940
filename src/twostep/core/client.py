"""Who is asking: the client IP (trusting proxies only when configured) and user agent."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Literal

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: The header a trusted proxy writes the client's address into.  Only that one
#: is read: a proxy passes the other through as the client sent it.
ProxyHeader = Literal["x-forwarded-for", "forwarded"]


def address_group(ip: str) -> str:
    """The client a per-address limit counts ``ip`` as: itself for IPv4, its /64 for IPv6.

    One IPv6 subscriber usually holds a whole /64: counting each address
    apart would give them 2**64 separate allowances.

    Raises:
        ValueError: ``ip`` is not an IP address.
    """
    address = ipaddress.ip_address(ip)
    if address.version == 6:
        return str(ipaddress.ip_network((address, 64), strict=False))
    return str(address)


def is_local_peer(remote_addr: str) -> bool:
    """Whether ``remote_addr`` is this machine or a private network: where a reverse proxy usually is."""
    address = _valid_ip(remote_addr)
    if address is None:
        return False
    parsed = ipaddress.ip_address(address)
    return parsed.is_loopback or parsed.is_private


def parse_networks(items: Sequence[str]) -> list[IPNetwork]:
    return [ipaddress.ip_network(item, strict=False) for item in items]


def _valid_ip(value: str) -> str | None:
    value = value.strip().strip('"')
    if value.startswith("["):
        value = value[1:].split("]", 1)[0]
    elif value.count(":") == 1:  # IPv4 with a port
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    # A dual-stack socket shows IPv4 clients as ::ffff:a.b.c.d.  They are IPv4
    # clients: each is its own address for the throttles (not all of ::/64),
    # and an IPv4 network in server.trusted_proxies must match them.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def proxy_chain(header: ProxyHeader, value: str) -> list[str]:
    """The hops named by one proxy header, left (farthest) to right (nearest)."""
    if header == "x-forwarded-for":
        return value.split(",") if value else []
    chain: list[str] = []
    for element in value.split(","):
        for pair in element.split(";"):
            name, _, hop = pair.partition("=")
            if name.strip().lower() == "for":
                chain.append(hop)
    return chain


def client_ip(remote_addr: str, chain: Sequence[str], trusted: Sequence[IPNetwork]) -> str:
    """Return the address of the client that made the request.

    ``chain`` is what the proxy header names (``proxy_chain``).  It is
    believed only when the direct peer is a trusted proxy; then it is walked
    from the right, skipping trusted hops, and the first untrusted address is
    the client.  A spoofed header from an untrusted peer changes nothing.
    """
    peer = _valid_ip(remote_addr) or "0.0.0.0"  # noqa: S104 - an unknown peer, not a bind address
    if not trusted or not _is_trusted(peer, trusted):
        return peer
    candidate = peer
    for hop in reversed(chain):
        address = _valid_ip(hop)
        if address is None:
            break
        candidate = address
        if not _is_trusted(address, trusted):
            break
    return candidate


def is_trusted_peer(remote_addr: str, trusted: Sequence[IPNetwork]) -> bool:
    """True when the connection itself comes from one of the ``trusted`` proxies."""
    address = _valid_ip(remote_addr)
    return address is not None and _is_trusted(address, trusted)


def _is_trusted(address: str, trusted: Sequence[IPNetwork]) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip in network for network in trusted)
