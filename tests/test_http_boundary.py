"""The HTTP boundary (docs/http-boundary.md): no web page drives the daemon, sign-in is hardened,
and slow or many clients cannot take the server.

Each test serves the daemon's real app (create_app with the console mounted) through the real
:class:`HttpServer` on a loopback port, in process: the same middleware, connection limits and
settings a ``leadlawk run`` serves, in milliseconds. The token checks at start run the CLI.
"""

from __future__ import annotations

import asyncio
import io
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import make_mocked_request

from leadlawk_daemon.console import mount_console
from leadlawk_daemon.console.csrf import CSRF_COOKIE, TOKEN_S, Csrf
from leadlawk_daemon.console.login import SESSION_COOKIE, LoginAttempts
from leadlawk_daemon.console.sources import ConsoleSources, HealthView
from leadlawk_daemon.control import submit_job
from leadlawk_daemon.event_bus import EventBus
from leadlawk_daemon.health import Health
from leadlawk_daemon.http_api import HttpServer, create_app
from leadlawk_daemon.http_boundary import HttpBoundary
from leadlawk_daemon.jobspec import JobSpec, parse_job_spec
from leadlawk_daemon.metrics import Metrics
from leadlawk_daemon.settings import Settings, load_settings
from tests.daemon_process import ROOT
from tests.test_http_api import _Peer
from tests.waiting import eventually

TOKEN = "boundary-test-token-0123456789abcdef"
JSON = {"Content-Type": "application/json"}
SPEC = orjson.dumps({"id": "evil-1", "query": "plumbers", "location": "Omaha, NE"})


class Jobs:
    """The jobs API, remembering what reached it."""

    def __init__(self) -> None:
        self.submitted: list[JobSpec] = []
        self.cancelled: list[str] = []

    async def submit(self, spec: JobSpec) -> bool:
        self.submitted.append(spec)
        return True

    async def get(self, job_id: str) -> Mapping[str, Any] | None:
        return next(({"id": s.id, "status": "queued"} for s in self.submitted if s.id == job_id), None)

    async def list(self, status: str | None) -> list[Mapping[str, Any]]:
        return [{"id": s.id, "status": "queued", "spec": s.to_dict(), "counters": {}} for s in self.submitted]

    async def cancel(self, job_id: str) -> bool:
        self.cancelled.append(job_id)
        return True


class _Sink:
    def publish(self, type: str, /, **context: object) -> None:
        pass


@dataclass
class Served:
    server: HttpServer
    jobs: Jobs
    settings: Settings

    @property
    def port(self) -> int:
        assert self.server.bound_port is not None
        return self.server.bound_port

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@asynccontextmanager
async def serving(**env: str) -> AsyncIterator[Served]:
    """The daemon's app and HTTP server, configured by ``env`` (LEADLAWK__SERVER__… and the like)."""
    settings = load_settings(environ={"PORT": "0", "LEADLAWK__SERVER__HOST": "127.0.0.1", **env})
    metrics = Metrics(process=False)
    jobs = Jobs()
    health = Health(settings.resilience.health_check, settings.health, metrics)
    app = create_app(settings, health, metrics, jobs=jobs)
    mount_console(app, ConsoleSources(
        settings=settings, jobs=jobs, bus=EventBus(_Sink()), store=lambda: None,
        health=lambda: HealthView(ready=True, checks={}, live=True, live_reason=None), notify=lambda: None,
    ))
    server = HttpServer.from_settings(app, settings)
    ready = asyncio.Event()
    task = asyncio.create_task(server.run(ready.set))
    try:
        async with asyncio.timeout(10):
            await ready.wait()
        yield Served(server, jobs, settings)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def _browser() -> aiohttp.ClientSession:
    """A client that keeps cookies, as a browser does (aiohttp's default jar drops those of an IP address)."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def _form_token(http: aiohttp.ClientSession, url: str, headers: Mapping[str, str] | None = None) -> str:
    async with http.get(url, headers=headers) as response:
        assert response.status == 200, await response.text()
        page = await response.text()
    match = re.search(r'name="csrf_token" value="(\d+\.[0-9a-f]{64})"', page)
    assert match is not None
    return match.group(1)


# -- no web page drives the daemon ------------------------------------------------------------------


async def test_a_text_plain_or_cross_origin_post_creates_no_job_and_cancels_nothing() -> None:
    async with serving() as served, aiohttp.ClientSession() as http:
        evil = {"Origin": "https://evil.example"}
        attempts = {
            # What a web page can send without asking (a "simple" request): refused as not JSON.
            "text/plain": ({"Content-Type": "text/plain"}, 415),
            "a form": ({"Content-Type": "application/x-www-form-urlencoded"}, 415),
            "text/plain from evil": ({"Content-Type": "text/plain", **evil}, 403),
            "JSON from evil": ({**JSON, **evil}, 403),
            "JSON from an opaque origin": ({**JSON, "Origin": "null"}, 403),
            "JSON to a look-alike origin": ({**JSON, "Origin": f"{served.base}.evil.example"}, 403),
        }
        for what, (headers, status) in attempts.items():
            async with http.post(served.base + "/jobs", data=SPEC, headers=headers) as response:
                assert response.status == status, what
                assert "error" in await response.json()
        async with http.post(served.base + "/jobs/evil-1/cancel", headers=evil) as response:
            assert response.status == 403
        async with http.post(served.base + "/jobs/evil-1/cancel", data=b"x", headers={"Content-Type": "text/plain"},
                             ) as response:
            assert response.status == 415
        async with http.get(served.base + "/jobs") as response:
            assert (await response.json())["jobs"] == []  # no job, as the API itself says
    assert (served.jobs.submitted, served.jobs.cancelled) == ([], [])


async def test_sec_fetch_site_cross_site_or_same_site_is_refused_same_origin_passes() -> None:
    async with serving() as served, aiohttp.ClientSession() as http:
        for site, status in (("cross-site", 403), ("same-site", 403), ("same-origin", 202), ("none", 202)):
            async with http.post(served.base + "/jobs", data=SPEC, headers={**JSON, "Sec-Fetch-Site": site}) as resp:
                assert resp.status == status, site
                if status == 403:
                    assert site in (await resp.json())["error"]
    assert len(served.jobs.submitted) == 2


async def test_the_cli_and_its_json_requests_are_still_served() -> None:
    async with serving() as served:
        settings = load_settings(environ={"PORT": str(served.port)})
        spec = parse_job_spec({"id": "from-cli", "query": "roofers", "location": "Omaha, NE"}, 65_536)
        out = io.StringIO()
        assert await submit_job(settings, spec, wait=False, out=out) == 0  # `leadlawk submit`, no Redis
        assert out.getvalue() == "submitted from-cli\n"
        async with aiohttp.ClientSession() as http:
            # Same-origin from our own console's page, and a bare POST (curl -X POST): no Origin, no body.
            async with http.post(served.base + "/jobs/from-cli/cancel", headers={"Origin": served.base}) as resp:
                assert resp.status == 202
            async with http.post(served.base + "/jobs/from-cli/cancel") as resp:
                assert resp.status == 202
    assert [s.id for s in served.jobs.submitted] == ["from-cli"]
    assert served.jobs.cancelled == ["from-cli", "from-cli"]


async def test_a_rebinding_host_gets_no_page_no_csrf_cookie_and_cannot_submit() -> None:
    rebind = "rebind.attacker.example"
    async with serving() as served, _browser() as http:
        attacker = {"Host": f"{rebind}:{served.port}"}
        async with http.get(served.base + "/", headers=attacker) as response:
            assert response.status == 403
            assert response.headers["Content-Type"].startswith("text/html")
            assert "Host not allowed: set server.allowed_hosts or an admin token" in await response.text()
            assert CSRF_COOKIE not in response.cookies
        assert len(http.cookie_jar) == 0
        async with http.get(served.base + "/jobs", headers={**attacker, "Accept": "application/json"}) as response:
            assert response.status == 403
            assert (await response.json())["error"].startswith("Host not allowed")
        # Even with a token and cookie the page at 127.0.0.1 handed out, and its own origin.
        token = await _form_token(http, served.base + "/")
        form = {"query": "rebound", "location": "Omaha, NE", "limit": "1", "csrf_token": token}
        headers = {**attacker, "Origin": f"http://{rebind}:{served.port}"}
        async with http.post(served.base + "/console/jobs", data=form, headers=headers,
                             allow_redirects=False) as response:
            assert response.status == 403
        # The same form sent to our own name is what works: the Host rule is what refused.
        async with http.post(served.base + "/console/jobs", data=form, headers={"Origin": served.base},
                             allow_redirects=False) as response:
            assert response.status == 303, await response.text()
        # Public routes reveal nothing and stay open to any Host (a load balancer's probe).
        async with http.get(served.base + "/health/live", headers=attacker) as response:
            assert response.status == 200
    assert [s.query for s in served.jobs.submitted] == ["rebound"]


async def test_allowed_hosts_and_loopback_names_are_served() -> None:
    async with serving(LEADLAWK__SERVER__ALLOWED_HOSTS="[leadlawk.lan]") as served, aiohttp.ClientSession() as http:
        for host in (f"leadlawk.lan:{served.port}", "LeadLawk.LAN", f"localhost:{served.port}", "127.0.0.2:80",
                     f"[::1]:{served.port}", "127.0.0.1"):
            async with http.get(served.base + "/jobs", headers={"Host": host}) as response:
                assert response.status == 200, host
        for host in ("leadlawk.lan.evil.example", "evil.localhost", "localhost.", "user@localhost", "10.0.0.1",
                     "[::ffff:a00:1]"):
            async with http.get(served.base + "/jobs", headers={"Host": host}) as response:
                assert response.status == 403, host


# -- behind a proxy -------------------------------------------------------------------------------


def _cookie_flags(response: aiohttp.ClientResponse, name: str) -> str:
    lines = [v for v in response.headers.getall("Set-Cookie", []) if v.startswith(name + "=")]
    assert len(lines) == 1, response.headers.getall("Set-Cookie", [])
    return lines[0].lower()


async def test_cookies_are_secure_behind_a_trusted_proxy_that_says_https_and_not_otherwise() -> None:
    proxies = {"https by X-Forwarded-Proto": {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.7"},
               "https by Forwarded": {"Forwarded": 'for=198.51.100.7;proto=https'}}
    async with serving(LEADLAWK_ADMIN_TOKEN=TOKEN, LEADLAWK__SERVER__TRUSTED_PROXIES="[127.0.0.0/8]") as served:
        for what, headers in proxies.items():
            async with aiohttp.ClientSession() as http, http.get(served.base + "/console/login",
                                                                  headers=headers) as response:
                assert response.status == 200
                assert "; secure" in _cookie_flags(response, CSRF_COOKIE), what
        async with _browser() as http:
            # (Fetched directly: a client keeps a Secure cookie from a plain http:// address.)
            token = await _form_token(http, served.base + "/console/login")
            async with http.post(served.base + "/console/login", data={"token": TOKEN, "csrf_token": token},
                                 headers={**proxies["https by Forwarded"], "Origin": served.base},
                                 allow_redirects=False) as response:
                assert response.status == 303
                assert "; secure" in _cookie_flags(response, SESSION_COOKIE)
        async with aiohttp.ClientSession() as http, http.get(served.base + "/console/login",
                                                              headers={"X-Forwarded-Proto": "http"}) as response:
            assert "; secure" not in _cookie_flags(response, CSRF_COOKIE)
    # The same headers from a peer that is not a trusted proxy are not believed.
    async with serving(LEADLAWK_ADMIN_TOKEN=TOKEN, LEADLAWK__SERVER__TRUSTED_PROXIES="[10.0.0.0/8]") as served:
        for what, headers in proxies.items():
            async with aiohttp.ClientSession() as http, http.get(served.base + "/console/login",
                                                                  headers=headers) as response:
                assert "; secure" not in _cookie_flags(response, CSRF_COOKIE), what


async def test_forwarding_headers_from_a_trusted_proxy_do_not_make_a_request_local() -> None:
    async with serving(LEADLAWK__SERVER__TRUSTED_PROXIES="[127.0.0.1]") as served, aiohttp.ClientSession() as http:
        async with http.get(served.base + "/jobs") as response:
            assert response.status == 200
        for headers in ({"X-Forwarded-For": "203.0.113.9"}, {"Forwarded": "for=203.0.113.9;proto=https"}):
            async with http.get(served.base + "/jobs", headers=headers) as response:
                assert response.status == 403, headers


def test_a_trusted_proxy_names_the_client_and_no_one_else_does() -> None:
    settings = load_settings(environ={"LEADLAWK__SERVER__TRUSTED_PROXIES": "[127.0.0.1, '::1']"})
    boundary = HttpBoundary(settings.server)

    def client(headers: dict[str, str], peer: str = "127.0.0.1") -> str:
        return boundary.client(make_mocked_request("POST", "/console/login", headers=headers, transport=_Peer(peer)))

    assert client({"X-Forwarded-For": "203.0.113.1, 198.51.100.2"}) == "198.51.100.2"  # the one it appended
    assert client({"Forwarded": 'for="[2001:db8::7]:4711"'}) == "2001:db8::7"
    assert client({"Forwarded": "for=198.51.100.3:80"}) == "198.51.100.3"
    assert client({"X-Forwarded-For": "not an address"}) == "127.0.0.1"
    assert client({"X-Forwarded-For": "198.51.100.2"}, peer="192.0.2.50") == "192.0.2.50"


# -- signing in -----------------------------------------------------------------------------------


async def test_sign_in_attempts_are_limited_per_client_with_retry_after() -> None:
    async with serving(LEADLAWK_ADMIN_TOKEN=TOKEN) as served, _browser() as http:
        token = await _form_token(http, served.base + "/console/login")
        guess = {"token": "x" * 24, "csrf_token": token}
        for _ in range(5):
            async with http.post(served.base + "/console/login", data=guess, headers={"Origin": served.base}) as r:
                assert r.status == 401
        for data in (guess, {"token": TOKEN, "csrf_token": token}):  # the right token waits too
            async with http.post(served.base + "/console/login", data=data, headers={"Origin": served.base},
                                 allow_redirects=False) as response:
                assert response.status == 429
                assert 1 <= int(response.headers["Retry-After"]) <= 12
                assert SESSION_COOKIE not in response.cookies


def test_the_sign_in_limit_refills_on_the_clock_and_keeps_a_bounded_table() -> None:
    now = [100.0]
    attempts = LoginAttempts(5, max_clients=3, clock=lambda: now[0])
    assert [attempts.attempt("192.0.2.1") for _ in range(5)] == [None] * 5
    wait = attempts.attempt("192.0.2.1")
    assert wait == pytest.approx(12.0)  # one attempt back every 12 s
    assert attempts.attempt("192.0.2.2") is None  # another client has its own
    now[0] += 12.0
    assert attempts.attempt("192.0.2.1") is None
    assert attempts.attempt("192.0.2.1") is not None
    # One IPv6 host holds a /64: its addresses share one bucket.
    for n in range(5):
        assert attempts.attempt(f"2001:db8:1:2::{n + 1:x}") is None
    assert attempts.attempt("2001:db8:1:2:ffff::9") is not None
    assert attempts.attempt("2001:db8:1:3::1") is None
    assert len(attempts._buckets) == 3  # bounded: the least recently seen are forgotten


def test_a_csrf_token_expires() -> None:
    now = [1_000_000.0]
    csrf = Csrf(b"k" * 32, wall=lambda: now[0])
    from aiohttp import web

    page = web.Response()
    request = make_mocked_request("GET", "/", headers={"Host": "127.0.0.1:8080"})
    token = csrf.token(request, page)
    nonce = page.cookies[CSRF_COOKIE].value
    post = make_mocked_request("POST", "/console/jobs", headers={
        "Host": "127.0.0.1:8080", "Origin": "http://127.0.0.1:8080", "Cookie": f"{CSRF_COOKIE}={nonce}"})
    now[0] += TOKEN_S - 1
    assert csrf.problem(post, token) is None
    now[0] += 2
    problem = csrf.problem(post, token)
    assert problem is not None
    assert "reload the page" in problem
    issued, _, proof = token.partition(".")
    assert csrf.problem(post, f"{int(issued) + 10}.{proof}") is not None  # the date is signed


async def test_signing_out_revokes_the_session_cookie_on_the_server() -> None:
    async with serving(LEADLAWK_ADMIN_TOKEN=TOKEN) as served, _browser() as http:
        token = await _form_token(http, served.base + "/console/login")
        async with http.post(served.base + "/console/login", data={"token": TOKEN, "csrf_token": token},
                             headers={"Origin": served.base}, allow_redirects=False) as response:
            assert response.status == 303
            session = response.cookies[SESSION_COOKIE].value
        kept = {"Cookie": f"{SESSION_COOKIE}={session}", "Accept": "application/json"}
        async with aiohttp.ClientSession() as other, other.get(served.base + "/console/health", headers=kept) as page:
            assert page.status == 200  # the cookie alone proves the token...
        token = await _form_token(http, served.base + "/console/health")
        async with http.post(served.base + "/console/logout", data={"csrf_token": token},
                             headers={"Origin": served.base}, allow_redirects=False) as response:
            assert response.status == 303
        async with aiohttp.ClientSession() as other, other.get(served.base + "/console/health", headers=kept) as page:
            assert page.status == 401  # ...until it signs out: a copy of it is worth nothing


def _leadlawk(*args: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    import os

    full = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": "sqlite:///:memory:", **env}
    return subprocess.run([sys.executable, "-m", "leadlawk_daemon", *args], env=full, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_a_short_admin_token_is_refused_by_config_check_and_at_start() -> None:
    short = {"LEADLAWK_ADMIN_TOKEN": "x" * 23}
    for command in (("config", "check"), ("run",)):
        result = _leadlawk(*command, env=short)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        said = result.stdout + result.stderr
        assert "server.admin_token" in said
        assert "LEADLAWK_ADMIN_TOKEN" in said
        assert "x" * 23 not in said  # a secret, even a bad one, is not echoed
    assert _leadlawk("config", "check", env={"LEADLAWK_ADMIN_TOKEN": "x" * 24}).returncode == 0


# -- the server ---------------------------------------------------------------------------------------


async def _open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def _trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> tuple[float, bytes]:
    """Send ``head`` one byte per 0.2 s until the server answers or closes: the seconds that took,
    and what it said."""
    began = time.monotonic()
    for byte in head:
        try:
            writer.write(bytes([byte]))
            async with asyncio.timeout(0.2):
                said = await reader.read(1024)
            return time.monotonic() - began, said
        except TimeoutError:
            continue
        except ConnectionResetError:
            return time.monotonic() - began, b""
    raise AssertionError("the whole head was sent and the server still waits")


async def _slowloris(port: int, head: bytes, closed: asyncio.Event) -> float:
    reader, writer = await _open(port)
    try:
        took, said = await _trickle(reader, writer, head)
    finally:
        writer.close()
    assert said in (b"", b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"), said
    closed.set()
    return took


async def test_slowloris_connections_are_closed_at_the_header_deadline_while_health_answers() -> None:
    async with serving(LEADLAWK__SERVER__HEADER_TIMEOUT="1s") as served, aiohttp.ClientSession() as http:
        head = b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 200 + b"\r\n\r\n"
        done = [asyncio.Event() for _ in range(20)]
        tasks = [asyncio.create_task(_slowloris(served.port, head, event)) for event in done]
        await eventually(lambda: served.server.limits.open >= 20, what="20 slow connections open")
        answered = 0
        while not all(event.is_set() for event in done):
            async with http.get(served.base + "/health/live", timeout=aiohttp.ClientTimeout(total=2)) as response:
                assert response.status == 200  # throughout
                answered += 1
            await asyncio.sleep(0.05)
        held = await asyncio.gather(*tasks)
        assert answered > 0
        # A 1 s deadline; the whole head takes 45 s at this pace (the margin is for a loaded machine).
        assert max(held) < 5.0, held
        assert min(held) >= 0.9, held
        # A kept-alive connection: its first request is answered, a second trickled head is cut too.
        reader, writer = await _open(served.port)
        try:
            writer.write(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            first = await asyncio.wait_for(reader.readuntil(b'"ok"}'), 5)
            assert first.startswith(b"HTTP/1.1 200")
            took, said = await _trickle(reader, writer, head)
            assert took < 5.0
            assert said.startswith(b"HTTP/1.1 408") or said == b""
        finally:
            writer.close()
        # Keep-alive is kept: three requests on one connection.
        reader, writer = await _open(served.port)
        try:
            for _ in range(3):
                writer.write(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                assert (await asyncio.wait_for(reader.readuntil(b'"ok"}'), 5)).startswith(b"HTTP/1.1 200")
        finally:
            writer.close()


async def test_connections_beyond_the_cap_are_refused_until_one_closes() -> None:
    async with serving(LEADLAWK__SERVER__MAX_CONNECTIONS="3", LEADLAWK__SERVER__HEADER_TIMEOUT="30s") as served:
        held = [await _open(served.port) for _ in range(3)]
        await eventually(lambda: served.server.limits.open == 3, what="3 connections open")
        reader, writer = await _open(served.port)
        answer = await asyncio.wait_for(reader.read(), 5)  # answered and closed, whatever it sends
        writer.close()
        assert answer.startswith(b"HTTP/1.1 503"), answer
        assert served.server.limits.open == 3
        _, first = held.pop()
        first.close()
        await eventually(lambda: served.server.limits.open == 2, what="a slot freed")
        async with aiohttp.ClientSession() as http, http.get(served.base + "/health/live") as response:
            assert response.status == 200
        for _, writer in held:
            writer.close()


async def test_a_body_that_does_not_arrive_in_time_is_answered_408() -> None:
    async with serving(LEADLAWK__SERVER__BODY_TIMEOUT="500ms") as served:
        reader, writer = await _open(served.port)
        try:
            writer.write(b"POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 100\r\n\r\n" + SPEC[:10])
            answer = await asyncio.wait_for(reader.read(), 5)
        finally:
            writer.close()
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert b"server.body_timeout" in answer
    assert served.jobs.submitted == []

