"""The HTTP contract of INTERFACES.md, in process: auth, chaos gating, job spec errors, metrics."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from leadlawk_daemon.health import Health
from leadlawk_daemon.http_api import JobRefused, create_app
from leadlawk_daemon.jobspec import JobSpec
from leadlawk_daemon.metrics import Metrics
from leadlawk_daemon.settings import Settings, load_settings


class FakeJobs:
    def __init__(self) -> None:
        self.submitted: list[JobSpec] = []
        self.refuse: JobRefused | None = None

    async def submit(self, spec: JobSpec) -> bool:
        if self.refuse is not None:
            raise self.refuse
        created = all(s.id != spec.id for s in self.submitted)
        self.submitted.append(spec)
        return created

    async def get(self, job_id: str) -> Mapping[str, Any] | None:
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
    settings = load_settings(environ={"LEADLAWK_ADMIN_TOKEN": "s3cret-token", "LEADLAWK__CHAOS__ENABLED": "true"})
    async with TestClient(make(settings, jobs, target)) as client:
        for method, path in [("POST", "/jobs"), ("GET", "/jobs"), ("POST", "/debug/crash/writer")]:
            assert (await client.request(method, path)).status == 401
            wrong = await client.request(method, path, headers={"Authorization": "Bearer nope"})
            assert wrong.status == 401
        good = {"Authorization": "Bearer s3cret-token"}
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
            assert "s3cret-token" not in await response.text()
    assert (target.crashes, target.hangs) == (1, [2.5])


async def test_jobs_api_answers_problems_and_sizes(jobs: FakeJobs, target: Target) -> None:
    async with TestClient(make(load_settings(environ={}), jobs, target)) as client:
        ok = await client.post("/jobs", data=orjson.dumps({"id": "j1", "query": "plumbers"}))
        assert (ok.status, await ok.json()) == (202, {"id": "j1", "created": True})
        again = await client.post("/jobs", data=orjson.dumps({"id": "j1", "query": "plumbers"}))
        assert (await again.json())["created"] is False
        bad = await client.post("/jobs", data=orjson.dumps({"query": "", "limit": 900, "colour": "red"}))
        assert bad.status == 400
        problems = (await bad.json())["problems"]
        assert len(problems) == 3
        assert any(p.startswith("limit:") for p in problems)
        assert any(p.startswith("colour:") for p in problems)
        huge = await client.post("/jobs", data=b'{"query": "' + b"x" * 70_000 + b'"}')
        assert huge.status == 413
        broken = await client.post("/jobs", data=b"{not json")
        assert broken.status == 400
        assert (await client.get("/jobs/j1")).status == 200
        assert (await client.get("/jobs/nope")).status == 404
        assert (await client.post("/jobs/j1/cancel")).status == 202
        assert (await client.post("/jobs/nope/cancel")).status == 404
        jobs.refuse = JobRefused(429, "queue full")
        full = await client.post("/jobs", data=orjson.dumps({"query": "roofers"}))
        assert (full.status, (await full.json())["error"]) == (429, "queue full")
        metrics = await client.get("/metrics")
        assert metrics.headers["Content-Type"].startswith("text/plain; version=0.0.4")


@pytest.mark.parametrize(
    ("remote", "loopback"),
    [("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("10.0.0.5", False), ("192.168.1.2", False),
     ("2001:db8::1", False), (None, False), ("not-an-ip", False)],
)
def test_without_a_token_only_loopback_clients_are_admitted(remote: str | None, loopback: bool) -> None:
    from leadlawk_daemon.http_api import _is_loopback

    assert _is_loopback(remote) is loopback
