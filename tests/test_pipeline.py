"""The job pipeline end to end: real PostgreSQL (a database per test), real Chromium, both replicas.

Every expectation comes from the Maps replica's ``/_answers`` and from what the store holds.
Jobs run under a real ``rest_for_one`` supervisor, as the daemon mounts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from actors.clock import MonotonicClock
from actors.dead_letters import MemoryDeadLetters
from leadlawk_daemon.jobspec import parse_job_spec
from leadlawk_daemon.metrics import Metrics
from leadlawk_daemon.pipeline import Pipeline, QueueFull
from leadlawk_daemon.settings import Settings, load_settings
from leadlawk_daemon.store import Store, open_store
from supervisors.spec import Strategy
from supervisors.supervisor import Supervisor
from tests.waiting import eventually

FEED = 40  # the replica's feed length: small, to keep a 2-core machine's tests short
pytestmark = [
    pytest.mark.browser,
    pytest.mark.maps_replica(seed=11, max_results=FEED),
    pytest.mark.pagespeed_replica(seed=3),
]


@dataclass
class Events:
    """An EventSink that keeps what was published and lets a test wait for an event."""

    items: list[dict[str, Any]] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def publish(self, type: str, /, **context: Any) -> None:
        self.items.append({"type": type, **context})
        self._changed.set()

    def of(self, type: str, job_id: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.items if e["type"] == type and (job_id is None or e.get("job_id") == job_id)]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 60.0) -> None:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def finished(self, job_id: str, timeout: float = 60.0) -> dict[str, Any]:  # noqa: ASYNC109
        await self.wait_for(lambda: bool(self.of("job.finished", job_id)), timeout)
        return self.of("job.finished", job_id)[0]


def settings_for(database_url: str, maps_url: str, pagespeed_url: str, **env: str) -> Settings:
    environ = {
        "DATABASE_URL": database_url,
        "LEADLAWK__MAPS__BASE_URL": maps_url,
        "LEADLAWK__MAPS__NAVIGATIONS_PER_MINUTE": "60000",
        "LEADLAWK__MAPS__NAVIGATION_TIMEOUT": "10",
        "LEADLAWK__MAPS__SCROLL_TIMEOUT": "3",
        "LEADLAWK__MAPS__MAX_IDLE_SCROLLS": "2",
        "LEADLAWK__PAGESPEED__BASE_URL": pagespeed_url,
        "LEADLAWK__PAGESPEED__MAX_IN_FLIGHT": "8",
        "LEADLAWK__PAGESPEED__REQUEST_TIMEOUT": "10",
        "LEADLAWK__BROWSER__PAGES": "1",
        "LEADLAWK__BROWSER__MEMORY_LIMIT_MB": "4096",
        "LEADLAWK__JOBS__PROGRESS_INTERVAL": "0.5",
        "LEADLAWK__SUPERVISION__BACKOFF__MIN": "10ms",
        "LEADLAWK__SUPERVISION__BACKOFF__MAX": "100ms",
        **env,
    }
    return load_settings(environ=environ)


@pytest.fixture
def database(fresh_pg: str) -> str:
    """A database of its own for each test, on the session's server."""
    return fresh_pg


@dataclass
class Replicas:
    maps: str
    pagespeed: str
    session: aiohttp.ClientSession

    async def answers(self, query: str, location: str) -> list[dict[str, Any]]:
        params = {"q": query, "location": location}
        async with self.session.get(f"{self.maps}/_answers", params=params) as resp:
            resp.raise_for_status()
            body: dict[str, Any] = await resp.json()
        answers: list[dict[str, Any]] = body["answers"]
        return answers


@pytest.fixture
async def replicas(maps_url: str, pagespeed_url: str) -> AsyncIterator[Replicas]:
    """Both replicas (the shared fixtures, set by this module's marks) and a session to steer them."""
    async with aiohttp.ClientSession() as session:
        yield Replicas(maps_url, pagespeed_url, session)


@dataclass
class Running:
    pipeline: Pipeline
    supervisor: Supervisor
    events: Events
    dead_letters: MemoryDeadLetters
    store: Store


@contextlib.asynccontextmanager
async def running_pipeline(
    settings: Settings, owner: str = "daemon-a", events: Events | None = None
) -> AsyncIterator[Running]:
    clock = MonotonicClock()
    events = events if events is not None else Events()
    sink = MemoryDeadLetters()
    async with (
        open_store(settings.database.url, clock=clock, migrate=True) as store,
        Pipeline(settings, store, Metrics(process=False), clock, events, sink, owner) as pipeline,
    ):
        sup = Supervisor(
            f"pipeline-{owner}", pipeline.children(), strategy=Strategy.REST_FOR_ONE, max_restarts=20, period=60
        )
        ready = asyncio.Event()
        task = asyncio.create_task(sup.run(ready.set))
        try:
            await asyncio.wait_for(ready.wait(), 60)
            yield Running(pipeline, sup, events, sink, store)
        finally:
            sup.request_stop()
            await asyncio.wait_for(task, 30)


def spec(job_id: str, query: str = "plumbers", location: str = "Omaha, NE", **fields: Any) -> Any:
    return parse_job_spec({"id": job_id, "query": query, "location": location, **fields}, 65536)


async def stored_leads(store: Store, job_id: str) -> list[dict[str, Any]]:
    rows = await store.lead_rows_for_export(job_id)
    return sorted(rows, key=lambda r: r["rank"])


async def assert_complete(run: Running, replicas: Replicas, job_id: str, query: str, location: str) -> None:
    """The user's check: the job's leads are exactly the replica's answers, in order, each tested."""
    answers = await replicas.answers(query, location)
    rows = await stored_leads(run.store, job_id)
    assert [r["place_id"] for r in rows] == [a["place_id"] for a in answers]
    assert [r["rank"] for r in rows] == list(range(1, len(answers) + 1))
    with_site = [r for r in rows if r["website"]]
    assert with_site, "the replica's feed should have businesses with websites"
    assert all(r["mobile_tested_at"] is not None for r in with_site)
    assert all(r["mobile_performance"] is not None or r["mobile_error"] is not None for r in with_site)
    job = await run.store.get_job(job_id)
    assert job is not None
    assert job.status == "succeeded"
    assert (job.found, job.written) == (len(answers), len(answers))
    assert job.enriched == len(with_site)
    assert job.qualified == sum(1 for r in rows if r["qualified"])


async def test_a_job_yields_exactly_the_answer_set_and_a_smaller_limit_the_first_n(
    database: str, replicas: Replicas
) -> None:
    settings = settings_for(database, replicas.maps, replicas.pagespeed)
    async with running_pipeline(settings) as run:
        assert await run.pipeline.submit(spec("full", limit=500, pagespeed={"max_score": 60}))
        assert await run.pipeline.submit(spec("first7", query="dentists", limit=7))
        assert not await run.pipeline.submit(spec("full", limit=500))  # the same id runs once
        full = await run.events.finished("full", timeout=90)
        first7 = await run.events.finished("first7", timeout=90)

        assert full["status"] == "succeeded"
        assert full["feed_exhausted"] is True
        assert full["end_reason"] == "end_of_list"
        assert full["counters"]["found"] == FEED
        await assert_complete(run, replicas, "full", "plumbers", "Omaha, NE")
        rows = await stored_leads(run.store, "full")
        # Qualification was recomputed with the PageSpeed results: no lead with a website still
        # waits for one, and the verdicts follow the scores.
        for row in rows:
            if row["website"] and row["mobile_error"] is None:
                assert row["qualified"] == (row["mobile_performance"] <= 60), row
        assert len(run.events.of("job.progress", "full")) >= 1
        assert sum(e["count"] for e in run.events.of("lead.written", "full")) == FEED

        assert first7["status"] == "succeeded"
        assert first7["feed_exhausted"] is False
        answers = await replicas.answers("dentists", "Omaha, NE")
        assert [r["place_id"] for r in await stored_leads(run.store, "first7")] == [
            a["place_id"] for a in answers[:7]
        ]
        assert run.pipeline.readiness() == {
            "browser": True,
            "google_maps": True,
            "pagespeed": True,
            "database": True,
        }
        assert not run.dead_letters.letters


async def test_the_writer_crashing_mid_job_loses_nothing(database: str, replicas: Replicas) -> None:
    settings = settings_for(database, replicas.maps, replicas.pagespeed, LEADLAWK__DATABASE__BATCH_SIZE="5")
    async with running_pipeline(settings) as run:
        assert await run.pipeline.submit(spec("crashy", limit=500))
        await run.events.wait_for(lambda: bool(run.events.of("lead.written", "crashy")))
        run.pipeline.writer.inject_crash()
        finished = await run.events.finished("crashy", timeout=90)
        assert finished["status"] == "succeeded"
        assert run.pipeline.writer.stats.restarts >= 1
        await assert_complete(run, replicas, "crashy", "plumbers", "Omaha, NE")


async def test_cancel_stops_the_job_within_five_seconds_with_its_counters(
    database: str, replicas: Replicas
) -> None:
    # A slow PageSpeed keeps the job busy long enough to be cancelled in the middle.
    settings = settings_for(database, replicas.maps, replicas.pagespeed)
    async with replicas.session.post(f"{replicas.pagespeed}/_faults", json={"latency_ms": 3000}) as resp:
        assert resp.status == 200
    async with running_pipeline(settings) as run:
        assert await run.pipeline.submit(spec("doomed", limit=500))
        await run.events.wait_for(lambda: bool(run.events.of("lead.written", "doomed")))
        asked = time.monotonic()
        assert await run.pipeline.cancel("doomed")
        finished = await run.events.finished("doomed", timeout=10)
        assert time.monotonic() - asked < 5.0
        assert finished["status"] == "cancelled"
        job = await run.store.get_job("doomed")
        assert job is not None
        assert job.status == "cancelled"
        assert job.lease_owner is None
        rows = await stored_leads(run.store, "doomed")
        assert job.written == len(rows) == finished["counters"]["written"] > 0
        assert job.enriched < job.found  # enrichment was still going on when it stopped
        assert not run.pipeline.runs
        assert not await run.pipeline.cancel("doomed")  # finished: nothing to cancel


def database_breaker_went(events: Events, state: str) -> bool:
    return any(e["breaker"] == "database" and e["new"] == state for e in events.of("breaker.changed"))


class TcpProxy:
    """A loopback TCP proxy in front of PostgreSQL, so that a test can take the database away
    from one pipeline (and give it back) without touching the shared server."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._conns):
            writer.close()
        await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._conns |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                dst.close()
                self._conns.discard(dst)

        tasks = {asyncio.create_task(pipe(reader, up_writer)), asyncio.create_task(pipe(up_reader, writer))}
        self._tasks |= tasks
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self._tasks -= tasks


async def test_a_database_outage_opens_the_breaker_keeps_every_row_and_resumes(
    database: str, replicas: Replicas
) -> None:
    proxy = TcpProxy(int(database.split("@127.0.0.1:")[1].split("/")[0]))
    await proxy.start()
    via_proxy = database.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    settings = settings_for(
        via_proxy,
        replicas.maps,
        replicas.pagespeed,
        LEADLAWK__RESILIENCE__CIRCUIT_BREAKER__FAILURE_THRESHOLD="2",
        LEADLAWK__DATABASE__CONNECT_TIMEOUT="1",
    )
    try:
        async with running_pipeline(settings) as run:
            assert await run.pipeline.submit(spec("outage", limit=500))
            await run.events.wait_for(lambda: bool(run.events.of("lead.written", "outage")))
            await proxy.stop()
            await run.events.wait_for(lambda: database_breaker_went(run.events, "open"), timeout=30)
            assert run.pipeline.readiness()["database"] is False
            assert len(run.pipeline.buffer) > 0  # rows held, not dropped
            held = len(run.pipeline.buffer)
            await proxy.start()
            back = time.monotonic()
            # The breaker closes on the first write that succeeds: writing has resumed.
            await run.events.wait_for(lambda: database_breaker_went(run.events, "closed"), 10)
            assert time.monotonic() - back < 5.0
            assert len(run.pipeline.buffer) < held
            finished = await run.events.finished("outage", timeout=60)
            assert finished["status"] == "succeeded"
            assert run.pipeline.readiness()["database"] is True
            await assert_complete(run, replicas, "outage", "plumbers", "Omaha, NE")
    finally:
        with contextlib.suppress(AssertionError):
            await proxy.stop()


async def test_two_pipelines_on_one_database_run_each_job_exactly_once(database: str, replicas: Replicas) -> None:
    settings = settings_for(database, replicas.maps, replicas.pagespeed, LEADLAWK__PAGESPEED__MAX_IN_FLIGHT="2")
    queries = ["plumbers", "dentists", "roofers", "bakers", "florists", "tailors"]
    events = Events()  # both daemons announce on one channel, as they would through Redis
    async with (
        running_pipeline(settings, "daemon-a", events) as a,
        running_pipeline(settings, "daemon-b", events) as b,
    ):
        for i, query in enumerate(queries):
            assert await (a if i % 2 else b).pipeline.submit(spec(f"job{i}", query=query, limit=10))
        expected = {f"job{i}" for i in range(len(queries))}
        await events.wait_for(lambda: {e["job_id"] for e in events.of("job.finished")} >= expected, 120)
        for i, query in enumerate(queries):
            started = events.of("job.started", f"job{i}")
            assert len(started) == 1, started
            job = await a.store.get_job(f"job{i}")
            assert job is not None
            assert job.status == "succeeded"
            assert job.attempts == 1
            answers = await replicas.answers(query, "Omaha, NE")
            rows = await stored_leads(a.store, f"job{i}")
            assert [r["place_id"] for r in rows] == [x["place_id"] for x in answers[:10]]


async def test_the_sqlite_backend_runs_a_batch_end_to_end(tmp_path: Path, replicas: Replicas) -> None:
    settings = settings_for(
        f"sqlite:///{tmp_path / 'leads.db'}",
        replicas.maps,
        replicas.pagespeed,
        LEADLAWK__RESILIENCE__BULKHEAD__QUEUE_SIZE="2",
    )
    async with running_pipeline(settings) as run:
        batch = parse_job_spec(
            {"id": "batch", "queries": ["plumbers", "dentists"], "location": "Omaha, NE", "limit": 500}, 65536
        )
        assert await run.pipeline.submit(batch)
        with pytest.raises(QueueFull, match="queue_size is 2"):
            await run.pipeline.submit(spec("one-too-many"))
        parent = await run.events.finished("batch", timeout=90)
        assert parent["status"] == "succeeded"
        for child, query in (("batch.0", "plumbers"), ("batch.1", "dentists")):
            await assert_complete(run, replicas, child, query, "Omaha, NE")
        job = await run.store.get_job("batch")
        assert job is not None
        assert job.found == 2 * FEED


async def test_a_job_handed_back_at_stop_is_resumed_by_another_daemon_without_redoing_its_leads(
    database: str, replicas: Replicas
) -> None:
    settings = settings_for(database, replicas.maps, replicas.pagespeed, LEADLAWK__DATABASE__BATCH_SIZE="5")
    async with replicas.session.post(f"{replicas.pagespeed}/_faults", json={"latency_ms": 500}) as resp:
        assert resp.status == 200
    events = Events()
    async with running_pipeline(settings, "daemon-a", events) as first:
        assert await first.pipeline.submit(spec("relay", limit=500))
        await events.wait_for(lambda: bool(events.of("lead.written", "relay")))
    # daemon-a stopped (as at SIGTERM): the job went back to the queue with what it had done.
    async with open_store(database) as store:
        job = await store.get_job("relay")
        done_before = await store.job_place_ids("relay")
    assert job is not None
    assert (job.status, job.lease_owner) == ("queued", None)
    assert 0 < len(done_before) < FEED
    announced_before = len(events.of("lead.written", "relay"))
    async with running_pipeline(settings, "daemon-b", events) as second:
        second.pipeline.notify()
        finished = await events.finished("relay", timeout=90)
        assert finished["status"] == "succeeded"
        started = events.of("job.started", "relay")
        # A hand-back at shutdown is no failed attempt: only a holder dying counts (jobs.max_attempts).
        assert [e["attempt"] for e in started] == [1, 1]
        assert started[1]["resumed_with"] >= len(done_before)
        # Leads the first run wrote were not emitted again by the second.
        rewritten = {p for e in events.of("lead.written", "relay")[announced_before:] for p in e["place_ids"]}
        assert not rewritten & done_before
        await assert_complete(second, replicas, "relay", "plumbers", "Omaha, NE")


async def test_max_runtime_fails_the_job_with_that_reason(database: str, replicas: Replicas) -> None:
    settings = settings_for(database, replicas.maps, replicas.pagespeed)
    async with replicas.session.post(f"{replicas.pagespeed}/_faults", json={"latency_ms": 5000}) as resp:
        assert resp.status == 200
    async with running_pipeline(settings) as run:
        assert await run.pipeline.submit(spec("slowpoke", limit=500, max_runtime_s=3))
        finished = await run.events.finished("slowpoke", timeout=30)
        assert finished["status"] == "failed"
        assert finished["error"] == "max_runtime_s 3 exceeded"
        job = await run.store.get_job("slowpoke")
        assert job is not None
        assert (job.status, job.error) == ("failed", "max_runtime_s 3 exceeded")
        assert job.written == len(await stored_leads(run.store, "slowpoke"))


async def test_a_daemon_that_lost_its_lease_stops_the_run_and_announces_nothing(
    database: str, replicas: Replicas
) -> None:
    settings = settings_for(database, replicas.maps, replicas.pagespeed, LEADLAWK__JOBS__HEARTBEAT="0.5")
    async with replicas.session.post(f"{replicas.maps}/_faults", json={"slow_ms": 300}) as resp:
        assert resp.status == 200
    async with running_pipeline(settings) as run:
        assert await run.pipeline.submit(spec("stolen", limit=500))
        await run.events.wait_for(lambda: bool(run.events.of("lead.written", "stolen")))
        # Another daemon holds the job now (as after a lapse this daemon did not see).
        async with open_store(database) as other:

            async def take_over() -> bool:
                # Between the release and the lease, daemon-a's own coordinator may lease the job
                # back (a fresh-clone run saw it): then it is taken from daemon-a again.
                await other.release_lease("stolen", "daemon-a")
                taken = await other.lease_next_job("daemon-b", 600)
                return taken is not None and taken.id == "stolen"

            await eventually(take_over, 30, "daemon-b held the job")
        # The pipeline's own state has no event of its own to wait on: polled, within a deadline.
        await eventually(lambda: "stolen" not in run.pipeline.runs, 30, "the run stopped")
        await eventually(lambda: run.pipeline.scraper.mailbox.in_flight == 0, 30, "the scrape stopped")
        assert run.events.of("job.finished", "stolen") == []  # its end is the other daemon's to say
        job = await run.store.get_job("stolen")
        assert job is not None
        assert (job.status, job.lease_owner) == ("running", "daemon-b")


async def test_a_driver_that_fails_stops_its_run_and_fails_the_job_after_max_attempts(
    database: str, replicas: Replicas, monkeypatch: pytest.MonkeyPatch
) -> None:
    from leadlawk_daemon.jobs.driver import JobDriver

    settings = settings_for(
        database, replicas.maps, replicas.pagespeed,
        LEADLAWK__JOBS__LEASE_TTL="2s", LEADLAWK__JOBS__HEARTBEAT="0.5s", LEADLAWK__DATABASE__COMMAND_TIMEOUT="1s",
        LEADLAWK__JOBS__MAX_ATTEMPTS="2",
    )
    async with replicas.session.post(f"{replicas.maps}/_faults", json={"slow_ms": 300}) as resp:
        assert resp.status == 200
    broken = asyncio.Event()

    async def failing_progress(self: JobDriver) -> None:
        broken.set()
        raise RuntimeError("a bug in the driver")

    monkeypatch.setattr(JobDriver, "progress", failing_progress)
    async with running_pipeline(settings) as run:
        assert await run.pipeline.submit(spec("buggy", limit=500))
        await broken.wait()
        # The run stops with its driver: no scraping goes on for a job nobody drives.
        await eventually(lambda: "buggy" not in run.pipeline.runs, 30, "the run stopped")
        await eventually(lambda: run.pipeline.scraper.mailbox.in_flight == 0, 30, "the scrape stopped")
        # Handed back after a backoff, it breaks the driver again: the second time, it fails for good.
        finished = await run.events.finished("buggy", timeout=60)
        assert finished["status"] == "failed"
        assert "2 times" in finished["error"]
        assert len(run.events.of("job.started", "buggy")) == 2


async def test_a_daemon_whose_finish_is_refused_announces_nothing(
    database: str, replicas: Replicas, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lease is taken by another daemon between the last renewal and the end: the end is theirs."""
    settings = settings_for(database, replicas.maps, replicas.pagespeed)
    async with running_pipeline(settings) as run:
        real_finish = run.store.finish_job
        refused: list[bool] = []

        async def finish_after_a_takeover(job_id: str, owner: str, status: Any, error: str | None = None) -> bool:
            async with open_store(database) as other:
                assert await other.release_lease(job_id, owner)
                taken = await other.lease_next_job("daemon-b", 600)
                assert taken is not None
            result = await real_finish(job_id, owner, status, error)
            refused.append(not result)
            return result

        monkeypatch.setattr(run.store, "finish_job", finish_after_a_takeover)
        assert await run.pipeline.submit(spec("taken", limit=5, pagespeed={"enabled": False}))
        await eventually(lambda: bool(refused), 60, "the daemon tried to finish the job")
        await eventually(lambda: "taken" not in run.pipeline.runs, 30, "the run ended")
        assert refused == [True]
        assert run.events.of("job.finished", "taken") == []  # not announced by a daemon that lost it
        job = await run.store.get_job("taken")
        assert job is not None
        assert (job.status, job.lease_owner) == ("running", "daemon-b")
