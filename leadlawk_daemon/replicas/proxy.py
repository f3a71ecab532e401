"""Local forward proxies: the egress pool's exits, offline (``leadlawk replica proxy --count N``).

Each proxy listens on loopback and speaks HTTP (``CONNECT`` tunnels and plain absolute-form
requests) or SOCKS5 (``CONNECT``, no authentication: Chromium offers none for SOCKS5). Some
require credentials (HTTP ``Proxy-Authorization: Basic``). Each opens its upstream connections
from its own loopback source address (127.0.0.11, .12, … bound with ``local_addr``), so the Maps
replica sees one client address per exit, as Google sees one per proxy. The proxies reach
loopback targets only: a test double must never become an open relay.

Fault modes, per proxy (``POST /_faults`` on the control port: ``{"proxy": i, "mode": m}``):

| mode | what a client sees |
|---|---|
| `down` | the proxy stops listening: connecting is refused (Chromium: ERR_PROXY_CONNECTION_FAILED) |
| `auth_refused` | every request is answered `407` (SOCKS5: authentication rejected), whatever the credentials |
| `slow` | every chunk, both ways, waits `delay_s` (default 5 s) |
| `reset` | every connection is reset as soon as its request is read (ERR_TUNNEL/CONNECTION_RESET) |
| `pass` | the fault cleared |

``GET /_proxies`` lists the proxies (index, url without secrets, kind, source address, mode,
connections, refusals). Reading a request head is bounded (16 KiB, 10 s); each direction holds at
most one chunk before its peer drains it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import json
import secrets
import socket
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from leadlawk_daemon.replicas.foreground import serve_in_foreground

__all__ = ["LocalProxy", "ProxyFleet", "run_proxy_replica", "serve_proxy_replica"]

Mode = Literal["pass", "down", "auth_refused", "slow", "reset"]
_MODES: tuple[str, ...] = ("pass", "down", "auth_refused", "slow", "reset")
_HEAD_LIMIT = 16 * 1024
_HEAD_TIMEOUT = 10.0
_CHUNK = 64 * 1024
_CONNECT_TIMEOUT = 10.0
_FIRST_SOURCE = ipaddress.IPv4Address("127.0.0.11")


class _Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass
class LocalProxy:
    """One exit: ``kind`` http or socks5, its own source address, optional credentials."""

    index: int
    kind: Literal["http", "socks5"]
    source: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    host: str = "127.0.0.1"
    port: int = 0
    mode: Mode = "pass"
    delay_s: float = 5.0
    connections: int = 0
    refused: int = 0
    _server: asyncio.Server | None = field(default=None, repr=False)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, repr=False)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set, repr=False)

    @property
    def url(self) -> str:
        """The proxy's URL without credentials."""
        return f"{self.kind}://{self.host}:{self.port}"

    def url_with(self, password_ref: str) -> str:
        """The URL as ``maps.egress`` takes it, the password as a reference (``${ENV}``)."""
        if self.username is None:
            return self.url
        return f"{self.kind}://{self.username}:{password_ref}@{self.host}:{self.port}"

    async def start(self) -> None:
        # limit: a request head longer than this is refused (LimitOverrunError) instead of buffered.
        self._server = await asyncio.start_server(
            self._serve, self.host, self.port, reuse_address=True, limit=_HEAD_LIMIT
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop_listening(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    async def set_mode(self, mode: Mode, delay_s: float | None = None) -> None:
        if delay_s is not None:
            self.delay_s = delay_s
        self.mode = mode
        if mode == "down":
            await self.stop_listening()
            for writer in list(self._writers):
                writer.transport.abort()
        elif self._server is None:
            await self.start()

    async def close(self) -> None:
        await self.stop_listening()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def describe(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "url": self.url,
            "kind": self.kind,
            "auth": self.username is not None,
            "source": self.source,
            "mode": self.mode,
            "connections": self.connections,
            "refused": self.refused,
        }

    # -- serving --------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        self.connections += 1
        try:
            if self.kind == "http":
                await self._serve_http(reader, writer)
            else:
                await self._serve_socks(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError):
            writer.transport.abort()
        except asyncio.CancelledError:
            # Closed by close(): the handler is the task's whole body, and asyncio's server would
            # report a cancelled handler task as an error in a callback.
            writer.transport.abort()
        finally:
            self._writers.discard(writer)
            self._tasks.discard(task)
            with contextlib.suppress(OSError):
                writer.close()

    async def _serve_http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with asyncio.timeout(_HEAD_TIMEOUT):
            head = await reader.readuntil(b"\r\n\r\n")
        if self.mode == "reset":
            self.refused += 1
            writer.transport.abort()
            return
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = [*lines[0].split(" "), "", "", ""][:3]
        headers = [line for line in lines[1:] if line]
        try:
            self._check_http_auth(headers)
            if method == "CONNECT":
                host, port = _host_port(target, 443)
                upstream_reader, upstream_writer = await self._open(host, port)
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await writer.drain()
                await self._pipe(reader, writer, upstream_reader, upstream_writer)
                return
            if not target.startswith("http://"):
                raise _Refused(400, "an absolute http:// URL or CONNECT")
            rest = target[len("http://") :]
            authority, slash, path = rest.partition("/")
            host, port = _host_port(authority, 80)
            upstream_reader, upstream_writer = await self._open(host, port)
        except _Refused as refused:
            self.refused += 1
            extra = 'Proxy-Authenticate: Basic realm="leadlawk replica"\r\n' if refused.status == 407 else ""
            body = str(refused).encode()
            writer.write(
                f"HTTP/1.1 {refused.status} {refused}\r\n{extra}Content-Length: {len(body)}\r\n"
                f"Connection: close\r\n\r\n".encode("latin-1")
                + body
            )
            await writer.drain()
            return
        kept = [h for h in headers if not h.lower().startswith(("proxy-", "connection:", "keep-alive:"))]
        request = f"{method} /{path if slash else ''} {version}\r\n" + "\r\n".join([*kept, "Connection: close"])
        upstream_writer.write(request.encode("latin-1") + b"\r\n\r\n")
        await self._pipe(reader, writer, upstream_reader, upstream_writer)

    def _check_http_auth(self, headers: list[str]) -> None:
        if self.mode == "auth_refused":
            raise _Refused(407, "Proxy Authentication Required")
        if self.username is None:
            return
        expected = base64.b64encode(f"{self.username}:{self.password or ''}".encode()).decode()
        for header in headers:
            name, _, value = header.partition(":")
            if name.strip().lower() == "proxy-authorization":
                scheme, _, token = value.strip().partition(" ")
                if scheme.lower() == "basic" and secrets.compare_digest(token.strip(), expected):
                    return
        raise _Refused(407, "Proxy Authentication Required")

    async def _serve_socks(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with asyncio.timeout(_HEAD_TIMEOUT):
            version, count = await reader.readexactly(2)
            methods = await reader.readexactly(count)
            if version != 5:
                raise ValueError("not SOCKS5")
            if self.mode == "reset":
                self.refused += 1
                writer.transport.abort()
                return
            if self.mode == "auth_refused" or 0 not in methods:
                self.refused += 1
                writer.write(b"\x05\xff")  # no acceptable method
                await writer.drain()
                return
            writer.write(b"\x05\x00")
            _, command, _, kind = await reader.readexactly(4)
            if kind == 1:
                host = socket.inet_ntop(socket.AF_INET, await reader.readexactly(4))
            elif kind == 4:
                host = socket.inet_ntop(socket.AF_INET6, await reader.readexactly(16))
            elif kind == 3:
                host = (await reader.readexactly((await reader.readexactly(1))[0])).decode("ascii", "replace")
            else:
                raise ValueError("unknown address type")
            (port,) = struct.unpack("!H", await reader.readexactly(2))
        if command != 1:
            writer.write(b"\x05\x07\x00\x01\x00\x00\x00\x00\x00\x00")  # command not supported
            return
        try:
            upstream_reader, upstream_writer = await self._open(host, port)
        except _Refused:
            self.refused += 1
            writer.write(b"\x05\x02\x00\x01\x00\x00\x00\x00\x00\x00")  # not allowed by the ruleset
            await writer.drain()
            return
        writer.write(b"\x05\x00\x00\x01" + socket.inet_aton(self.source) + b"\x00\x00")
        await writer.drain()
        await self._pipe(reader, writer, upstream_reader, upstream_writer)

    async def _open(self, host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if host.lower() in ("localhost", "localhost."):
            host = "127.0.0.1"
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            raise _Refused(403, "the replica proxy reaches loopback addresses only") from None
        if not address.is_loopback or address.version != 4:
            raise _Refused(403, "the replica proxy reaches loopback addresses only")
        try:
            async with asyncio.timeout(_CONNECT_TIMEOUT):
                return await asyncio.open_connection(str(address), port, local_addr=(self.source, 0))
        except (OSError, TimeoutError):
            raise _Refused(502, "Bad Gateway") from None

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        upstream_reader: asyncio.StreamReader,
        upstream_writer: asyncio.StreamWriter,
    ) -> None:
        self._writers.add(upstream_writer)
        try:
            await asyncio.gather(self._copy(reader, upstream_writer), self._copy(upstream_reader, writer))
        finally:
            self._writers.discard(upstream_writer)
            upstream_writer.transport.abort()

    async def _copy(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while chunk := await source.read(_CHUNK):
                if self.mode == "slow":
                    await asyncio.sleep(self.delay_s)
                if self.mode == "reset":
                    sink.transport.abort()
                    return
                sink.write(chunk)
                await sink.drain()
            if sink.can_write_eof():
                sink.write_eof()
        except OSError:
            sink.transport.abort()


def _host_port(authority: str, default: int) -> tuple[str, int]:
    if authority.startswith("["):
        host, _, rest = authority[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, _, port = authority.rpartition(":") if ":" in authority else (authority, "", "")
    try:
        number = int(port) if port else default
    except ValueError:
        raise _Refused(400, "a bad port") from None
    if not 0 < number < 65536:
        raise _Refused(400, "a bad port")
    return host, number


class ProxyFleet:
    """N proxies: even indexes HTTP, odd SOCKS5; every third HTTP one requires credentials."""

    def __init__(self, count: int, *, host: str = "127.0.0.1", password: str | None = None) -> None:
        if not 1 <= count <= 200:
            raise ValueError("between 1 and 200 proxies")
        self.password = password or secrets.token_urlsafe(12)
        self.proxies: list[LocalProxy] = []
        for i in range(count):
            kind: Literal["http", "socks5"] = "http" if i % 2 == 0 else "socks5"
            auth = kind == "http" and i % 3 == 2
            self.proxies.append(
                LocalProxy(
                    i,
                    kind,
                    str(_FIRST_SOURCE + i),
                    username=f"exit{i}" if auth else None,
                    password=self.password if auth else None,
                    host=host,
                )
            )

    async def __aenter__(self) -> ProxyFleet:
        try:
            for proxy in self.proxies:
                await proxy.start()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for proxy in self.proxies:
            await proxy.close()

    def control_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024)

        async def listing(_: web.Request) -> web.Response:
            return web.json_response([p.describe() for p in self.proxies])

        async def faults(request: web.Request) -> web.Response:
            try:
                body = await request.json()
                index = int(body["proxy"])
                mode = str(body.get("mode", "pass"))
                delay = body.get("delay_s")
                if mode not in _MODES or not 0 <= index < len(self.proxies):
                    raise ValueError(mode)
                if delay is not None and not 0 <= float(delay) <= 600:
                    raise ValueError(delay)
            except (ValueError, KeyError, TypeError, json.JSONDecodeError):
                return web.json_response(
                    {"error": f'expected {{"proxy": 0..{len(self.proxies) - 1}, "mode": one of {list(_MODES)}}}'},
                    status=400,
                )
            proxy = self.proxies[index]
            await proxy.set_mode(mode, None if delay is None else float(delay))  # type: ignore[arg-type]
            return web.json_response(proxy.describe())

        app.router.add_get("/_proxies", listing)
        app.router.add_post("/_faults", faults)
        return app


@contextlib.asynccontextmanager
async def serve_proxy_replica(
    count: int, host: str = "127.0.0.1", control_port: int = 0, password: str | None = None
) -> AsyncIterator[tuple[ProxyFleet, str]]:
    """N proxies and their control port; yields the fleet and the control URL."""
    async with ProxyFleet(count, host=host, password=password) as fleet:
        runner = web.AppRunner(fleet.control_app(), shutdown_timeout=2.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, control_port)
            await site.start()
            yield fleet, f"http://{host}:{runner.addresses[0][1]}"
        finally:
            await runner.cleanup()


async def run_proxy_replica(count: int, host: str, port: int) -> None:
    """``leadlawk replica proxy --count N``: print the control URL, the credentials' password as an
    ``export`` line for a shell (a test double's, random per run), then one exit per line as
    ``maps.egress`` takes it (the password as ``${LEADLAWK_REPLICA_PROXY_PASSWORD}``); run until
    cancelled."""
    def announce(served: tuple[ProxyFleet, str]) -> list[str]:
        fleet, control = served
        return [
            f"control {control}",
            f"export LEADLAWK_REPLICA_PROXY_PASSWORD={fleet.password}",
            *(proxy.url_with("${LEADLAWK_REPLICA_PROXY_PASSWORD}") for proxy in fleet.proxies),
        ]

    await serve_in_foreground(serve_proxy_replica(count, host, port), announce)
