"""A TCP proxy that puts network faults between a client and a server on loopback.

The chaos suite points the daemon at the proxy instead of PostgreSQL, Redis or a replica, then
switches the proxy's mode while a job runs:

- ``restore()`` (the starting mode): bytes are forwarded as they come;
- ``cut()``: every connection is reset and new ones are reset as soon as accepted, so clients
  fail at once, as when a peer's host dies;
- ``blackhole()``: connections are accepted and held, nothing is forwarded either way (not even
  a close), so clients wait until their own timeouts, as in a network partition. When the
  partition heals (``restore()``), what was held flows on, as TCP retransmission would deliver it;
- ``delay(seconds)``: every chunk waits that long before it is forwarded, in both directions;
- ``refuse()``: the proxy stops listening, so connecting is refused, as when the server is down
  (``reopen()`` listens on the same port again).

Each connection holds at most one chunk per direction and waits for the receiving side to drain
before reading more, so a slow or blackholed peer never makes the proxy buffer without bound.
Connection handlers run in the proxy's own task group; leaving the context closes the listener,
resets every connection and waits for every handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Self

__all__ = ["FaultProxy", "ProxyMode", "ProxyStats"]


class ProxyMode(enum.Enum):
    PASS = "pass"
    CUT = "cut"
    BLACKHOLE = "blackhole"
    DELAY = "delay"


@dataclass(slots=True)
class ProxyStats:
    accepted: int = 0  # connections accepted, including those reset at once
    refused: int = 0  # reset on arrival: cut, over max_connections, or the target unreachable
    bytes_to_target: int = 0
    bytes_to_client: int = 0


class _Connection:
    __slots__ = ("client", "task", "upstream")

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.task: asyncio.Task[None] | None = None

    def reset(self) -> None:
        # abort(), not close(): a reset is what a client sees when the far side vanishes, and it
        # frees the socket now instead of after buffered bytes drain.
        for writer in (self.client, self.upstream):
            if writer is not None:
                writer.transport.abort()


class FaultProxy:
    """``async with FaultProxy("127.0.0.1", 0, "127.0.0.1", 5432) as proxy:`` then connect to
    ``proxy.port`` and call :meth:`cut`, :meth:`blackhole`, :meth:`delay` or :meth:`restore`."""

    def __init__(
        self,
        listen_host: str,
        listen_port: int,
        target_host: str,
        target_port: int,
        *,
        chunk_size: int = 64 * 1024,
        max_connections: int = 256,
        connect_timeout: float = 5.0,
    ) -> None:
        if not 0 <= listen_port <= 65535:
            raise ValueError(f"listen_port must be 0-65535, got {listen_port!r}")
        if not 1 <= target_port <= 65535:
            raise ValueError(f"target_port must be 1-65535, got {target_port!r}")
        if chunk_size < 1 or max_connections < 1 or connect_timeout <= 0:
            raise ValueError(
                "chunk_size, max_connections and connect_timeout must be positive, got "
                f"{chunk_size!r}, {max_connections!r}, {connect_timeout!r}"
            )
        self._listen = (listen_host, listen_port)
        self._target = (target_host, target_port)
        self._chunk_size = chunk_size
        self._max_connections = max_connections
        self._connect_timeout = connect_timeout
        self._mode = ProxyMode.PASS
        self._delay = 0.0
        # Set while bytes may flow; cleared by blackhole() so every pump parks on it.
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._connections: set[_Connection] = set()
        self._stats = ProxyStats()
        self._server: asyncio.Server | None = None
        self._tasks: asyncio.TaskGroup | None = None
        self._port = 0

    # --- lifecycle --------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        tasks = asyncio.TaskGroup()
        await tasks.__aenter__()
        self._tasks = tasks
        try:
            self._server = await asyncio.start_server(self._accept, *self._listen)
        except BaseException as exc:
            self._tasks = None
            await tasks.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        self._port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        server, tasks = self._server, self._tasks
        self._server, self._tasks = None, None
        if server is not None:
            server.close()
        for conn in list(self._connections):
            conn.reset()
            if conn.task is not None:
                conn.task.cancel()
        if tasks is not None:
            await tasks.__aexit__(exc_type, exc, tb)
        if server is not None:
            await server.wait_closed()

    # --- the switches -----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("the proxy is not listening: use it as `async with FaultProxy(...)`")
        return self._port

    @property
    def mode(self) -> ProxyMode:
        return self._mode

    @property
    def stats(self) -> ProxyStats:
        """A snapshot of the counters."""
        return replace(self._stats)

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    def cut(self) -> None:
        self._mode = ProxyMode.CUT
        self._flowing.set()  # parked pumps wake to find their connection reset
        for conn in list(self._connections):
            conn.reset()
            if conn.task is not None:
                conn.task.cancel()

    def blackhole(self) -> None:
        self._mode = ProxyMode.BLACKHOLE
        self._flowing.clear()

    def delay(self, seconds: float) -> None:
        if not 0 <= seconds <= 3600:
            raise ValueError(f"delay must be 0-3600 seconds, got {seconds!r}")
        self._delay = float(seconds)
        self._mode = ProxyMode.DELAY
        self._flowing.set()

    def restore(self) -> None:
        self._delay = 0.0
        self._mode = ProxyMode.PASS
        self._flowing.set()

    async def refuse(self) -> None:
        """Stop listening: new connections are refused by the kernel (nothing listens on the port),
        as when the server's process is down; the open ones are reset. :meth:`reopen` ends it."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
        self.cut()

    async def reopen(self) -> None:
        """Listen on the same port again, forwarding as before."""
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, self._listen[0], self._port)
        self.restore()

    # --- connections ------------------------------------------------------------------------------

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A plain callback, so asyncio makes no task of its own: the handler's task is ours.
        self._stats.accepted += 1
        conn = _Connection(writer)
        if self._tasks is None or self._mode is ProxyMode.CUT or len(self._connections) >= self._max_connections:
            self._stats.refused += 1
            conn.reset()
            return
        self._connections.add(conn)
        conn.task = self._tasks.create_task(self._serve(conn, reader))

    async def _serve(self, conn: _Connection, client: asyncio.StreamReader) -> None:
        try:
            await self._flowing.wait()  # a partitioned network does not let a connect through
            try:
                upstream, upstream_writer = await asyncio.wait_for(
                    asyncio.open_connection(*self._target), self._connect_timeout
                )
            except (OSError, TimeoutError):
                self._stats.refused += 1
                return
            conn.upstream = upstream_writer
            async with asyncio.TaskGroup() as pumps:
                pumps.create_task(self._pump(client, upstream_writer, conn, to_target=True))
                pumps.create_task(self._pump(upstream, conn.client, conn, to_target=False))
            # Both sides said goodbye: close gently, so the last bytes written still arrive.
            for writer in (conn.client, upstream_writer):
                writer.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._connect_timeout):
                    for writer in (conn.client, upstream_writer):
                        with contextlib.suppress(OSError):
                            await writer.wait_closed()
        finally:
            conn.reset()  # a no-op on a closed transport; frees the sockets on every other path
            self._connections.discard(conn)

    async def _pump(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        conn: _Connection,
        *,
        to_target: bool,
    ) -> None:
        try:
            while True:
                chunk = await source.read(self._chunk_size)
                await self._flowing.wait()
                if self._mode is ProxyMode.DELAY and self._delay > 0:
                    await asyncio.sleep(self._delay)
                if not chunk:
                    if sink.can_write_eof():
                        sink.write_eof()
                    return
                sink.write(chunk)
                await sink.drain()
                if to_target:
                    self._stats.bytes_to_target += len(chunk)
                else:
                    self._stats.bytes_to_client += len(chunk)
        except (OSError, RuntimeError):
            # One side went away: the other must not wait forever for bytes that cannot come.
            # (uvloop reports a write or write_eof on a transport already aborted as RuntimeError.)
            conn.reset()
