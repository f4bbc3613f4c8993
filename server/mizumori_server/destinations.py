"""Where webhooks may be sent (docs/alerts.md, "Destinations"): only to public addresses,
unless an admin allows a destination in MIZUMORI_WEBHOOK_ALLOW. A webhook URL is checked
when it is configured (its literal address, or the addresses its name resolves to) and
again at every delivery, on the address the name resolves to then: the delivery connects
to that very address (with the name in the Host header and for TLS), so DNS cannot turn an
allowed name into a loopback or private address between the check and the connection.

Refused: loopback, link-local, private (RFC 1918, unique local, shared 100.64/10),
multicast, unspecified and reserved addresses, and anything else that is not globally
routable (ipaddress's is_global), IPv4-mapped IPv6 included.

MIZUMORI_WEBHOOK_ALLOW is a comma-separated list of destinations that are allowed although
not public, each an address or a network with an optional port, or a host name with an
optional port:

    127.0.0.1:8080, 10.20.0.0/16, [fd00::1]:443, gis.city.local:8443, alarms.city.local

A port-less entry allows every port. A name entry allows that name (as written in the
webhook's URL) whatever it resolves to: the admin trusts that name's DNS."""

import ipaddress
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# (host, port) -> the addresses it resolves to; socket.getaddrinfo unless a test swaps it.
Resolver = Callable[[str, int], list[str]]
HOST_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\.?$")


class Refused(ValueError):
    """The destination is not allowed (or its name does not resolve at delivery)."""


@dataclass(frozen=True)
class Allowed:
    """One MIZUMORI_WEBHOOK_ALLOW entry: a network or a host name, and a port or any."""

    network: Network | None
    name: str | None
    port: int | None

    def admits(self, host: str, address: Address | None, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.name is not None:
            return host.rstrip(".") == self.name
        return address is not None and self.network is not None and address in self.network


def _port(text: str, entry: str) -> int:
    if not text.isascii() or not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"webhook_allow entry {entry!r}: port {text!r} is not 1..65535")
    return int(text)


@lru_cache(maxsize=8)
def parse_allow(text: str) -> tuple[Allowed, ...]:
    """The entries of MIZUMORI_WEBHOOK_ALLOW; ValueError naming a malformed one."""
    out = []
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        port: int | None = None
        host = entry
        if entry.startswith("["):  # [IPv6 address or network](:port)
            inner, bracket, rest = entry[1:].partition("]")
            if not bracket:
                raise ValueError(f"webhook_allow entry {entry!r}: no closing ]")
            host = inner
            if rest:
                if not rest.startswith(":"):
                    raise ValueError(f"webhook_allow entry {entry!r}: expected [address]:port")
                port = _port(rest[1:], entry)
        elif entry.count(":") == 1:  # host:port or address:port
            host, _, p = entry.partition(":")
            port = _port(p, entry)
        try:
            out.append(Allowed(ipaddress.ip_network(host, strict=False), None, port))
            continue
        except ValueError:
            pass
        name = host.lower().rstrip(".")
        if not HOST_NAME.match(name) or len(name) > 253:
            raise ValueError(f"webhook_allow entry {entry!r}: not an address, a network or "
                             "a host name")
        out.append(Allowed(None, name, port))
    return tuple(out)


def public(address: Address) -> bool:
    """Whether an address is globally routable: none of the refused kinds."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return public(address.ipv4_mapped)
    return address.is_global and not (
        address.is_private or address.is_loopback or address.is_link_local
        or address.is_multicast or address.is_unspecified or address.is_reserved)


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True)
class Target:
    """Where to connect for a URL: `url` with the host replaced by the address it was
    checked at, and the name to send in Host (and for TLS)."""

    url: str
    host_header: str
    server_name: str


def split(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL; Refused if it has none of them."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        raise Refused("not a valid URL") from None
    if parts.scheme not in ("http", "https") or not host:
        raise Refused("only http and https URLs with a host")
    return parts.scheme, host.lower(), port or (443 if parts.scheme == "https" else 80)


def _resolved(host: str, port: int, resolve: Resolver | None) -> list[Address]:
    found = (resolve or system_resolver)(host, port)
    return [ipaddress.ip_address(a.split("%")[0]) for a in found]  # without a zone index


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def permitted(host: str, address: Address, port: int, allow: tuple[Allowed, ...]) -> bool:
    return public(address) or any(a.admits(host, address, port) for a in allow)


def check(url: str, allow: tuple[Allowed, ...], resolve: Resolver | None = None) -> None:
    """When a webhook is configured: Refused if its URL names an address that is not
    allowed, or a name that resolves to one. A name that does not resolve (yet) passes:
    every delivery checks again."""
    _, host, port = split(url)
    if any(a.admits(host, None, port) for a in allow):
        return
    literal = _literal(host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            addresses = _resolved(host, port, resolve)
        except (OSError, UnicodeError, ValueError):
            return
    for address in addresses:
        if not permitted(host, address, port, allow):
            # the address itself is not told: the answer must not map internal names
            raise Refused(f"{host} is not a public address (an admin can allow it with "
                          "MIZUMORI_WEBHOOK_ALLOW)")


def target(url: str, allow: tuple[Allowed, ...], resolve: Resolver | None = None) -> Target:
    """At delivery: resolve the URL's host once, refuse it unless every address is allowed,
    and return the URL to connect to (the first address)."""
    scheme, host, port = split(url)
    literal = _literal(host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            addresses = _resolved(host, port, resolve)
        except (OSError, UnicodeError, ValueError):
            raise Refused("the name does not resolve") from None
    if not addresses or not all(permitted(host, a, port, allow) for a in addresses):
        raise Refused("not an allowed address")
    parts = urlsplit(url)
    first = addresses[0]
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = (userinfo + "@" if userinfo else "") + (
        f"[{first}]" if first.version == 6 else str(first)) + f":{port}"
    default = 443 if scheme == "https" else 80
    host_header = parts.hostname or host
    if ":" in host_header:
        host_header = f"[{host_header}]"
    if parts.port is not None and parts.port != default:
        host_header += f":{parts.port}"
    return Target(parts._replace(netloc=netloc).geturl(), host_header, host)
