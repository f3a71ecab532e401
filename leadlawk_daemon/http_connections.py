"""The HTTP server's connections: a deadline for each request head, and a cap on how many are open.

aiohttp has no header-read timeout of its own: a client that sends a request head one byte at a
time (slowloris) holds its connection until the keep-alive timer, 75 s by default, and 256 such
clients hold every connection. Here each connection aiohttp serves is wrapped in a
:class:`_Connection` that arms ``server.header_timeout`` when it opens, and again when the first
byte of a later request arrives on a kept-alive connection; the request's arrival in the app
(:meth:`ConnectionLimits.middleware`, the app's outermost) disarms it. A connection whose head is
late is answered 408 and closed. Keep-alive, pipelining and aiohttp's own idle timer are untouched.

Beyond ``server.max_connections`` open connections, a new one is answered 503 and closed before
aiohttp sees it: the cap bounds the memory a flood of clients can take, and the deadline frees a
slot a slow client holds within ``header_timeout``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiohttp import web

__all__ = ["ConnectionLimits", "LimitedSite"]

log = logging.getLogger("leadlawk.http")

_TOO_SLOW = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
_TOO_MANY = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n"

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _Connection(asyncio.Protocol):
    """One client connection: aiohttp's protocol inside, with a deadline on each request head."""

    def __init__(self, inner: asyncio.Protocol, limits: ConnectionLimits) -> None:
        self._inner = inner
        self._limits = limits
        self._transport: asyncio.Transport | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._in_request = False

    # -- the head deadline --------------------------------------------------------------------

    def _arm(self) -> None:
        if self._deadline is None:
            loop = asyncio.get_running_loop()
            self._deadline = loop.call_later(self._limits.header_timeout, self._late)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _late(self) -> None:
        self._deadline = None
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if self._in_request or transport.get_write_buffer_size():
            # A request arrived, or an answer is still going out (a pipelined head queued behind
            # it): not a head that is late. Look again one period on.
            self._arm()
            return
        log.debug("http client too slow to send its request head; disconnected",
                  extra={"peer": transport.get_extra_info("peername")})
        transport.write(_TOO_SLOW)
        transport.close()

    def request_started(self) -> None:
        self._in_request = True
        self._disarm()

    def request_ended(self) -> None:
        self._in_request = False

    # -- asyncio.Protocol, passed on ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's does not subclass asyncio.Transport: no isinstance here).
        self._transport = cast(asyncio.Transport, transport)
        self._limits.opened(self._transport, self)
        self._arm()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if not self._in_request:
            self._arm()  # the first bytes of a head (or its next piece: armed once, not extended)
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._transport is not None:
            self._limits.closed(self._transport)
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class _Refused(asyncio.Protocol):
    """A connection beyond the cap: told so, and closed."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        stream = cast(asyncio.Transport, transport)
        stream.write(_TOO_MANY)
        stream.close()


class ConnectionLimits:
    """The protocol factory of :class:`LimitedSite`, and the middleware that marks a head received."""

    def __init__(self, header_timeout: float, max_connections: int) -> None:
        self.header_timeout = header_timeout
        self.max_connections = max_connections
        self._open: dict[asyncio.Transport, _Connection] = {}
        self.refused = 0

    @property
    def open(self) -> int:
        return len(self._open)

    def opened(self, transport: asyncio.Transport, connection: _Connection) -> None:
        self._open[transport] = connection

    def closed(self, transport: asyncio.Transport) -> None:
        self._open.pop(transport, None)

    def factory(self, server: web.Server) -> Callable[[], asyncio.Protocol]:
        def protocol() -> asyncio.Protocol:
            if len(self._open) >= self.max_connections:
                self.refused += 1
                if self.refused in (1, 10, 100) or self.refused % 1000 == 0:
                    log.warning("http connection refused: server.max_connections reached",
                                extra={"max_connections": self.max_connections, "refused": self.refused})
                return _Refused()
            return _Connection(server(), self)

        return protocol

    @web.middleware
    async def middleware(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        """The app's outermost middleware: the head is in, the deadline off until the next request."""
        connection = self._open.get(request.transport) if request.transport is not None else None
        if connection is None:
            return await handler(request)
        connection.request_started()
        try:
            return await handler(request)
        finally:
            connection.request_ended()


class LimitedSite(web.BaseSite):
    """``web.TCPSite``, its connections made through :class:`ConnectionLimits`."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, limits: ConnectionLimits) -> None:
        super().__init__(runner)
        self._runner_ref = runner
        self._host = host
        self._port = port
        self._limits = limits

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    @property
    def sockets(self) -> list[Any]:
        # asyncio's Server and uvloop's both have them; AbstractServer does not say so.
        return list(getattr(self._server, "sockets", None) or [])

    async def start(self) -> None:
        await super().start()
        server = self._runner_ref.server
        assert server is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._limits.factory(server), self._host, self._port, reuse_address=True
        )
