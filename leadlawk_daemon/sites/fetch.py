"""One HTTP request to a website, within every limit a polite and safe crawler keeps.

* at most ``per_host`` requests in flight per site (``www.`` and the bare host count as one);
* each request, body included, within ``timeout``; the body read in chunks and cut at
  ``max_bytes`` (a 2 MB cap costs 2 MB, an endless body too);
* redirects are not followed here: the client follows them one hop at a time, so that each hop
  is checked against robots.txt and counted;
* through ``proxy`` when one is set (a plain HTTP forward proxy; ``https://`` goes through it
  with CONNECT, so the certificate checked is the site's own);
* certificates checked against the system's trust store, plus ``ca_file`` when set;
* only where the egress policy allows (:mod:`leadlawk_daemon.sites.policy`): every request made
  through a fetcher, whoever builds it, is checked, on the URL before it is sent and on the
  address actually connected to (:mod:`leadlawk_daemon.sites.policy_connector`);
* a compressed body cut at ``max_bytes`` of decompressed data: aiohttp (>= 3.13.3) inflates it in
  bounded steps as it is read, so a gzip bomb costs the cap, not its inflated size.

A URL that cannot be read raises :class:`FetchFailure`, whose ``reason`` is a fact about the site
(``refused``: the policy refused it, nothing was sent); a proxy that cannot be reached raises
:class:`ProxyUnreachable`: that one is about us.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver
from multidict import CIMultiDict
from yarl import URL

from leadlawk_daemon.sites.decode import decode_body  # re-exported: it lived here before sites.decode
from leadlawk_daemon.sites.extract import site_key
from leadlawk_daemon.sites.policy import EgressPolicy, EgressRefused, host_address
from leadlawk_daemon.sites.policy_connector import PolicyResolver, policy_connector
from leadlawk_daemon.sites.tech import header_names

__all__ = ["FetchFailure", "Fetcher", "HostLimiter", "Page", "ProxyUnreachable", "decode_body"]

_KEPT_HEADERS = ("content-type", "location", "last-modified", "server", "x-powered-by", "x-generator",
                 "x-wix-request-id", "x-shopify-stage", "x-shopid", "x-host", "link", "content-length")


class FetchFailure(Exception):
    """A URL that could not be read. ``unreachable``: nothing answered (DNS, refused, timeout);
    ``refused``: the egress policy refused the destination, and nothing was sent to it."""

    def __init__(
        self, reason: str, *, unreachable: bool = False, certificate: bool = False, refused: bool = False
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.unreachable = unreachable
        self.certificate = certificate
        self.refused = refused


class ProxyUnreachable(Exception):
    """The configured forward proxy did not accept our connection: our egress, not the site."""


@dataclass(slots=True)
class Page:
    url: str
    status: int
    headers: CIMultiDict[str]
    body: bytes | bytearray  # the bytearray it was read into: copying 2 MB again buys nothing
    size: int  # bytes the server meant to send: Content-Length, or what was read
    truncated: bool


class _Host:
    __slots__ = ("active", "semaphore", "users")

    def __init__(self, per_host: int) -> None:
        self.semaphore = asyncio.Semaphore(per_host)
        self.users = 0  # waiting or holding
        self.active = 0  # holding


class HostLimiter:
    """At most ``per_host`` holders per site key; entries vanish when their last user leaves."""

    def __init__(self, per_host: int) -> None:
        self.per_host = per_host
        self._hosts: dict[str, _Host] = {}
        self.peak: dict[str, int] = {}  # the most holders each key ever had (tests, the bench)

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        host = self._hosts.get(key)
        if host is None:
            host = self._hosts[key] = _Host(self.per_host)
        host.users += 1
        try:
            async with host.semaphore:
                host.active += 1
                if host.active > self.peak.get(key, 0):
                    if len(self.peak) > 10_000:
                        self.peak.clear()
                    self.peak[key] = host.active
                try:
                    yield
                finally:
                    host.active -= 1
        finally:
            host.users -= 1
            if host.users == 0:
                del self._hosts[key]

    def __len__(self) -> int:
        return len(self._hosts)


def _failure(exc: BaseException, timeout: float) -> FetchFailure:
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        detail = getattr(exc.certificate_error, "verify_message", None) or str(exc.certificate_error)
        return FetchFailure(f"invalid certificate: {detail}", certificate=True)
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        # A forward proxy answers a CONNECT it cannot complete with 502/503/504: the site's host
        # did not resolve or refused; the proxy itself is fine.
        return FetchFailure(f"unreachable (proxy answered {exc.status} {exc.message})", unreachable=True)
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return FetchFailure("DNS lookup failed", unreachable=True)
    if isinstance(exc, aiohttp.ClientConnectorError):
        cause = exc.os_error.strerror or type(exc.os_error).__name__
        return FetchFailure(f"cannot connect: {cause}", unreachable=True)
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        return FetchFailure(f"TLS handshake failed: {exc}", unreachable=True)
    if isinstance(exc, TimeoutError):
        return FetchFailure(f"timed out after {timeout:g} s", unreachable=True)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError | aiohttp.ClientOSError):
        return FetchFailure("connection dropped", unreachable=True)
    if isinstance(exc, aiohttp.TooManyRedirects):
        return FetchFailure("too many redirects")
    return FetchFailure(f"bad response: {type(exc).__name__}")


class Fetcher:
    """An aiohttp session with the crawler's limits; ``open()`` before use, ``close()`` after."""

    def __init__(
        self,
        *,
        user_agent: str,
        timeout: float,
        max_bytes: int,
        per_host: int,
        max_connections: int,
        proxy: str | None = None,
        ca_file: str | None = None,
        policy: EgressPolicy | None = None,
        resolver: AbstractResolver | None = None,
    ) -> None:
        """``policy``: where requests may go (default: globally routable addresses only);
        ``resolver``: the real resolver the policy's wraps (tests map names with one)."""
        self.user_agent = user_agent
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.proxy = proxy
        self.hosts = HostLimiter(per_host)
        self.policy = policy if policy is not None else EgressPolicy()
        self._inner_resolver = resolver
        self._resolver: PolicyResolver | None = None
        self._max_connections = max_connections
        self._ssl = ssl.create_default_context()
        if ca_file:
            self._ssl.load_verify_locations(cafile=ca_file)
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        if self._session is None:
            # Through a proxy, names are the proxy's to resolve: only the URLs are ours to check.
            self._resolver = None if self.proxy is not None else PolicyResolver(self.policy, self._inner_resolver)
            connector = policy_connector(limit=self._max_connections, resolver=self._resolver)
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": self.user_agent, "Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5",
                         "Accept-Language": "en;q=0.9,*;q=0.5"},
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
            )

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
        if self._resolver is not None:
            resolver, self._resolver = self._resolver, None
            await resolver.close()

    async def check(self, url: str) -> None:
        """Raises :class:`FetchFailure` (``refused``) when the egress policy refuses ``url``'s
        destination, resolving its name (when no proxy does) to know; sends nothing to the site.
        For callers that must refuse a destination up front (``leadlawk site URL``); every request
        is checked again, on the address it connects to."""
        try:
            target = URL(url, encoded=False)
        except (ValueError, TypeError):
            raise FetchFailure("invalid URL") from None
        host = target.raw_host or ""
        try:
            self.policy.check_host(host, names_resolved_by_proxy=self.proxy is not None)
            if self._resolver is not None and host_address(host) is None:
                with contextlib.suppress(OSError):  # a name that does not resolve is the site's fact
                    await self._resolver.resolve(host, target.port or 0, socket.AF_UNSPEC)
        except EgressRefused as exc:
            raise FetchFailure(str(exc), refused=True) from None

    async def get(self, url: str, *, verify: bool = True, max_bytes: int | None = None) -> Page:
        """GET ``url`` (no redirect followed); raises :class:`FetchFailure` or :class:`ProxyUnreachable`."""
        if self._session is None:
            raise RuntimeError("Fetcher.get before open()")
        try:
            target = URL(url, encoded=False)
        except (ValueError, TypeError):
            raise FetchFailure("invalid URL") from None
        if target.scheme not in ("http", "https") or not target.raw_host:
            raise FetchFailure("invalid URL")
        cap = self.max_bytes if max_bytes is None else max_bytes
        try:
            # The host exactly as it goes on the wire (or to the proxy), before anything is sent.
            self.policy.check_host(target.raw_host, names_resolved_by_proxy=self.proxy is not None)
        except EgressRefused as exc:
            raise FetchFailure(str(exc), refused=True) from None
        async with self.hosts.hold(site_key(target.host or target.raw_host)):
            try:
                async with asyncio.timeout(self.timeout):
                    return await self._get(target, verify, cap)
            except EgressRefused as exc:  # a name that resolved only to refused addresses
                raise FetchFailure(str(exc), refused=True) from None
            except aiohttp.ClientProxyConnectionError as exc:
                raise ProxyUnreachable(f"the sites proxy cannot be reached: {exc.os_error.strerror}") from None
            except (aiohttp.ClientError, TimeoutError, ssl.SSLError, ValueError) as exc:
                raise _failure(exc, self.timeout) from None

    async def _get(self, target: URL, verify: bool, cap: int) -> Page:
        assert self._session is not None
        async with self._session.get(
            target, proxy=self.proxy, ssl=self._ssl if verify else False, allow_redirects=False,
        ) as response:
            body = bytearray()
            truncated = False
            async for chunk in response.content.iter_chunked(64 * 1024):
                room = cap - len(body)
                if len(chunk) > room:
                    body += chunk[:room]
                    truncated = True
                    break
                body += chunk
            if truncated:
                response.close()  # drop the connection rather than drain an endless body
            headers: CIMultiDict[str] = CIMultiDict()
            for name in _KEPT_HEADERS:
                value = response.headers.get(name)
                if value is not None:
                    headers[name] = value[:2000]
            # The technology fingerprints read these too (sites/tech.py), and the cookies' names.
            for name in header_names():
                value = response.headers.get(name)
                if value is not None and name not in headers and name != "set-cookie":
                    headers[name] = value[:2000]
            for cookie in response.headers.getall("set-cookie", [])[:20]:
                headers.add("set-cookie", cookie.split(";", 1)[0][:200])
            if self.proxy is not None and response.status in (502, 504) and response.url.scheme == "http":
                # Through a forward proxy a plain request to a host that cannot be reached comes back
                # as the proxy's own 502/504: the same fact as a failed CONNECT.
                raise FetchFailure(f"unreachable (proxy answered {response.status})", unreachable=True)
            declared = response.content_length or 0
            return Page(
                url=str(response.url), status=response.status, headers=headers, body=body,
                size=max(declared, len(body)), truncated=truncated,
            )
