"""The local proxies replica with real clients: HTTP (plain and CONNECT) and SOCKS5 reach a loopback
server from each proxy's own source address; credentials are checked; each fault mode (down,
auth_refused, slow, reset) shows as a client sees it, and clears."""

from __future__ import annotations

import asyncio
import base64
import socket
import struct
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from leadlawk_daemon.replicas.proxy import LocalProxy, ProxyFleet, serve_proxy_replica


@pytest.fixture
async def target() -> AsyncIterator[int]:
    """A server that answers with the address it sees the client at."""

    async def whoami(request: web.Request) -> web.Response:
        return web.Response(text=request.remote or "")

    app = web.Application()
    app.router.add_get("/", whoami)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


@pytest.fixture
async def fleet() -> AsyncIterator[ProxyFleet]:
    async with ProxyFleet(4, password="pw-for-tests") as proxies:
        yield proxies


def basic(user: str, password: str) -> dict[str, str]:
    return {"Proxy-Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def via_http(proxy: LocalProxy, port: int, auth: dict[str, str] | None = None) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.get(f"http://127.0.0.1:{port}/", proxy=proxy.url, headers=auth) as response,
    ):
        return response.status, await response.text()


async def via_connect(proxy: LocalProxy, port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        status = await reader.readuntil(b"\r\n\r\n")
        if b" 200 " not in status.split(b"\r\n")[0]:
            return status
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


async def via_socks(proxy: LocalProxy, port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(b"\x05\x01\x00")
        method = await reader.readexactly(2)
        if method != b"\x05\x00":
            return method
        writer.write(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack("!H", port))
        reply = await reader.readexactly(10)
        assert reply[1] == 0, reply
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


async def test_each_proxy_reaches_the_target_from_its_own_loopback_address(fleet: ProxyFleet, target: int) -> None:
    http, socks, authed, socks2 = fleet.proxies
    assert (http.kind, socks.kind, authed.kind) == ("http", "socks5", "http")
    assert await via_http(http, target) == (200, "127.0.0.11")
    assert (await via_connect(http, target)).endswith(b"127.0.0.11")
    assert (await via_socks(socks, target)).endswith(b"127.0.0.12")
    assert (await via_socks(socks2, target)).endswith(b"127.0.0.14")


async def test_credentials_are_required_where_set(fleet: ProxyFleet, target: int) -> None:
    authed = fleet.proxies[2]
    assert authed.username == "exit2"
    assert (await via_http(authed, target))[0] == 407
    assert (await via_http(authed, target, basic("exit2", "wrong")))[0] == 407
    assert await via_http(authed, target, basic("exit2", "pw-for-tests")) == (200, "127.0.0.13")


async def test_down_refuses_connections_until_cleared(fleet: ProxyFleet, target: int) -> None:
    http = fleet.proxies[0]
    await http.set_mode("down")
    with pytest.raises(aiohttp.ClientError):
        await via_http(http, target)
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", http.port)
    await http.set_mode("pass")
    assert await via_http(http, target) == (200, "127.0.0.11")


async def test_auth_refused_answers_407_whatever_the_credentials(fleet: ProxyFleet, target: int) -> None:
    http, socks, authed, _ = fleet.proxies
    for proxy in (http, authed):
        await proxy.set_mode("auth_refused")
    assert (await via_http(http, target))[0] == 407
    assert (await via_http(authed, target, basic("exit2", "pw-for-tests")))[0] == 407
    await socks.set_mode("auth_refused")
    assert await via_socks(socks, target) == b"\x05\xff"


async def test_slow_delays_every_chunk(fleet: ProxyFleet, target: int) -> None:
    http = fleet.proxies[0]
    await http.set_mode("slow", delay_s=0.3)
    started = time.monotonic()
    assert await via_http(http, target) == (200, "127.0.0.11")
    assert time.monotonic() - started >= 0.3  # the answer's chunk waited


async def test_reset_drops_each_connection(fleet: ProxyFleet, target: int) -> None:
    http, socks, _, _ = fleet.proxies
    await http.set_mode("reset")
    with pytest.raises(aiohttp.ClientError):
        await via_http(http, target)
    await socks.set_mode("reset")
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        await via_socks(socks, target)
    assert http.refused >= 1
    assert socks.refused >= 1


async def test_only_loopback_targets_and_the_control_port(target: int) -> None:
    async with serve_proxy_replica(2, password="pw-for-tests") as (fleet, control), aiohttp.ClientSession() as session:
        http = fleet.proxies[0]
        async with session.get("http://192.0.2.1:80/", proxy=http.url) as response:
            assert response.status == 403
        async with session.post(f"{control}/_faults", json={"proxy": 0, "mode": "reset"}) as response:
            assert response.status == 200
        async with session.post(f"{control}/_faults", json={"proxy": 5, "mode": "reset"}) as response:
            assert response.status == 400
        async with session.get(f"{control}/_proxies") as response:
            listed = await response.json()
        assert [p["mode"] for p in listed] == ["reset", "pass"]
        assert "pw-for-tests" not in str(listed)
