"""The console without a browser: form problems to fields, lead filters, the login proof, the CSRF
check, the in-process event bus, the event stream and the page shown while the database is down."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request

from leadlawk_daemon.console import mount_console
from leadlawk_daemon.console.csrf import CSRF_COOKIE, Csrf, same_origin
from leadlawk_daemon.console.forms import field_of, spec_from_form
from leadlawk_daemon.console.leads import LeadFilter, filter_leads, page_of
from leadlawk_daemon.console.login import SESSION_COOKIE, SESSION_S, ConsoleLogin
from leadlawk_daemon.console.sources import ConsoleSources, HealthView
from leadlawk_daemon.event_bus import EventBus
from leadlawk_daemon.health import Health
from leadlawk_daemon.http_api import create_app
from leadlawk_daemon.metrics import Metrics
from leadlawk_daemon.settings import load_settings
from leadlawk_daemon.store.base import StoreUnavailable


def test_each_validator_problem_goes_to_the_field_its_path_names() -> None:
    assert field_of("limit: must be between 1 and 500 (got 900)") == ("limit", "must be between 1 and 500 (got 900)")
    assert field_of("pagespeed.max_score: must be between 0 and 100 (got 120)")[0] == "max_score"
    assert field_of("area.bbox: south must be less than north (got south 2, north 1)")[0] == "bbox"
    assert field_of("site.status[1]: must be one of 'ok', 'dead'")[0] == "site_status"
    assert field_of("area: covers 20,000 km², more than the configured maximum")[0] == "area_kind"
    assert field_of("something nobody owns") == ("", "something nobody owns")


def test_the_form_builds_the_spec_the_api_would_get_or_names_each_bad_field() -> None:
    form = {"query": "roofers", "location": "Lincoln, NE", "limit": "30", "pagespeed": "on", "max_score": "50",
            "coverage": "area", "area_kind": "near", "center": "41.25, -95.93", "radius_km": "5", "priority": "8"}
    result = spec_from_form(form, {"strategies": ["mobile", "desktop"], "site_status": ["dead"]},
                            max_bytes=65_536, max_area_km2=10_000)
    assert result.errors == {}
    assert result.spec is not None
    spec = result.spec.to_dict()
    assert (spec["query"], spec["limit"], spec["coverage"], spec["priority"]) == ("roofers", 30, "area", 8)
    assert spec["pagespeed"] == {"enabled": True, "strategies": ["mobile", "desktop"], "max_score": 50}
    assert spec["site"]["status"] == ["dead"]

    bad = spec_from_form({"limit": "0", "min_rating": "high", "coverage": "area", "area_kind": "bbox",
                          "bbox": "1,2,3", "priority": "10"}, {}, max_bytes=65_536, max_area_km2=10_000)
    assert bad.spec is None
    assert set(bad.errors) == {"query", "limit", "min_rating", "bbox", "priority"}
    assert bad.values["min_rating"] == "high"  # shown again as typed


ROWS = [
    {"rank": 1, "name": "b", "qualified": True, "website": "https://b.example", "mobile_performance": 40.0,
     "site_status": "ok"},
    {"rank": 2, "name": "A", "qualified": False, "website": None, "mobile_performance": None, "site_status": None},
    {"rank": 3, "name": "c", "qualified": True, "website": "https://c.example", "mobile_performance": 90.0,
     "site_status": "dead"},
]


def test_lead_filters_sorting_and_pages() -> None:
    assert [r["rank"] for r in filter_leads(ROWS, LeadFilter(qualified="yes"))] == [1, 3]
    assert [r["rank"] for r in filter_leads(ROWS, LeadFilter(website="no"))] == [2]
    assert [r["rank"] for r in filter_leads(ROWS, LeadFilter(score_max=50))] == [1]
    assert [r["rank"] for r in filter_leads(ROWS, LeadFilter(site_status="dead"))] == [3]
    assert [r["rank"] for r in filter_leads(ROWS, LeadFilter(sort="name"))] == [2, 1, 3]  # case-folded
    # Unknown scores last, whichever the order.
    assert [r["rank"] for r in filter_leads(ROWS, LeadFilter(sort="mobile", descending=True))] == [3, 1, 2]
    assert LeadFilter.from_query({"qualified": "<script>", "sort": "drop table", "score_min": "nan"}) == LeadFilter()
    assert LeadFilter(qualified="yes").only_qualified()
    page = page_of(list(range(120)), "3", size=50)
    assert (page.rows, page.page, page.pages, page.total) == (list(range(100, 120)), 3, 3, 120)
    assert page_of([], "x").page == 1


def _request(path: str, headers: dict[str, str] | None = None, cookies: dict[str, str] | None = None) -> web.Request:
    headers = dict(headers or {})
    headers.setdefault("Host", "127.0.0.1:8080")
    if cookies:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    return make_mocked_request("POST", path, headers=headers)


def test_the_login_cookie_proves_the_token_to_console_pages_only_until_it_expires() -> None:
    now = [1_000_000.0]
    login = ConsoleLogin("s3cret-token", wall=lambda: now[0])
    response = web.Response()
    login.session_cookie(response, secure=False)
    value = response.cookies[SESSION_COOKIE].value
    assert "s3cret" not in value
    assert response.cookies[SESSION_COOKIE]["httponly"]
    assert response.cookies[SESSION_COOKIE]["samesite"] == "Strict"
    assert login.proves(_request("/", cookies={SESSION_COOKIE: value}))
    assert login.proves(_request("/console/health", cookies={SESSION_COOKIE: value}))
    assert not login.proves(_request("/jobs", cookies={SESSION_COOKIE: value}))  # the API keeps its bearer
    assert not ConsoleLogin("another-token", wall=lambda: now[0]).proves(_request("/", cookies={SESSION_COOKIE: value}))
    expires, _, proof = value.partition(".")
    assert not login.proves(_request("/", cookies={SESSION_COOKIE: f"{int(expires) + 99}.{proof}"}))
    now[0] += SESSION_S + 1
    assert not login.proves(_request("/", cookies={SESSION_COOKIE: value}))
    assert login.token_matches("s3cret-token")
    assert not login.token_matches("s3cret-tokem")


def test_csrf_needs_the_signed_token_of_the_cookie_and_the_same_origin() -> None:
    csrf = Csrf(b"k" * 32)
    page = web.Response()
    token = csrf.token(_request("/"), page)
    nonce = page.cookies[CSRF_COOKIE].value
    same = {"Origin": "http://127.0.0.1:8080"}
    assert csrf.problem(_request("/console/jobs", same, {CSRF_COOKIE: nonce}), token) is None
    assert csrf.problem(_request("/console/jobs", same, {CSRF_COOKIE: nonce}), "") is not None
    assert csrf.problem(_request("/console/jobs", same, {CSRF_COOKIE: nonce}), "0" * 64) is not None
    assert csrf.problem(_request("/console/jobs", same, {CSRF_COOKIE: "x" * 43}), token) is not None
    for origin in ("http://evil.example", "http://127.0.0.1:8081", "null", "file:///x"):
        assert csrf.problem(_request("/console/jobs", {"Origin": origin}, {CSRF_COOKIE: nonce}), token) is not None
    assert csrf.problem(_request("/console/jobs", {}, {CSRF_COOKIE: nonce}), token) is not None
    assert same_origin(_request("/", {"Referer": "http://127.0.0.1:8080/console/jobs/x"}))
    assert not same_origin(_request("/", {"Referer": "http://127.0.0.1:8080.evil.example/"}))


class _Sink:
    def __init__(self) -> None:
        self.events: list[str] = []

    def publish(self, type: str, /, **context: object) -> None:
        self.events.append(type)


async def test_the_event_bus_forwards_everything_and_a_slow_subscriber_loses_only_its_oldest() -> None:
    sink = _Sink()
    bus = EventBus(sink, capacity=3)
    bus.publish("job.started", job_id="before")  # nobody subscribed yet: forwarded only
    with bus.subscribe() as subscription:
        for n in range(5):
            bus.publish("job.progress", job_id="j", counters={"written": n})
        got = [await subscription.get() for _ in range(3)]
        assert [e["counters"]["written"] for e in got] == [2, 3, 4]
        assert subscription.dropped == 2
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01):
                await subscription.get()
    assert bus.subscribers == 0
    assert sink.events == ["job.started"] + ["job.progress"] * 5


class _Jobs:
    """The jobs API with one unfinished job and one finished."""

    async def submit(self, spec: object) -> bool:
        return True

    async def get(self, job_id: str) -> dict[str, object] | None:
        return None

    async def list(self, status: str | None) -> list[dict[str, object]]:
        counters = {"found": 3, "qualified": 1, "enriched": 0, "written": 2, "failed": 0}
        return [{"id": "running-1", "status": "running", "counters": counters, "progress": {"waiting_on": []}},
                {"id": "done-1", "status": "succeeded", "counters": counters, "progress": {}}]

    async def cancel(self, job_id: str) -> bool:
        return False


def _console_app(jobs: _Jobs, bus: EventBus, health: HealthView) -> web.Application:
    """The daemon's app (create_app: the guard, /jobs) with the console mounted on these parts."""
    settings = load_settings(environ={})
    metrics = Metrics(process=False)
    app = create_app(settings, Health(settings.resilience.health_check, settings.health, metrics), metrics,
                     jobs=jobs)  # type: ignore[arg-type]
    mount_console(app, ConsoleSources(
        settings=settings, jobs=jobs, bus=bus, store=lambda: None,  # type: ignore[arg-type]
        health=lambda: health, notify=lambda: None,
    ))
    return app


async def test_events_stream_a_snapshot_then_the_bus_and_end_at_shutdown_without_waiting() -> None:
    bus = EventBus(_Sink())
    server = TestServer(_console_app(_Jobs(), bus, HealthView(ready=True, checks={}, live=True, live_reason=None)))
    client = TestClient(server)
    await client.start_server()
    try:
        response = await client.get("/console/events")
        assert response.status == 200
        assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")

        async def event() -> dict[str, object]:
            while True:
                line = (await response.content.readline()).decode().strip()
                if line.startswith("data: "):
                    return dict(orjson.loads(line[6:]))

        snapshot = await event()
        assert (snapshot["job_id"], snapshot["status"]) == ("running-1", "running")  # not the finished one
        bus.publish("job.progress", job_id="running-1", counters={"written": 3})
        bus.publish("lead.written", job_id="running-1")  # not for the table: not sent
        bus.publish("job.finished", job_id="running-1", status="succeeded", counters={"written": 4}, error=None)
        assert (await event())["counters"] == {"written": 3}
        finished = await event()
        assert (finished["status"], finished["finished"]) == ("succeeded", True)
        assert bus.subscribers == 1
        began = time.monotonic()
        assert server.runner is not None
        await server.runner.cleanup()  # its shutdown_timeout is aiohttp's 60 s
        assert time.monotonic() - began < 2, "an open event stream held the shutdown"
        assert bus.subscribers == 0
    finally:
        await client.close()


class _DownJobs(_Jobs):
    async def list(self, status: str | None) -> list[dict[str, object]]:
        raise StoreUnavailable("connection refused to postgresql://leadlawk:hunter2@db/leadlawk")


async def test_a_page_the_database_cannot_serve_says_so_in_html_and_the_health_page_still_answers() -> None:
    down = {"database": {"ok": False, "latency_ms": None, "error": "connection_refused"}}
    app = _console_app(_DownJobs(), EventBus(_Sink()), HealthView(ready=False, checks=down, live=True,
                                                                   live_reason=None))
    async with TestClient(TestServer(app)) as client:
        page = await client.get("/")
        assert page.status == 503
        assert page.headers["Content-Type"].startswith("text/html")
        assert page.headers["Retry-After"] == "5"
        text = await page.text()
        assert "the database is unavailable" in text
        assert "hunter2" not in text
        assert 'href="/console/health"' in text
        api = await client.get("/jobs")  # the JSON API keeps its JSON answer
        assert (api.status, api.headers["Content-Type"]) == (503, "application/json")
        health = await client.get("/console/health")
        assert health.status == 200
        assert "connection_refused" in await health.text()


def test_a_redirect_after_sign_in_or_cancel_stays_on_the_console() -> None:
    from leadlawk_daemon.console.routes import _next_path

    assert _next_path("/console/health?x=1") == "/console/health?x=1"
    assert _next_path("/") == "/"
    for elsewhere in ("//evil.example/", "https://evil.example/", "/\\evil.example", "/jobs", "", None):
        assert _next_path(elsewhere) == "/", elsewhere
