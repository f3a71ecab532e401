"""The egress policy: no request built from outside data goes where the daemon must not.

Every test sends traffic to loopback only. Refused destinations (169.254.169.254 included) are
refused before any socket exists, which is what these tests assert; listeners on loopback count
what would otherwise have reached the daemon's own API.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import socket
import subprocess
import sys
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from ipaddress import IPv4Address
from typing import Any

import orjson
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.clock import FakeClock
from leadlawk_daemon.resilience.breaker import BreakerState, CircuitBreaker
from leadlawk_daemon.settings import ConfigError, SitesSettings, load_settings
from leadlawk_daemon.sites import EgressGuard, SiteClient, SiteReport, SiteStatus
from leadlawk_daemon.sites.command import run_site_command
from leadlawk_daemon.sites.fetch import Fetcher
from leadlawk_daemon.sites.policy import EgressPolicy, EgressRefused, parse_ipv4
from tests.linearity import FUZZ_EXAMPLES

SITE_HOST = "127.0.0.2"  # the "public" websites of these tests: allowed through sites.allowed_networks
API_HOST = "127.0.0.1"  # the daemon-like API: never allowed, never reached
# The network tests share one loop, one API listener and one site client (its extraction workers
# take a while to start): each test reads sites of its own names, so the client's cache keeps apart.
shared_loop = pytest.mark.asyncio(loop_scope="module")


def _refusal(host: str, *, proxy: bool = False, allowed: tuple[str, ...] = ()) -> str | None:
    try:
        EgressPolicy.from_cidrs(allowed).check_host(host, names_resolved_by_proxy=proxy)
    except EgressRefused as exc:
        return exc.what
    return None


# --- the address rules ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "what"),
    [
        ("127.0.0.1", "127.0.0.1 (loopback)"),
        ("0x7f.1", "127.0.0.1 (loopback)"),
        ("2130706433", "127.0.0.1 (loopback)"),
        ("0177.0.0.1", "127.0.0.1 (loopback)"),
        ("127.1", "127.0.0.1 (loopback)"),
        ("0x7F000001", "127.0.0.1 (loopback)"),
        ("127.0.0.1.", "127.0.0.1 (loopback)"),
        ("127.0.0.1%2e", "127.0.0.1 (loopback)"),
        ("::ffff:7f00:1", "::ffff:7f00:1 (IPv4-mapped 127.0.0.1, loopback)"),
        ("[::1]", "::1 (loopback)"),
        ("::1%25eth0", "::1 (loopback)"),
        ("169.254.169.254", "169.254.169.254 (link-local, cloud metadata)"),
        ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254 (link-local, cloud metadata)"),
        ("64:ff9b::a9fe:a9fe", "64:ff9b::a9fe:a9fe (NAT64 169.254.169.254, link-local, cloud metadata)"),
        ("64:ff9b:1::a00:1", "64:ff9b:1::a00:1 (local-use NAT64)"),
        ("2002:a00:1::1", "2002:a00:1::1 (6to4 10.0.0.1, private)"),
        ("10.1.2.3", "10.1.2.3 (private)"),
        ("172.31.255.255", "172.31.255.255 (private)"),
        ("192.168.0.1", "192.168.0.1 (private)"),
        ("fd12::1", "fd12::1 (private)"),
        ("fe80::1", "fe80::1 (link-local)"),
        ("100.64.0.1", "100.64.0.1 (CGNAT)"),
        ("224.0.0.251", "224.0.0.251 (multicast)"),
        ("ff02::1", "ff02::1 (multicast)"),
        ("255.255.255.255", "255.255.255.255 (broadcast)"),
        ("240.0.0.1", "240.0.0.1 (reserved)"),
        ("0.0.0.0", "0.0.0.0 (unspecified)"),
        ("0", "0.0.0.0 (unspecified)"),
        ("::", ":: (unspecified)"),
        ("192.0.2.1", "192.0.2.1 (documentation)"),
        ("2001:db8::1", "2001:db8::1 (documentation)"),
        ("198.18.0.1", "198.18.0.1 (benchmarking)"),
        ("1.2.3.4.5", "1.2.3.4.5 (not a valid IP address)"),
        ("256.0.0.1", "256.0.0.1 (not a valid IP address)"),
        ("a b.example", "a b.example (not a host name)"),
    ],
)
def test_refused_addresses_in_every_spelling(host: str, what: str) -> None:
    assert _refusal(host) == what


@pytest.mark.parametrize("host", ["93.184.215.14", "2606:4700::6810:84e5", "64:ff9b::5db8:d70e", "acme.example",
                                  "xn--bcher-kva.example", "shop.co.uk"])
def test_public_addresses_and_names_pass(host: str) -> None:
    assert _refusal(host) is None
    assert _refusal(host, proxy=True) is None


def test_allowed_networks_exempt_exactly_their_addresses() -> None:
    allowed = ("127.0.0.2/32", "fd00:1::/64")
    assert _refusal("127.0.0.2", allowed=allowed) is None
    assert _refusal("::ffff:127.0.0.2", allowed=allowed) is None  # the same address, mapped
    assert _refusal("fd00:1::5", allowed=allowed) is None
    assert _refusal("127.0.0.1", allowed=allowed) == "127.0.0.1 (loopback)"
    assert _refusal("fd00:2::5", allowed=allowed) == "fd00:2::5 (private)"


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST.", "api.localhost", "printer.local",
                                  "metadata.google.internal", "nas.home.arpa", "intranet", "router.lan"])
def test_local_names_are_refused_before_a_proxy_resolves_them(host: str) -> None:
    assert _refusal(host, proxy=True) == f"{host.lower()} (a local name)"
    # Without a proxy the name is resolved here, and judged by its addresses (tests below).
    assert _refusal(host) is None


def _spelling(address: int, parts: int, radixes: list[int], zeros: list[int], upper: bool) -> str:
    """``address`` written in ``parts`` parts (the last filling the remaining bytes), each in its radix."""
    sizes = [1] * (parts - 1) + [4 - (parts - 1)]
    values, shift = [], 32
    for size in sizes:
        shift -= 8 * size
        values.append((address >> shift) & ((1 << (8 * size)) - 1))
    words = []
    for value, radix, pad in zip(values, radixes, zeros, strict=False):
        if radix == 16:
            digits = f"{value:x}"
            words.append(("0X" if upper else "0x") + "0" * pad + (digits.upper() if upper else digits))
        elif radix == 8:
            words.append("0" + "0" * pad + f"{value:o}")
        else:
            words.append(str(value))
    return ".".join(words)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(
    address=st.integers(0x7F000000, 0x7FFFFFFF),
    parts=st.integers(1, 4),
    radixes=st.lists(st.sampled_from([8, 10, 16]), min_size=4, max_size=4),
    zeros=st.lists(st.integers(0, 3), min_size=4, max_size=4),
    upper=st.booleans(),
    trailing_dot=st.booleans(),
)
def test_every_inet_aton_spelling_of_loopback_is_refused(
    address: int, parts: int, radixes: list[int], zeros: list[int], upper: bool, trailing_dot: bool
) -> None:
    spelling = _spelling(address, parts, radixes, zeros, upper)
    assert socket.inet_aton(spelling) == IPv4Address(address).packed  # a spelling the C library accepts
    host = spelling + ("." if trailing_dot else "")
    assert parse_ipv4(host) == IPv4Address(address)
    assert _refusal(host) == f"{IPv4Address(address)} (loopback)"
    assert _refusal(host, proxy=True) == f"{IPv4Address(address)} (loopback)"


@settings(max_examples=FUZZ_EXAMPLES * 4, deadline=None)
@given(st.text(alphabet="0123456789xXaAfF.", min_size=1, max_size=24))
def test_whatever_inet_aton_reads_as_a_refused_address_is_refused(text: str) -> None:
    try:
        packed = socket.inet_aton(text)
    except OSError:
        return
    address = IPv4Address(packed)
    if EgressPolicy().refusal(address) is not None:
        assert _refusal(text) is not None, text


def test_allowed_networks_and_the_site_budget_are_validated() -> None:
    loaded = load_settings(environ={"LEADLAWK__SITES__ALLOWED_NETWORKS": "[127.0.0.0/8, 'fd00::/8']"})
    assert [str(n) for n in loaded.sites.allowed_networks] == ["127.0.0.0/8", "fd00::/8"]
    assert load_settings().sites.allowed_networks == ()  # nothing exempt unless the operator says so
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"LEADLAWK__SITES__ALLOWED_NETWORKS": "[10.0.0.0/33]"})
    assert [p.split(":")[0] for p in caught.value.problems] == ["sites.allowed_networks.0"]
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"LEADLAWK__SITES__SITE_BUDGET": "600s"})
    assert caught.value.problems == [
        "sites.site_budget: must be less than actors.site.handle_timeout (600s) (got 600s)"]
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"LEADLAWK__SITES__SITE_BUDGET": "10s"})
    assert caught.value.problems == ["sites.site_budget: must be more than sites.timeout (15s) (got 10s)"]


# --- listeners on loopback ---------------------------------------------------------------------


class _Listener:
    """An HTTP server on one loopback address that records every request it is sent."""

    def __init__(self, handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]) -> None:
        self.requests: list[str] = []
        self.port = 0
        self._handler = handler

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        self.requests.append(request.path_qs)
        return await self._handler(request)


@asynccontextmanager
async def _listening(
    host: str, handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]], port: int = 0
) -> AsyncIterator[_Listener]:
    listener = _Listener(handler)
    runner = web.ServerRunner(web.Server(listener.handle))
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
        listener.port = runner.addresses[0][1]
        yield listener
    finally:
        await runner.cleanup()


async def _api(request: web.BaseRequest) -> web.StreamResponse:
    """What the daemon's own API would answer a loopback caller: its job list."""
    return web.json_response({"jobs": [{"id": "job-1", "status": "running"}]})


async def _business(request: web.BaseRequest) -> web.StreamResponse:
    if request.path == "/robots.txt":
        return web.Response(status=404)
    return web.Response(text="<html><body>Acme Roofing, info@acme.example</body></html>", content_type="text/html")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def api() -> AsyncIterator[_Listener]:
    async with _listening(API_HOST, _api) as listener:
        yield listener


class _MappedResolver(AbstractResolver):
    """DNS for the tests: each name maps to the answers of its next lookup (the last repeats)."""

    def __init__(self, names: dict[str, list[list[str]]]) -> None:
        self.names = names
        self.lookups: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups.append(host)
        answers = self.names[host]
        current = answers.pop(0) if len(answers) > 1 else answers[0]
        return [
            ResolveResult(hostname=host, host=address, port=port, family=socket.AF_INET6 if ":" in address
                          else socket.AF_INET, proto=0, flags=socket.AI_NUMERICHOST)
            for address in current
        ]

    async def close(self) -> None:
        return None


def _settings(**changes: Any) -> SitesSettings:
    base: dict[str, Any] = {"proxy": None, "ca_file": None, "timeout": 5.0, "max_pages": 0,
                            "allowed_networks": (f"{SITE_HOST}/32",)}
    return load_settings().sites.model_copy(update=base | changes)


# First answer allowed, every later one the API: checked and connected must be one lookup.
_DNS = _MappedResolver({
    "acme-roofing.example": [[API_HOST]],
    "rebind.example": [[SITE_HOST], [API_HOST]],
    "mixed.example": [[API_HOST, SITE_HOST]],
    "rebound.example": [[API_HOST]],
    "localhost": [[API_HOST, "::1"]],  # as /etc/hosts answers it
})


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def client() -> AsyncIterator[SiteClient]:
    async with SiteClient(_settings(), resolver=_DNS) as shared:
        yield shared


# --- the site client ---------------------------------------------------------------------------


@shared_loop
async def test_loopback_spellings_and_metadata_are_never_fetched(api: _Listener, client: SiteClient) -> None:
    port = api.port
    urls = {
        f"http://127.0.0.1:{port}/jobs": "127.0.0.1 (loopback)",
        f"http://0x7f.1:{port}/jobs": "127.0.0.1 (loopback)",
        f"http://2130706433:{port}/jobs": "127.0.0.1 (loopback)",
        f"http://[::ffff:127.0.0.1]:{port}/jobs": "::ffff:7f00:1 (IPv4-mapped 127.0.0.1, loopback)",
        f"http://localhost:{port}/jobs": "localhost → ",  # resolved here, then refused by its address
        "http://169.254.169.254/latest/meta-data/": "169.254.169.254 (link-local, cloud metadata)",
    }
    reports = [await client.inspect(url) for url in urls]
    for report, what in zip(reports, urls.values(), strict=True):
        assert report.status is SiteStatus.BLOCKED_BY_POLICY, report
        assert report.reason is not None
        assert report.reason.startswith(what)
        assert report.reason.endswith("refused by the egress policy")
        assert not report.unreachable
    assert api.requests == []


@shared_loop
async def test_a_public_name_resolving_to_loopback_is_refused(api: _Listener, client: SiteClient) -> None:
    report = await client.inspect(f"http://acme-roofing.example:{api.port}/")
    assert (report.status, report.reason) == (
        SiteStatus.BLOCKED_BY_POLICY, "acme-roofing.example → 127.0.0.1 (loopback) refused by the egress policy")
    assert "acme-roofing.example" in _DNS.lookups  # the check ran on the name's answer
    assert api.requests == []


@asynccontextmanager
async def _site_and_api_on_one_port() -> AsyncIterator[tuple[_Listener, _Listener]]:
    """A business site on 127.0.0.2 and the API on 127.0.0.1, on the same port: a name that
    rebinds from one to the other keeps its URL."""
    for _ in range(20):
        async with contextlib.AsyncExitStack() as stack:
            site = await stack.enter_async_context(_listening(SITE_HOST, _business))
            try:
                api = await stack.enter_async_context(_listening(API_HOST, _api, site.port))
            except OSError:
                continue  # the port is taken on 127.0.0.1: another one
            yield site, api
            return
    raise AssertionError("no port free on both loopback addresses")


@shared_loop
async def test_dns_rebinding_cannot_reach_a_refused_address(client: SiteClient) -> None:
    async with _site_and_api_on_one_port() as (site, api):
        first = await client.inspect(f"http://rebind.example:{site.port}/")
        again = await client.fetcher.get(f"http://rebind.example:{site.port}/again")
        # One lookup answering both: only the allowed address is connected to.
        both = await client.inspect(f"http://mixed.example:{site.port}/")
        # The rebound answer alone, never seen before: refused.
        refused = await client.inspect(f"http://rebound.example:{site.port}/")
    assert (first.status, first.emails) == (SiteStatus.OK, ["info@acme.example"])
    assert again.status == 200
    assert (both.status, both.emails) == (SiteStatus.OK, ["info@acme.example"])
    assert refused.status is SiteStatus.BLOCKED_BY_POLICY
    assert len(site.requests) >= 4  # robots.txt and the home page of each read, and /again
    assert api.requests == []


@shared_loop
async def test_a_redirect_to_the_daemons_api_is_blocked_by_policy(api: _Listener, client: SiteClient) -> None:
    async def redirecting(request: web.BaseRequest) -> web.StreamResponse:
        if request.path == "/robots.txt":
            return web.Response(status=404)
        raise web.HTTPFound(f"http://127.0.0.1:{api.port}/jobs")

    async with _listening(SITE_HOST, redirecting) as site:
        report = await client.inspect(f"http://{SITE_HOST}:{site.port}/")
    assert (report.status, report.reason, report.unreachable) == (
        SiteStatus.BLOCKED_BY_POLICY, "redirect to 127.0.0.1 (loopback) refused by the egress policy", False)
    assert site.requests == ["/robots.txt", "/"]
    assert api.requests == []


@asynccontextmanager
async def _forward_proxy(routes: dict[str, str]) -> AsyncIterator[tuple[str, list[str]]]:
    """A forward proxy stand-in: records each request line's target; ``routes`` maps an absolute
    URL to the Location it redirects to; robots.txt is 404 and anything else a small page."""
    seen: list[str] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            head = await reader.readuntil(b"\r\n\r\n")
            target = head.split(b" ", 2)[1].decode("latin-1")
            seen.append(target)
            if target in routes:
                answer = f"HTTP/1.1 302 Found\r\nLocation: {routes[target]}\r\nContent-Length: 0\r\n"
            elif target.endswith("/robots.txt"):
                answer = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
            else:
                answer = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 2\r\n"
            writer.write((answer + "Connection: close\r\n\r\n" + ("ok" if "200" in answer else "")).encode())
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}", seen
    finally:
        server.close()
        await server.wait_closed()


@shared_loop
async def test_through_a_proxy_literals_and_local_names_are_refused_before_it_sees_them() -> None:
    routes = {
        "http://loopback.shop.example/": "http://127.0.0.1:8080/jobs",
        "http://metadata.shop.example/": "http://169.254.169.254/latest/meta-data/",
        "http://hex.shop.example/": "http://0x7f.1:8080/",
        "http://localhost.shop.example/": "http://localhost:8080/",
    }
    direct_urls = ("http://127.0.0.1:8080/", "http://[::1]:8080/", "http://metadata.google.internal/", "http://intranet/")
    async with contextlib.AsyncExitStack() as stack:
        proxy, seen = await stack.enter_async_context(_forward_proxy(routes))
        # The proxy's own loopback address is configuration, not data: it is not in allowed_networks.
        client = await stack.enter_async_context(SiteClient(_settings(proxy=proxy, allowed_networks=())))
        redirected = [await client.inspect(url) for url in routes]
        direct = [await client.inspect(url) for url in direct_urls]
    assert [r.reason for r in redirected] == [
        "redirect to 127.0.0.1 (loopback) refused by the egress policy",
        "redirect to 169.254.169.254 (link-local, cloud metadata) refused by the egress policy",
        "redirect to 127.0.0.1 (loopback) refused by the egress policy",
        "redirect to localhost (a local name) refused by the egress policy",
    ]
    assert {r.status for r in redirected + direct} == {SiteStatus.BLOCKED_BY_POLICY}
    # Only the business's own URLs reached the proxy: no refused host, not even its robots.txt.
    assert seen
    assert all(target.split("/")[2].endswith(".shop.example") for target in seen), seen


@shared_loop
async def test_refused_sites_never_open_the_egress_breaker(api: _Listener, client: SiteClient) -> None:
    breaker = CircuitBreaker("sites-egress", failure_threshold=3, reset_timeout=60.0, call_timeout=None,
                             clock=FakeClock())
    guard = EgressGuard(breaker)
    reports = [
        await guard.run(f"site-{n}", functools.partial(client.inspect, f"http://127.0.0.{n + 10}:{api.port}/"))
        for n in range(12)
    ]
    assert {r.status for r in reports} == {SiteStatus.BLOCKED_BY_POLICY}
    assert breaker.state is BreakerState.CLOSED
    assert breaker.failures == 0
    assert api.requests == []


@shared_loop
async def test_a_page_that_cannot_be_decoded_or_parsed_never_counts_against_the_egress_breaker() -> None:
    breaker = CircuitBreaker("sites-egress", failure_threshold=3, reset_timeout=60.0, call_timeout=None,
                             clock=FakeClock())
    guard = EgressGuard(breaker)

    async def unreadable() -> SiteReport:
        # What bytes.decode raised for <meta charset="rot13"> before decoding took only text encodings.
        raise LookupError("'rot_13' is not a text encoding; use codecs.decode() to handle arbitrary codecs")

    for n in range(8):
        with pytest.raises(LookupError):
            await guard.run(f"site-{n}", unreadable)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.failures == 0


# --- bodies ------------------------------------------------------------------------------------


_BOMB_MIB = 64


def _gzip_bomb() -> bytes:
    """64 MiB of zeros in about 64 KB of gzip, compressed a block at a time."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1024 * 1024)
    return b"".join([*(compressor.compress(block) for _ in range(_BOMB_MIB)), compressor.flush()])


@shared_loop
async def test_a_gzip_bomb_is_cut_at_max_bytes_without_being_inflated() -> None:
    bomb = await asyncio.to_thread(_gzip_bomb)

    async def serve_bomb(request: web.BaseRequest) -> web.StreamResponse:
        return web.Response(body=bomb, headers={"Content-Encoding": "gzip", "Content-Type": "text/html"})

    cap = 256 * 1024
    async with _listening(SITE_HOST, serve_bomb) as site:
        fetcher = Fetcher(user_agent="test", timeout=10.0, max_bytes=cap, per_host=1, max_connections=4,
                          policy=EgressPolicy.from_cidrs([f"{SITE_HOST}/32"]))
        await fetcher.open()
        tracemalloc.start()
        try:
            page = await fetcher.get(f"http://{SITE_HOST}:{site.port}/")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
            await fetcher.close()
    assert (len(page.body), page.truncated, set(page.body)) == (cap, True, {0})
    print(f"gzip bomb: {len(bomb) // 1024} KiB sent, {_BOMB_MIB} MiB inflated; peak {peak / 2**20:.1f} MiB held")
    assert peak < 8 * 2**20  # the cap and a few decompression steps, not the 64 MiB


# --- leadlawk site URL -------------------------------------------------------------------------


def test_site_command_reads_a_loopback_url_listed_in_allowed_networks() -> None:
    # Read like any site (nothing listens on port 9: dead); the refusal is the next test's.
    out, err = io.StringIO(), io.StringIO()
    status = run_site_command(_settings(allowed_networks=("127.0.0.0/8",)), ["http://127.0.0.1:9/"], out, err)
    assert (status, err.getvalue()) == (0, "")
    assert orjson.loads(out.getvalue())["status"] == "dead"


def test_leadlawk_site_exits_1_with_one_line_for_loopback() -> None:
    done = subprocess.run([sys.executable, "-m", "leadlawk_daemon", "site", "http://127.0.0.1:9/"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout) == (1, "")
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines == ["leadlawk site: http://127.0.0.1:9/: 127.0.0.1 (loopback) refused by the egress policy "
                     "(sites.allowed_networks exempts a network)"]
