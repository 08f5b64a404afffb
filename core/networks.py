"""The networks a listener accepts clients from, as a ClickHouse user's `<networks>` lists them.

`ANALYTICS_CLICKHOUSE_ALLOWED_NETWORKS` and `ANALYTICS_GRPC_ALLOWED_NETWORKS` hold a comma-separated
list of addresses and CIDR networks (`10.0.0.0/8, 192.168.1.7, fd00::/8`); an IPv4 client is in an
IPv6 network that holds its IPv4-mapped address (`::/0`, `::ffff:10.0.0.0/104`), as in ClickHouse,
which compares every client as IPv6. Loopback is always
allowed: the stack's own components (the bridge, Dagster, the gRPC service) reach the embedded
ClickHouse through it, and whoever is on the machine can read the data directory anyway.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import unquote

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str) -> tuple[Network, ...]:
    """The networks of a comma-separated list; a ValueError names the entry that is not one."""
    networks = []
    for entry in text.split(","):
        entry = entry.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(
                f"{entry!r} is not an IP address or a CIDR network (such as 10.0.0.0/8 or fd00::/8)"
            ) from None
    if not networks:
        raise ValueError("the list names no network: give addresses or CIDR networks, comma-separated")
    return tuple(networks)


def normalized(text: str) -> str:
    """The list as the settings keep it: each network in its canonical form, once."""
    return ",".join(dict.fromkeys(str(network) for network in parse_networks(text)))


def client_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address of a client's host as a server sees it (an IPv4 client of a dual-stack
    socket as itself, not as ::ffff:a.b.c.d); None when it is not an IP address."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])  # fe80::1%eth0: the zone is no part of it
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def grpc_peer_host(peer: str) -> str | None:
    """The host of a gRPC peer string ('ipv4:10.1.2.3:5555', 'ipv6:[::1]:5555', its %-encoded
    form 'ipv6:%5B::1%5D:5555'); None for a Unix socket or anything else without an IP address."""
    kind, _, rest = unquote(peer).partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0] or None
    if kind == "ipv6" and rest.startswith("["):
        return rest[1:].partition("]")[0] or None
    return None


@dataclass(frozen=True)
class AllowedNetworks:
    """Whom a listener serves: loopback always, others when their address is in one of ``networks``."""

    networks: tuple[Network, ...]
    setting: str  # the variable the list came from, for the messages that refuse a client

    @classmethod
    def from_setting(cls, text: str | None, setting: str) -> AllowedNetworks | None:
        """The allow-list of a setting's value; None (everyone) when it is unset."""
        return None if not text else cls(parse_networks(text), setting)

    @property
    def covers_every_address(self) -> bool:
        return any(network.prefixlen == 0 for network in self.networks)

    def allows(self, host: str | None) -> bool:
        """Whether a client at ``host`` may connect. A client without an IP address (a Unix
        socket's) is on this machine and may."""
        if host is None:
            return True
        address = client_address(host)
        if address is None:
            return False
        if address.is_loopback:
            return True
        # An IPv4 client is also its IPv4-mapped IPv6 address, as ClickHouse compares it: `::/0`
        # (ClickHouse's own "from everywhere") and `::ffff:10.0.0.0/104` take IPv4 clients too.
        forms = (address, ipaddress.IPv6Address(f"::ffff:{address}")) if address.version == 4 else (address,)
        return any(form in network for form in forms for network in self.networks)

    def refusal(self, host: str | None) -> str:
        """What a refused client is told."""
        return f"connections from {host} are not allowed: the address is not in {self.setting}"
