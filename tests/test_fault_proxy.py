"""The fault proxy against real clients: asyncpg to PostgreSQL, redis-py to Redis, aiohttp to an aiohttp
server. Cut fails clients fast, blackhole makes them time out, delay slows them, restore lets them
reconnect; nothing is left behind when the proxy exits."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from leadlawk_daemon.chaos import FaultProxy, ProxyMode
from tests.conftest import REDIS_TEST_URL
from tests.waiting import eventually

# Far longer than any fault takes to show, so "fails fast" cannot be a client timing out.
CLIENT_TIMEOUT = 10.0
FAST = 1.0
# Short timeouts for the blackhole cases, where timing out is the expected outcome.
SHORT = 0.5
EARLY = 0.01  # asyncio runs a timer up to its clock's resolution early: a cut at SHORT may read 0.4997

PG_CONNECTION_ERRORS = (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, OSError)


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None, url
    assert parts.port is not None, url
    return parts.hostname, parts.port


def _through(url: str, port: int) -> str:
    """The same URL with its host and port replaced by the proxy's."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@127.0.0.1:{port}" if userinfo else f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


async def _elapsed(awaitable: Awaitable[object]) -> float:
    started = time.monotonic()
    await awaitable
    return time.monotonic() - started


async def _fails_within(call: Callable[[], Awaitable[object]], errors: tuple[type[BaseException], ...]) -> float:
    started = time.monotonic()
    with pytest.raises(errors):
        await call()
    return time.monotonic() - started


def _open_sockets() -> set[str]:
    """This process's sockets, by inode (other descriptors come and go with the test runner)."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:  # closed while we looked
            continue
        if target.startswith("socket:"):
            found.add(target)
    return found


# --- PostgreSQL ----------------------------------------------------------------------------------


@pytest.fixture
async def pg_proxy(pg_database: str) -> AsyncIterator[tuple[FaultProxy, str]]:
    host, port = _host_port(pg_database)
    async with FaultProxy("127.0.0.1", 0, host, port) as proxy:
        yield proxy, _through(pg_database, proxy.port)


async def test_postgres_passes_through_and_bytes_are_counted(pg_proxy: tuple[FaultProxy, str]) -> None:
    proxy, dsn = pg_proxy
    conn = await asyncpg.connect(dsn, timeout=CLIENT_TIMEOUT)
    try:
        assert await conn.fetchval("SELECT 40 + 2") == 42
    finally:
        await conn.close()
    stats = proxy.stats
    assert proxy.mode is ProxyMode.PASS
    assert stats.accepted == 1
    assert stats.refused == 0
    assert stats.bytes_to_target > 0
    assert stats.bytes_to_client > 0


async def test_postgres_cut_fails_fast_then_restore_reconnects(pg_proxy: tuple[FaultProxy, str]) -> None:
    proxy, dsn = pg_proxy
    conn = await asyncpg.connect(dsn, timeout=CLIENT_TIMEOUT)
    try:
        assert await conn.fetchval("SELECT 1") == 1
        proxy.cut()
        took = await _fails_within(lambda: conn.fetchval("SELECT 1", timeout=CLIENT_TIMEOUT), PG_CONNECTION_ERRORS)
        assert took < FAST
    finally:
        conn.terminate()

    took = await _fails_within(lambda: asyncpg.connect(dsn, timeout=CLIENT_TIMEOUT), PG_CONNECTION_ERRORS)
    assert took < FAST
    assert proxy.stats.refused >= 1

    proxy.restore()
    conn = await asyncpg.connect(dsn, timeout=CLIENT_TIMEOUT)
    try:
        assert await conn.fetchval("SELECT 2") == 2
    finally:
        await conn.close()


async def test_postgres_blackhole_times_out_then_restore_reconnects(pg_proxy: tuple[FaultProxy, str]) -> None:
    proxy, dsn = pg_proxy
    conn = await asyncpg.connect(dsn, timeout=CLIENT_TIMEOUT)
    try:
        proxy.blackhole()
        took = await _fails_within(lambda: conn.fetchval("SELECT 1", timeout=SHORT), (TimeoutError,))
        assert took >= SHORT - EARLY
    finally:
        conn.terminate()
    with pytest.raises(TimeoutError):
        await asyncpg.connect(dsn, timeout=SHORT)

    proxy.restore()
    conn = await asyncpg.connect(dsn, timeout=CLIENT_TIMEOUT)
    try:
        assert await conn.fetchval("SELECT 3") == 3
    finally:
        await conn.close()


async def test_postgres_delay_adds_latency_each_way(pg_proxy: tuple[FaultProxy, str]) -> None:
    proxy, dsn = pg_proxy
    conn = await asyncpg.connect(dsn, timeout=CLIENT_TIMEOUT)
    try:
        proxy.delay(0.2)
        assert proxy.mode is ProxyMode.DELAY
        # A query is at least one chunk out and one chunk back.
        assert await _elapsed(conn.fetchval("SELECT 1")) >= 0.4
        proxy.restore()
        assert await conn.fetchval("SELECT 4") == 4
    finally:
        await conn.close()


# --- Redis ---------------------------------------------------------------------------------------


@asynccontextmanager
async def _redis_through(proxy: FaultProxy, socket_timeout: float) -> AsyncIterator[aioredis.Redis]:
    # No client-side retries: the proxy's effect must be seen, not hidden by redis-py's backoff.
    client = aioredis.Redis.from_url(
        _through(REDIS_TEST_URL, proxy.port),
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def redis_proxy() -> AsyncIterator[FaultProxy]:
    host, port = _host_port(REDIS_TEST_URL)
    async with FaultProxy("127.0.0.1", 0, host, port) as proxy:
        yield proxy


async def test_redis_cut_fails_fast_then_restore_reconnects(
    redis_proxy: FaultProxy, redis_prefix: str, redis_client: aioredis.Redis
) -> None:
    key = f"{redis_prefix}:proxy"
    async with _redis_through(redis_proxy, CLIENT_TIMEOUT) as client:
        await client.set(key, "before")
        redis_proxy.cut()
        took = await _fails_within(lambda: client.get(key), (RedisConnectionError,))
        assert took < FAST
        # A fresh connection is refused too.
        took = await _fails_within(lambda: client.get(key), (RedisConnectionError,))
        assert took < FAST

        redis_proxy.restore()
        await client.set(key, "after")
        assert await client.get(key) == b"after"
    assert await redis_client.get(key) == b"after"


async def test_redis_blackhole_times_out_and_held_bytes_flow_on_restore(redis_proxy: FaultProxy) -> None:
    async with _redis_through(redis_proxy, SHORT) as client:
        assert await client.ping() is True
        redis_proxy.blackhole()
        with pytest.raises(RedisTimeoutError):
            await client.ping()
        redis_proxy.restore()
        assert await client.ping() is True

    # A command sent into the blackhole is held, not lost: it is answered once the partition heals.
    reader, writer = await asyncio.open_connection("127.0.0.1", redis_proxy.port)
    try:
        redis_proxy.blackhole()
        writer.write(b"PING\r\n")
        await writer.drain()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.readline(), SHORT)
        redis_proxy.restore()
        assert await asyncio.wait_for(reader.readline(), CLIENT_TIMEOUT) == b"+PONG\r\n"
    finally:
        writer.close()
        await writer.wait_closed()


async def test_redis_delay_slows_each_round_trip(redis_proxy: FaultProxy) -> None:
    async with _redis_through(redis_proxy, CLIENT_TIMEOUT) as client:
        assert await client.ping() is True
        redis_proxy.delay(0.15)
        assert await _elapsed(client.ping()) >= 0.3
        redis_proxy.restore()
        assert await client.ping() is True


# --- aiohttp -------------------------------------------------------------------------------------


@pytest.fixture
async def http_proxy() -> AsyncIterator[FaultProxy]:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text=f"hello {request.query.get('n', '')}")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        assert runner.addresses, "the aiohttp server did not bind"
        _, port = runner.addresses[0][:2]
        async with FaultProxy("127.0.0.1", 0, "127.0.0.1", port) as proxy:
            yield proxy
    finally:
        await runner.cleanup()


async def test_http_modes_end_to_end(http_proxy: FaultProxy) -> None:
    url = f"http://127.0.0.1:{http_proxy.port}/"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=CLIENT_TIMEOUT)) as session:

        async def get(n: int, limit: float = CLIENT_TIMEOUT) -> str:
            async with session.get(url, params={"n": n}, timeout=aiohttp.ClientTimeout(total=limit)) as r:
                r.raise_for_status()
                return await r.text()

        assert await get(1) == "hello 1"

        http_proxy.delay(0.2)
        started = time.monotonic()
        assert await get(2) == "hello 2"
        assert time.monotonic() - started >= 0.4

        http_proxy.cut()
        took = await _fails_within(lambda: get(3), (aiohttp.ClientConnectionError,))
        assert took < FAST

        http_proxy.blackhole()
        took = await _fails_within(lambda: get(4, limit=SHORT), (TimeoutError,))
        assert took >= SHORT - EARLY

        http_proxy.restore()
        assert await get(5) == "hello 5"
    assert http_proxy.stats.accepted >= 3


# --- bounds, bad input, clean exit ---------------------------------------------------------------


async def test_connections_over_the_limit_are_reset(http_proxy: FaultProxy) -> None:
    target = ("127.0.0.1", http_proxy.port)
    async with FaultProxy("127.0.0.1", 0, *target, max_connections=2) as proxy:
        proxy.blackhole()  # hold the first two open
        held = [await asyncio.open_connection("127.0.0.1", proxy.port) for _ in range(2)]
        await eventually(lambda: proxy.open_connections == 2, what="two held connections")
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        try:
            with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
                await asyncio.wait_for(reader.readexactly(1), CLIENT_TIMEOUT)
        finally:
            writer.close()
        stats = proxy.stats
        assert stats.accepted == 3
        assert stats.refused == 1
        assert proxy.open_connections == 2
        for _, w in held:
            w.close()


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"listen_port": 70000}, "listen_port"),
        ({"target_port": 0}, "target_port"),
        ({"max_connections": 0}, "max_connections"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict[str, int], named: str) -> None:
    args: dict[str, int] = {"listen_port": 0, "target_port": 5432} | kwargs
    with pytest.raises(ValueError, match=named):
        FaultProxy(
            "127.0.0.1",
            args["listen_port"],
            "127.0.0.1",
            args["target_port"],
            max_connections=kwargs.get("max_connections", 1),
        )


def test_port_before_start_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="not listening"):
        _ = FaultProxy("127.0.0.1", 0, "127.0.0.1", 5432).port


async def test_bad_delay_is_named() -> None:
    async with FaultProxy("127.0.0.1", 0, "127.0.0.1", 5432) as proxy:
        with pytest.raises(ValueError, match="delay"):
            proxy.delay(-1)
        assert proxy.mode is ProxyMode.PASS


async def test_exit_closes_every_connection_and_leaves_no_task_or_socket(pg_database: str) -> None:
    host, port = _host_port(pg_database)
    tasks_before = asyncio.all_tasks()
    sockets_before = _open_sockets()
    async with FaultProxy("127.0.0.1", 0, host, port) as proxy:
        dsn = _through(pg_database, proxy.port)
        live = await asyncpg.connect(dsn, timeout=CLIENT_TIMEOUT)
        assert await live.fetchval("SELECT 1") == 1
        proxy.blackhole()
        held_reader, held_writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        await eventually(lambda: proxy.open_connections == 2, what="the held connection to be tracked")
    # Exit reset both: the held client sees its connection end, the asyncpg one is dead.
    assert proxy.open_connections == 0
    with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
        await asyncio.wait_for(held_reader.readexactly(1), CLIENT_TIMEOUT)
    held_writer.close()
    await held_writer.wait_closed()
    with pytest.raises(PG_CONNECTION_ERRORS):
        await live.fetchval("SELECT 1", timeout=CLIENT_TIMEOUT)
    live.terminate()
    assert asyncio.all_tasks() - tasks_before == set()
    await eventually(lambda: _open_sockets() <= sockets_before, what="every socket opened in the test closed")
