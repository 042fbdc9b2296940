"""Who is asking: the client IP (trusting proxies only when configured) and user agent."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(items: Sequence[str]) -> list[IPNetwork]:
    return [ipaddress.ip_network(item, strict=False) for item in items]


def _valid_ip(value: str) -> str | None:
    value = value.strip().strip('"')
    if value.startswith("["):
        value = value[1:].split("]", 1)[0]
    elif value.count(":") == 1:  # IPv4 with a port
        value = value.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def _forwarded_chain(forwarded: str, x_forwarded_for: str) -> list[str]:
    chain: list[str] = []
    if forwarded:
        for element in forwarded.split(","):
            for pair in element.split(";"):
                name, _, value = pair.partition("=")
                if name.strip().lower() == "for":
                    chain.append(value)
    elif x_forwarded_for:
        chain = x_forwarded_for.split(",")
    return chain


def client_ip(remote_addr: str, forwarded: str, x_forwarded_for: str, trusted: Sequence[IPNetwork]) -> str:
    """Return the address of the client that made the request.

    Proxy headers are believed only when the direct peer is a trusted proxy;
    then the chain is walked from the right, skipping trusted hops, and the
    first untrusted address is the client.  A spoofed header from an
    untrusted peer changes nothing.
    """
    peer = _valid_ip(remote_addr) or "0.0.0.0"  # noqa: S104 - an unknown peer, not a bind address
    if not trusted or not _is_trusted(peer, trusted):
        return peer
    candidate = peer
    for hop in reversed(_forwarded_chain(forwarded, x_forwarded_for)):
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
