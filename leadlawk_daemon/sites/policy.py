"""The egress policy: which addresses a request built from outside data may go to.

Everything the daemon fetches because a page, a listing or a job spec named it (a lead's website,
its robots.txt, a redirect hop, a contact page) could name the daemon's own API on loopback, the
cloud's metadata service on 169.254.169.254 or a host of the private network around it. Only
globally routable unicast addresses are allowed; every other class is refused, and
``sites.allowed_networks`` (CIDRs, default none) exempts what the operator chose to reach.

A host is read the way the code that connects would read it: an IPv4 literal in every spelling
``inet_aton`` and browsers accept (``2130706433``, ``0177.0.0.1``, ``0x7f.1``, ``127.1``), an IPv6
literal with an embedded IPv4 (``::ffff:127.0.0.1``, NAT64, 6to4, Teredo) judged by that IPv4 too.
Names are judged by the addresses they resolve to (:mod:`leadlawk_daemon.sites.policy_connector`);
only when a proxy resolves them for us are local names (``localhost``, ``*.internal``…) refused by
name, since their addresses are never seen here.
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from urllib.parse import unquote

__all__ = ["EgressPolicy", "EgressRefused", "address_class", "host_address", "is_local_name", "parse_ipv4"]

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network


class EgressRefused(Exception):
    """A destination the egress policy refuses; raised before anything is sent to it.

    ``what`` names the destination and its class (``"127.0.0.1 (loopback)"``): the reason recorded
    on the lead says where the request would have gone and why it did not.
    """

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} refused by the egress policy")
        self.what = what


# Checked in order, so a narrower range names the class before a wider one (broadcast before
# reserved). Embedded IPv4 forms are unwrapped before this table is read.
_REFUSED: tuple[tuple[Network, str], ...] = tuple(
    (ip_network(cidr), name)
    for cidr, name in (
        ("0.0.0.0/8", "unspecified"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "CGNAT"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "IETF protocol assignments"),
        ("192.0.2.0/24", "documentation"),
        ("192.88.99.0/24", "reserved"),  # the retired 6to4 relay anycast
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("255.255.255.255/32", "broadcast"),
        ("240.0.0.0/4", "reserved"),
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("64:ff9b:1::/48", "local-use NAT64"),  # its IPv4's place depends on the site's own prefix
        ("::/8", "reserved"),  # IPv4-compatible (deprecated) and the rest of the first /8
        ("100::/64", "discard-only"),
        ("2001:db8::/32", "documentation"),
        ("fc00::/7", "private"),  # unique local addresses (ULA)
        ("fe80::/10", "link-local"),
        ("fec0::/10", "private"),  # site-local, deprecated but still routed by some networks
        ("ff00::/8", "multicast"),
    )
)
_METADATA = {IPv4Address("169.254.169.254"): "cloud metadata", IPv4Address("100.100.100.200"): "cloud metadata",
             IPv6Address("fd00:ec2::254"): "cloud metadata"}
_NAT64 = IPv6Network("64:ff9b::/96")

# Names a proxy would resolve inside its own network: special-use (RFC 6761, RFC 8375, ICANN's
# .internal) and the suffixes home and office networks use by habit.
_LOCAL_SUFFIXES = ("localhost", "local", "internal", "home.arpa", "localdomain", "lan", "intranet", "corp",
                   "home", "private")
_NAME_CHARS = frozenset(string.ascii_lowercase + string.digits + "-._")


def _ipv4_number(part: str) -> int | None:
    """One dotted part as ``inet_aton`` and the WHATWG URL standard read it: ``0x`` hex, a
    leading ``0`` octal, else decimal; None when it is not a number in its radix."""
    radix = 10
    if part[:2] in ("0x", "0X"):
        part, radix = part[2:], 16
    elif len(part) > 1 and part[0] == "0":
        part, radix = part[1:], 8
    if not part:
        return 0  # "0x" alone is zero to both
    digits = string.hexdigits if radix == 16 else string.digits[:radix]
    if not all(c in digits for c in part):
        return None
    return int(part, radix)


def _ends_in_a_number(host: str) -> bool:
    """WHATWG: a host whose last label is a number is an IPv4 address or no valid host at all."""
    last = host.rsplit(".", 1)[-1]
    if last.isascii() and last.isdigit():
        return True
    return last[:2] in ("0x", "0X") and all(c in string.hexdigits for c in last[2:])


def parse_ipv4(host: str) -> IPv4Address | None:
    """The IPv4 address ``host`` spells in any form ``inet_aton`` accepts (one to four parts, each
    decimal, octal or hex, the last filling the remaining bytes); None for a name.

    Raises ValueError for a host that ends in a number yet spells no address (``1.2.3.4.5``,
    ``256.1.1.1``): browsers refuse it, and no resolver can be trusted to agree on its meaning.
    """
    text = host.rstrip(".")
    if not text or not _ends_in_a_number(text):
        return None
    parts = text.split(".")
    numbers = [_ipv4_number(part) if part else None for part in parts]
    if len(parts) > 4 or any(n is None for n in numbers):
        raise ValueError(f"not an IPv4 address: {host[:80]!r}")
    values = [n for n in numbers if n is not None]
    *leading, last = values
    if any(n > 255 for n in leading) or last >= 256 ** (5 - len(values)):
        raise ValueError(f"not an IPv4 address: {host[:80]!r}")
    number = last
    for index, value in enumerate(leading):
        number += value << (8 * (3 - index))
    return IPv4Address(number)


def host_address(host: str) -> Address | None:
    """The address a URL's host names (IPv6 with or without brackets and zone, IPv4 in any
    spelling); None for a name. ValueError: a host no connection could be made to as written."""
    text = host.strip("[]")
    if ":" in text:
        try:
            return ip_address(text.split("%", 1)[0])
        except ValueError:
            raise ValueError(f"not an IP address: {host[:80]!r}") from None
    return parse_ipv4(text)


def _embedded_ipv4(address: IPv6Address) -> tuple[str, IPv4Address] | None:
    """The IPv4 address an IPv6 address carries, and the form that carries it."""
    if address.ipv4_mapped is not None:
        return "IPv4-mapped", address.ipv4_mapped
    if address in _NAT64:
        return "NAT64", IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return "6to4", address.sixtofour
    if address.teredo is not None:
        return "Teredo", address.teredo[1]
    return None


def address_class(address: Address) -> str | None:
    """The class that makes ``address`` refused (``"loopback"``, ``"private"``…); None for a
    globally routable unicast address. Python's own registry data backs the table up."""
    for network, name in _REFUSED:
        if address.version == network.version and address in network:
            return name
    if address.is_multicast:
        return "multicast"
    if address.is_reserved:
        return "reserved"
    if not address.is_global:
        return "not globally routable"
    return None


def is_local_name(host: str) -> bool:
    """A name that only a local resolver answers (``localhost``, ``printer.local``,
    ``metadata.google.internal``, a single label found through a search domain)."""
    name = host.rstrip(".").lower()
    if "." not in name:
        return True
    return any(name == suffix or name.endswith("." + suffix) for suffix in _LOCAL_SUFFIXES)


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    """Globally routable unicast only, plus ``allowed`` networks."""

    allowed: tuple[Network, ...] = ()

    @classmethod
    def from_cidrs(cls, cidrs: Iterable[str | Network]) -> EgressPolicy:
        return cls(tuple(ip_network(str(cidr), strict=False) for cidr in cidrs))

    def _allowed(self, address: Address) -> bool:
        return any(address.version == network.version and address in network for network in self.allowed)

    def refusal(self, address: Address) -> str | None:
        """Why ``address`` is refused (``"169.254.169.254 (link-local, cloud metadata)"``); None
        when it may be connected to."""
        why = self._class(address)
        return None if why is None else f"{address} ({why})"

    def _class(self, address: Address) -> str | None:
        if self._allowed(address):
            return None
        if isinstance(address, IPv6Address):
            embedded = _embedded_ipv4(address)
            if embedded is not None:
                form, inner = embedded
                why = self._class(inner)
                return None if why is None else f"{form} {inner}, {why}"
        name = address_class(address)
        if name is None:
            return None
        extra = _METADATA.get(address)
        return f"{name}, {extra}" if extra else name

    def check_address(self, address: Address) -> None:
        """Raises :class:`EgressRefused` unless ``address`` may be connected to."""
        why = self.refusal(address)
        if why is not None:
            raise EgressRefused(why)

    def check_host(self, host: str, *, names_resolved_by_proxy: bool) -> None:
        """Before anything is sent: an IP literal (any spelling) must be allowed; with a proxy,
        which resolves names where we cannot see the answer, a local name is refused too.
        Without one, names are checked on the addresses they resolve to, at connect time."""
        # Decoded once, as a browser or a proxy would before resolving: "127.0.0.1%2e" is 127.0.0.1.
        text = unquote(host).lower()
        shown = repr(text[:80]) if not text.isprintable() else text[:80]
        if not text or (":" not in text and not set(text) <= _NAME_CHARS):
            raise EgressRefused(f"{shown} (not a host name)")
        try:
            address = host_address(text)
        except ValueError:
            raise EgressRefused(f"{shown} (not a valid IP address)") from None
        if address is not None:
            self.check_address(address)
        elif names_resolved_by_proxy and is_local_name(text):
            raise EgressRefused(f"{shown} (a local name)")
