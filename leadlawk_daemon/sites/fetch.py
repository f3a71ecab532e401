"""One HTTP request to a website, within every limit a polite and safe crawler keeps.

* at most ``per_host`` requests in flight per site (``www.`` and the bare host count as one);
* each request, body included, within ``timeout``; the body read in chunks and cut at
  ``max_bytes`` (a 2 MB cap costs 2 MB, an endless body too);
* redirects are not followed here: the client follows them one hop at a time, so that each hop
  is checked against robots.txt and counted;
* through ``proxy`` when one is set (a plain HTTP forward proxy; ``https://`` goes through it
  with CONNECT, so the certificate checked is the site's own);
* certificates checked against the system's trust store, plus ``ca_file`` when set.

A URL that cannot be read raises :class:`FetchFailure`, whose ``reason`` is a fact about the site;
a proxy that cannot be reached raises :class:`ProxyUnreachable`: that one is about us.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from leadlawk_daemon.sites.decode import decode_body  # re-exported: it lived here before sites.decode
from leadlawk_daemon.sites.extract import site_key

__all__ = ["FetchFailure", "Fetcher", "HostLimiter", "Page", "ProxyUnreachable", "decode_body"]

_KEPT_HEADERS = ("content-type", "location", "last-modified", "server", "x-powered-by", "x-generator",
                 "x-wix-request-id", "x-shopify-stage", "x-shopid", "x-host", "link", "content-length")


class FetchFailure(Exception):
    """A URL that could not be read. ``unreachable``: nothing answered (DNS, refused, timeout)."""

    def __init__(self, reason: str, *, unreachable: bool = False, certificate: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.unreachable = unreachable
        self.certificate = certificate


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
    ) -> None:
        self.user_agent = user_agent
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.proxy = proxy
        self.hosts = HostLimiter(per_host)
        self._max_connections = max_connections
        self._ssl = ssl.create_default_context()
        if ca_file:
            self._ssl.load_verify_locations(cafile=ca_file)
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._max_connections, ttl_dns_cache=300)
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

    async def get(self, url: str, *, verify: bool = True, max_bytes: int | None = None) -> Page:
        """GET ``url`` (no redirect followed); raises :class:`FetchFailure` or :class:`ProxyUnreachable`."""
        if self._session is None:
            raise RuntimeError("Fetcher.get before open()")
        try:
            target = URL(url, encoded=False)
        except (ValueError, TypeError):
            raise FetchFailure("invalid URL") from None
        if target.scheme not in ("http", "https") or not target.host:
            raise FetchFailure("invalid URL")
        cap = self.max_bytes if max_bytes is None else max_bytes
        async with self.hosts.hold(site_key(target.host)):
            try:
                async with asyncio.timeout(self.timeout):
                    return await self._get(target, verify, cap)
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
            if self.proxy is not None and response.status in (502, 504) and response.url.scheme == "http":
                # Through a forward proxy a plain request to a host that cannot be reached comes back
                # as the proxy's own 502/504: the same fact as a failed CONNECT.
                raise FetchFailure(f"unreachable (proxy answered {response.status})", unreachable=True)
            declared = response.content_length or 0
            return Page(
                url=str(response.url), status=response.status, headers=headers, body=body,
                size=max(declared, len(body)), truncated=truncated,
            )
