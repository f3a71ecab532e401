"""Who may steer the daemon over HTTP, judged from the request alone (docs/http-boundary.md).

A browser on the operator's machine is the attacker's best tool: any page it shows can send
requests to ``127.0.0.1:8080``. Three rules close that door:

* **The Host rule** (no admin token only): a private route answers a ``Host`` that is a loopback
  name or address, or one of ``server.allowed_hosts``. A page that rebinds its own name to
  127.0.0.1 sends its own name as ``Host``, and is refused before anything is read or set.
* **The cross-site rule**: a state-changing request (anything but GET, HEAD, OPTIONS) whose
  ``Origin`` is not the host it was sent to, or whose ``Sec-Fetch-Site`` is ``cross-site`` or
  ``same-site``, is refused. ``same-site`` too: a sibling subdomain (user content, another team's
  app) is not this daemon, and nothing here is ever driven from another origin. A client that is
  not a browser (the CLI, curl) sends neither header and passes.
* **Proxies believed**: only a peer in ``server.trusted_proxies`` may say, by
  ``X-Forwarded-Proto`` or ``Forwarded: proto=``, that the client came over HTTPS (cookies become
  ``Secure``), and by ``X-Forwarded-For`` / ``Forwarded: for=`` who the client is (the sign-in
  limit's key). Whoever sends them, forwarding headers never make a request local
  (:func:`leadlawk_daemon.http_api.is_local_client`).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from aiohttp import web

from leadlawk_daemon.settings import ServerSettings

__all__ = ["SAFE_METHODS", "HttpBoundary", "host_name", "is_loopback_address", "origin_is_host"]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# What a browser says of where a request came from; only these two are this daemon's own pages
# (``none``: typed in the address bar or a bookmark).
_OWN_FETCH_SITES = frozenset({"same-origin", "none"})
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address(text: str | None) -> _Address | None:
    if not text:
        return None
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    # ::ffff:127.0.0.1 is 127.0.0.1 (Python 3.11 does not say it is loopback).
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_loopback_address(text: str | None) -> bool:
    address = _address(text)
    return address is not None and address.is_loopback


def host_name(host: str) -> str | None:
    """The name or address a ``Host`` header (or an Origin's netloc) names, lower-cased, without its
    port or IPv6 brackets; None when it is not one (userinfo, a bad port, garbage)."""
    try:
        parts = urlsplit("//" + host)
        parts.port  # noqa: B018 - raises ValueError on a port that is not one
    except ValueError:
        return None
    if parts.username is not None or parts.path or parts.query or parts.fragment or not parts.hostname:
        return None
    return parts.hostname


def origin_is_host(origin: str, host: str) -> bool:
    """``origin`` (an ``Origin`` or ``Referer`` value) names the same host and port as ``host`` (the
    request's ``Host``). The scheme is not compared: a TLS-terminating proxy turns https into http,
    not the host."""
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    return hmac.compare_digest(parts.netloc.lower().encode(), host.lower().encode())


def _last(values: str) -> str:
    """The entry the nearest proxy appended to a comma-separated forwarding header."""
    return values.rsplit(",", 1)[-1].strip()


class HttpBoundary:
    """The rules above, built once from ``server.*``."""

    def __init__(self, server: ServerSettings) -> None:
        self._allowed_hosts = frozenset(name.lower() for name in server.allowed_hosts)
        self._trusted: tuple[_Network, ...] = tuple(server.trusted_proxies)

    def host_allowed(self, request: web.BaseRequest) -> bool:
        """The Host rule: a loopback name or address, or one of ``server.allowed_hosts``."""
        name = host_name(request.host)
        if name is None:
            return False
        return name == "localhost" or is_loopback_address(name) or name in self._allowed_hosts

    def cross_site(self, request: web.BaseRequest) -> str | None:
        """Why a state-changing request comes from another site, or None when it does not."""
        fetch_site = request.headers.get("Sec-Fetch-Site", "").strip().lower()
        if fetch_site and fetch_site not in _OWN_FETCH_SITES:
            return f"cross-site request refused (Sec-Fetch-Site: {fetch_site})"
        origin = request.headers.get("Origin")
        if origin is not None and not origin_is_host(origin, request.host):
            return "cross-site request refused: its Origin is not this daemon's address"
        return None

    def from_trusted_proxy(self, request: web.BaseRequest) -> bool:
        address = _address(request.remote)
        return address is not None and _within(address, self._trusted)

    def reached_over_https(self, request: web.BaseRequest) -> bool:
        """HTTPS to us, or to a trusted proxy that says so: its cookies are then ``Secure``."""
        if request.secure:
            return True
        if not self.from_trusted_proxy(request):
            return False
        proto = request.headers.get("X-Forwarded-Proto")
        if proto is not None:
            return _last(proto).lower() == "https"
        forwarded = request.forwarded
        return bool(forwarded) and str(forwarded[-1].get("proto", "")).lower() == "https"

    def client(self, request: web.BaseRequest) -> str:
        """Who the client is, as far as can be believed: the peer, or the client a trusted proxy names."""
        if self.from_trusted_proxy(request):
            named = ""
            if (relayed := request.headers.get("X-Forwarded-For")) is not None:
                named = _last(relayed)
            elif request.forwarded:
                named = str(request.forwarded[-1].get("for", ""))
            named = named.strip().strip('"')
            # A bare address, or one with a port (``192.0.2.4:4711``, ``[2001:db8::1]:4711``).
            if (address := _address(named) or _address(host_name(named) if named else None)) is not None:
                return str(address)
        return request.remote or "unknown"


def _within(address: _Address, networks: Iterable[_Network]) -> bool:
    return any(address.version == network.version and address in network for network in networks)
