"""The HTTP contract of docs/interfaces.md, in process: auth, chaos gating, job spec errors, metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request

from leadlawk_daemon.health import Health
from leadlawk_daemon.http_api import JobRefused, create_app, is_local_client
from leadlawk_daemon.intake.admission import QueueFull
from leadlawk_daemon.jobspec import JobSpec
from leadlawk_daemon.metrics import Metrics
from leadlawk_daemon.settings import Settings, load_settings
from leadlawk_daemon.store import StoreUnavailable

TOKEN = "s3cret-token-of-24-chars-at-least"
# What the CLI sends (leadlawk_daemon/control.py): the API takes JSON bodies only.
JSON = {"Content-Type": "application/json"}


class FakeJobs:
    def __init__(self) -> None:
        self.submitted: list[JobSpec] = []
        self.refuse: Exception | None = None

    async def submit(self, spec: JobSpec) -> bool:
        if self.refuse is not None:
            raise self.refuse
        created = all(s.id != spec.id for s in self.submitted)
        self.submitted.append(spec)
        return created

    async def get(self, job_id: str) -> Mapping[str, Any] | None:
        if isinstance(self.refuse, StoreUnavailable):
            raise self.refuse
        return next(({"id": s.id, "status": "queued"} for s in self.submitted if s.id == job_id), None)

    async def list(self, status: str | None) -> list[Mapping[str, Any]]:
        return [{"id": s.id} for s in self.submitted]

    async def cancel(self, job_id: str) -> bool:
        return any(s.id == job_id for s in self.submitted)


class Target:
    def __init__(self) -> None:
        self.crashes = 0
        self.hangs: list[float] = []

    def inject_crash(self) -> None:
        self.crashes += 1

    def inject_hang(self, seconds: float) -> None:
        self.hangs.append(seconds)


def make(settings: Settings, jobs: FakeJobs, target: Target) -> TestServer:
    metrics = Metrics(process=False)
    health = Health(settings.resilience.health_check, settings.health, metrics)
    app = create_app(settings, health, metrics, jobs=jobs, chaos=lambda: {"writer": target})
    return TestServer(app, host="127.0.0.1")


@pytest.fixture
def jobs() -> FakeJobs:
    return FakeJobs()


@pytest.fixture
def target() -> Target:
    return Target()


async def test_chaos_hooks_do_not_exist_unless_enabled(jobs: FakeJobs, target: Target) -> None:
    async with TestClient(make(load_settings(environ={}), jobs, target)) as client:
        assert (await client.post("/debug/crash/writer")).status == 404
    assert target.crashes == 0


async def test_with_a_token_every_admin_route_needs_it(jobs: FakeJobs, target: Target) -> None:
    settings = load_settings(environ={"LEADLAWK_ADMIN_TOKEN": TOKEN, "LEADLAWK__CHAOS__ENABLED": "true"})
    async with TestClient(make(settings, jobs, target)) as client:
        for method, path in [("POST", "/jobs"), ("GET", "/jobs"), ("POST", "/debug/crash/writer")]:
            assert (await client.request(method, path)).status == 401
            wrong = await client.request(method, path, headers={"Authorization": "Bearer nope"})
            assert wrong.status == 401
        good = {"Authorization": f"Bearer {TOKEN}"}
        assert (await client.post("/debug/crash/writer", headers=good)).status == 202
        assert (await client.post("/debug/hang/writer?seconds=2.5", headers=good)).status == 202
        bad = await client.post("/debug/hang/writer?seconds=soon", headers=good)
        assert bad.status == 400
        assert "seconds" in (await bad.json())["error"]
        unknown = await client.post("/debug/crash/nobody", headers=good)
        assert unknown.status == 404
        assert (await unknown.json())["actors"] == ["writer"]
        # Health and metrics stay open, and say nothing secret.
        for path in ("/health/live", "/health/ready", "/metrics"):
            response = await client.get(path)
            assert response.status in (200, 503)
            assert TOKEN not in await response.text()
    assert (target.crashes, target.hangs) == (1, [2.5])


async def test_jobs_api_answers_problems_and_sizes(jobs: FakeJobs, target: Target) -> None:
    async with TestClient(make(load_settings(environ={}), jobs, target)) as client:
        ok = await client.post("/jobs", data=orjson.dumps({"id": "j1", "query": "plumbers"}), headers=JSON)
        assert (ok.status, await ok.json()) == (202, {"id": "j1", "created": True})
        again = await client.post("/jobs", data=orjson.dumps({"id": "j1", "query": "plumbers"}), headers=JSON)
        assert (await again.json())["created"] is False
        bad = await client.post("/jobs", data=orjson.dumps({"query": "", "limit": 900, "colour": "red"}), headers=JSON)
        assert bad.status == 400
        problems = (await bad.json())["problems"]
        assert len(problems) == 3
        assert any(p.startswith("limit:") for p in problems)
        assert any(p.startswith("colour:") for p in problems)
        huge = await client.post("/jobs", data=b'{"query": "' + b"x" * 70_000 + b'"}', headers=JSON)
        assert huge.status == 413
        broken = await client.post("/jobs", data=b"{not json", headers=JSON)
        assert broken.status == 400
        assert (await client.get("/jobs/j1")).status == 200
        assert (await client.get("/jobs/nope")).status == 404
        assert (await client.post("/jobs/j1/cancel")).status == 202
        assert (await client.post("/jobs/nope/cancel")).status == 404
        jobs.refuse = JobRefused(429, "queue full")
        full = await client.post("/jobs", data=orjson.dumps({"query": "roofers"}), headers=JSON)
        assert (full.status, (await full.json())["error"]) == (429, "queue full")
        metrics = await client.get("/metrics")
        assert metrics.headers["Content-Type"].startswith("text/plain; version=0.0.4")


@pytest.mark.parametrize(
    ("remote", "loopback"),
    [("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("10.0.0.5", False), ("192.168.1.2", False),
     ("2001:db8::1", False), (None, False), ("not-an-ip", False)],
)
def test_without_a_token_only_loopback_clients_are_admitted(remote: str | None, loopback: bool) -> None:
    request = make_mocked_request("GET", "/jobs", transport=_Peer(remote))
    assert is_local_client(request) is loopback


class _Peer:
    """A transport whose peer is ``remote``: what aiohttp reads ``request.remote`` from."""

    def __init__(self, remote: str | None) -> None:
        self._remote = remote

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return None if self._remote is None else (self._remote, 40000)
        return default

    def is_closing(self) -> bool:
        return False


async def test_a_spec_arriving_in_two_tcp_segments_is_read_whole(jobs: FakeJobs, target: Target) -> None:
    server = make(load_settings(environ={}), jobs, target)
    entered = asyncio.Event()

    @web.middleware
    async def note_entry(request: web.Request, handler: Any) -> web.StreamResponse:
        entered.set()  # the headers are parsed; the body's first segment is buffered, the rest is not
        response: web.StreamResponse = await handler(request)
        return response

    server.app.middlewares.insert(0, note_entry)  # before the guard, which reads the body whole
    body = orjson.dumps({"id": "split", "query": "plumbers", "location": "Omaha, NE", "limit": 20})
    head = (
        f"POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    async with server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            writer.write(head + body[:17])
            await writer.drain()
            async with asyncio.timeout(10):
                await entered.wait()  # the handler runs with half a body in hand...
            await asyncio.sleep(0)
            writer.write(body[17:])  # ...and the rest arrives as a second segment
            await writer.drain()
            async with asyncio.timeout(10):
                answer = await reader.read()
        finally:
            writer.close()
            await writer.wait_closed()
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 202 Accepted", answer
    assert orjson.loads(rest.partition(b"\r\n\r\n")[2]) == {"id": "split", "created": True}
    assert [s.id for s in jobs.submitted] == ["split"]


async def test_a_forwarded_request_is_not_a_local_client(jobs: FakeJobs, target: Target) -> None:
    async with TestClient(make(load_settings(environ={}), jobs, target)) as client:
        assert (await client.get("/jobs")).status == 200  # loopback, direct: the operator on the box
        stranger = "203.0.113.9"
        for header in ({"X-Forwarded-For": stranger}, {"Forwarded": f"for={stranger}"}, {"X-Real-IP": stranger}):
            relayed = await client.get("/jobs", headers=header)
            assert relayed.status == 403, header  # a proxy on this host relays strangers
            assert "only local clients" in (await relayed.json())["error"]
            posted = await client.post("/jobs", data=b'{"query": "x"}', headers={**header, **JSON})
            assert posted.status == 403
            # What is public stays public through a proxy.
            assert (await client.get("/health/live", headers=header)).status == 200
            assert (await client.get("/metrics", headers=header)).status == 200
    assert jobs.submitted == []


async def test_a_route_added_later_is_private_unless_declared_public(jobs: FakeJobs, target: Target) -> None:
    settings = load_settings(environ={"LEADLAWK_ADMIN_TOKEN": TOKEN})
    server = make(settings, jobs, target)

    async def console(_: web.Request) -> web.Response:
        return web.Response(text="the operator console")

    server.app.router.add_get("/", console)  # as the console's issue will: no auth code of its own
    async with TestClient(server) as client:
        assert (await client.get("/")).status == 401
        assert (await client.head("/")).status == 401
        assert (await client.get("/", headers={"Authorization": f"Bearer {TOKEN}"})).status == 200
        assert (await client.get("/no/such/route")).status == 401  # nothing is open by accident
        assert (await client.head("/health/live")).status == 200  # a declared path: every method of it


async def test_the_token_is_compared_in_constant_time(
    jobs: FakeJobs, target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hmac

    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr("leadlawk_daemon.http_api.hmac.compare_digest", spy)
    settings = load_settings(environ={"LEADLAWK_ADMIN_TOKEN": TOKEN})
    async with TestClient(make(settings, jobs, target)) as client:
        for supplied in (f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN}-and-more", f"bearer {TOKEN}"):
            assert (await client.get("/jobs", headers={"Authorization": supplied})).status == 401
        assert (await client.get("/jobs", headers={"Authorization": f"Bearer {TOKEN}"})).status == 200
    assert len(compared) == 4


async def test_the_database_down_is_503_with_retry_after_and_a_full_queue_429(
    jobs: FakeJobs, target: Target
) -> None:
    async with TestClient(make(load_settings(environ={}), jobs, target)) as client:
        jobs.refuse = StoreUnavailable("PostgreSQL is unreachable: connect to postgresql://app:***@db-7.internal")
        for response in (
            await client.post("/jobs", data=orjson.dumps({"query": "roofers"}), headers=JSON),
            await client.get("/jobs/anything"),
        ):
            assert response.status == 503
            assert response.headers["Retry-After"] == "5"
            text = await response.text()
            assert "db-7.internal" not in text
            assert "unavailable" in text
        jobs.refuse = QueueFull("job x refused: 100 jobs are waiting; resilience.bulkhead.queue_size is 100")
        full = await client.post("/jobs", data=orjson.dumps({"query": "roofers"}), headers=JSON)
        assert full.status == 429
        assert "queue_size is 100" in (await full.json())["error"]
