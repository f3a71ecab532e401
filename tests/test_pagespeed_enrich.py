"""The enricher against the PageSpeed stand-in over real HTTP; time on a FakeClock shared by both."""

from __future__ import annotations

import asyncio
import io
import logging
import random
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from actors.clock import FakeClock
from leadlawk_daemon.listing import Listing
from leadlawk_daemon.logs import JsonFormatter
from leadlawk_daemon.metrics import Metrics
from leadlawk_daemon.pagespeed.client import PageSpeedClient
from leadlawk_daemon.pagespeed.enrichment import Enricher, EnrichmentOutcome
from leadlawk_daemon.replicas.pagespeed import PageSpeedReplica, serve_pagespeed_replica
from leadlawk_daemon.resilience.breaker import BreakerState
from leadlawk_daemon.resilience.retry import RetryPolicy
from leadlawk_daemon.settings import CircuitBreakerSettings
from tests.waiting import eventually

SECRET = "AIzaSyD-TESTKEY-0123456789abcdefghij"


class Rig:
    def __init__(
        self, clock: FakeClock, replica: PageSpeedReplica, enricher: Enricher, metrics: Metrics
    ) -> None:
        self.clock = clock
        self.replica = replica
        self.enricher = enricher
        self.metrics = metrics

    def metric(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value

    def retries(self) -> float:
        return self.metric("leadlawk_retries_total", dependency="pagespeed")


@pytest.fixture
async def rig_factory() -> AsyncIterator[Callable[..., object]]:
    stack: list[object] = []
    async with AsyncExitStack() as exits:

        async def build(**overrides: object) -> Rig:
            clock = FakeClock()
            replica = PageSpeedReplica(clock=clock, seed=1)
            base = await exits.enter_async_context(serve_pagespeed_replica(replica=replica))
            client = await exits.enter_async_context(
                PageSpeedClient(str(overrides.pop("base", base)), SECRET)
            )
            metrics = Metrics(process=False)
            params: dict[str, object] = {
                "clock": clock,
                "queries_per_window": 1000.0,
                "window": 100.0,
                "queries_per_day": 25_000,
                "expected_latency": 1.0,
                "request_timeout": 60.0,
                "retry": RetryPolicy(max_attempts=5, base_delay=1.0, max_delay=60.0),
                "breaker": CircuitBreakerSettings(failure_threshold=5, timeout=30.0, reset_timeout=60.0),
                "metrics": metrics,
                "rng": random.Random(3),
            }
            params.update(overrides)
            enricher = Enricher(client, **params)  # type: ignore[arg-type]
            rig = Rig(clock, replica, enricher, metrics)
            stack.append(rig)
            return rig

        yield build


def lead(n: int, site: str | None = None) -> Listing:
    return Listing(name=f"Biz {n}", place_id=f"ChIJtest{n}", website=site or f"https://biz{n}.example.com/")


async def drive(rig: Rig, task: asyncio.Task[EnrichmentOutcome]) -> EnrichmentOutcome:
    """Move the FakeClock to each pending deadline while no HTTP call is in flight."""
    while not task.done():
        await eventually(lambda: task.done() or (rig.enricher.in_flight == 0 and rig.clock.sleepers > 0), 10)
        if task.done():
            break
        deadline = rig.clock.next_deadline()
        assert deadline is not None
        await rig.clock.advance(deadline - rig.clock.monotonic())
    return task.result()


async def test_a_healthy_call_reads_every_field(rig_factory: Callable[..., object]) -> None:
    rig: Rig = await rig_factory()  # type: ignore[misc]
    outcome = await drive(rig, asyncio.create_task(rig.enricher.enrich(lead(1), ["mobile", "desktop"])))
    assert outcome.status == "enriched"
    assert [r.strategy for r in outcome.results] == ["mobile", "desktop"]
    mobile = outcome.result("mobile")
    assert mobile is not None
    assert mobile.place_id == "ChIJtest1"
    assert mobile.performance is not None
    assert 0 <= mobile.performance <= 100
    assert mobile.lcp_ms is not None
    assert mobile.lcp_ms > 0
    assert mobile.final_url is not None
    assert rig.replica.stats["requests"] == 2
    assert rig.retries() == 0


async def test_server_errors_are_retried_until_success(rig_factory: Callable[..., object]) -> None:
    rig: Rig = await rig_factory()  # type: ignore[misc]
    rig.replica.faults.replace({"server_error": 2})
    outcome = await drive(rig, asyncio.create_task(rig.enricher.enrich(lead(2))))
    assert outcome.status == "enriched"
    assert rig.replica.stats["status_5xx"] == 2
    assert rig.replica.stats["ok"] == 1
    assert rig.retries() == 2


async def test_per_100s_429_is_retried_after_the_window(rig_factory: Callable[..., object]) -> None:
    rig: Rig = await rig_factory()  # type: ignore[misc]
    # Someone else shares the key: the service allows 1 per 2 s though we think we have 1000 per 100 s.
    rig.replica.faults.replace({"quota_per_window": 1, "window_s": 2})
    first = await rig.enricher.enrich(lead(3))
    second = await drive(rig, asyncio.create_task(rig.enricher.enrich(lead(4))))
    assert (first.status, second.status) == ("enriched", "enriched")
    assert rig.replica.stats["status_429_window"] >= 1
    assert rig.retries() == rig.replica.stats["status_429_window"]
    assert rig.enricher.breaker.state.value == "closed"


async def test_rejected_request_is_not_retried(rig_factory: Callable[..., object]) -> None:
    rig: Rig = await rig_factory()  # type: ignore[misc]
    rig.replica.faults.replace({"require_key": "another-key-entirely"})
    outcome = await rig.enricher.enrich(lead(5))
    assert outcome.status == "failed"
    assert outcome.reason is not None
    assert "rejected 400" in outcome.reason
    assert rig.replica.stats["requests"] == 1
    assert rig.retries() == 0


@pytest.mark.parametrize(
    ("code", "mode"),
    [("FAILED_DOCUMENT_REQUEST", "http"), ("DNS_FAILURE", "http"), ("NO_FCP", "runtime")],
)
async def test_a_site_lighthouse_cannot_load_is_a_fact_not_a_failure(
    rig_factory: Callable[..., object], code: str, mode: str
) -> None:
    rig: Rig = await rig_factory(
        breaker=CircuitBreakerSettings(failure_threshold=1, timeout=30, reset_timeout=60)
    )  # type: ignore[misc]
    rig.replica.faults.replace({"lighthouse_errors": {"broken-site": code}, "lighthouse_error_as": mode})
    outcome = await rig.enricher.enrich(lead(6, "http://broken-site.example/"))
    assert outcome.status == "enriched"
    mobile = outcome.result("mobile")
    assert mobile is not None
    assert mobile.error == code
    assert mobile.site_broken
    assert mobile.performance is None
    assert rig.replica.stats["requests"] == 1
    assert rig.retries() == 0
    # Not the service's fault: a breaker that opens at one failure is still closed.
    assert rig.enricher.breaker.state.value == "closed"


async def test_a_hang_is_cut_by_the_timeout_and_retried(rig_factory: Callable[..., object]) -> None:
    rig: Rig = await rig_factory()  # type: ignore[misc]
    rig.replica.faults.replace({"hang": 1})
    task = asyncio.create_task(rig.enricher.enrich(lead(7)))
    await eventually(lambda: rig.replica.stats["hangs"] == 1, 10)
    assert not task.done()
    await rig.clock.advance(59.9)
    await asyncio.sleep(0)
    assert not task.done()
    await rig.clock.advance(0.1)
    outcome = await drive(rig, task)
    assert outcome.status == "enriched"
    assert rig.retries() == 1
    assert rig.replica.stats["ok"] == 1


async def test_a_down_service_opens_the_breaker_and_its_leads_wait_without_failing(
    rig_factory: Callable[..., object],
) -> None:
    rig: Rig = await rig_factory()  # type: ignore[misc]
    rig.replica.faults.replace({"server_error": True})
    waiting = [asyncio.create_task(rig.enricher.enrich(lead(n))) for n in (8, 9)]
    # Both sites fail: PageSpeed is down. Move time through several reset timeouts: the leads wait
    # (an outage is nobody's failure), and only the breaker's single trials reach the service.
    for _ in range(40):
        await eventually(lambda: rig.enricher.in_flight == 0 and rig.clock.sleepers > 0, 10)
        deadline = rig.clock.next_deadline()
        assert deadline is not None
        await rig.clock.advance(deadline - rig.clock.monotonic())
        if rig.enricher.breaker.state.value == "open" and rig.clock.monotonic() > 1_400:
            break
    assert rig.enricher.breaker.state.value == "open"
    assert rig.metric("leadlawk_circuit_breaker_state", breaker="pagespeed") == 2
    assert not any(t.done() for t in waiting)
    before = rig.replica.stats["requests"]
    await rig.clock.advance(61.0)  # one reset timeout: one trial, which fails
    await eventually(lambda: rig.replica.stats["requests"] == before + 1 and rig.enricher.in_flight == 0, 10)
    assert rig.enricher.breaker.state is BreakerState.OPEN
    assert not any(t.done() for t in waiting)
    rig.replica.faults.clear()
    outcomes = [await drive(rig, task) for task in waiting]
    assert [o.status for o in outcomes] == ["enriched", "enriched"]
    assert rig.enricher.breaker.state.value == "closed"
    assert rig.metric("leadlawk_circuit_breaker_state", breaker="pagespeed") == 0


async def test_a_site_that_always_fails_is_that_leads_failure_while_pagespeed_serves_others(
    rig_factory: Callable[..., object],
) -> None:
    rig: Rig = await rig_factory()  # type: ignore[misc]
    rig.replica.faults.replace({"server_error_for": ["broken-site"]})
    failed = await drive(rig, asyncio.create_task(rig.enricher.enrich(lead(8, "https://broken-site.example/"))))
    assert failed.status == "failed"
    assert failed.reason is not None
    assert "gave up after 5 attempts" in failed.reason
    # Its five failures opened the breaker, yet they were this site's alone: the lead failed, and
    # the next lead is enriched after the breaker's trial.
    outcome = await drive(rig, asyncio.create_task(rig.enricher.enrich(lead(9))))
    assert outcome.status == "enriched"
    assert rig.enricher.breaker.state.value == "closed"


def seconds_to_la_midnight(clock: FakeClock) -> float:
    tz = ZoneInfo("America/Los_Angeles")
    now = datetime.fromtimestamp(clock.wall(), tz)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tz)
    return midnight.timestamp() - clock.wall()


async def test_daily_quota_exhaustion_pauses_until_the_reset_without_burning_retries(
    rig_factory: Callable[..., object],
) -> None:
    rig: Rig = await rig_factory()  # type: ignore[misc]
    rig.replica.faults.replace({"quota_per_day": 2})
    for n in range(2):
        assert (await drive(rig, asyncio.create_task(rig.enricher.enrich(lead(10 + n))))).status == "enriched"
    await rig.clock.advance(1.0)  # the pace's next turn is free: the next call goes at once
    paused = asyncio.create_task(rig.enricher.enrich(lead(12)))
    await eventually(lambda: rig.replica.stats["status_429_day"] == 1 and rig.clock.sleepers == 1, 10)
    to_reset = seconds_to_la_midnight(rig.clock)
    assert rig.clock.next_deadline() == pytest.approx(rig.clock.monotonic() + to_reset + 1.0)
    await rig.clock.advance(to_reset - 5.0)
    await asyncio.sleep(0)
    assert not paused.done()
    assert rig.replica.stats["requests"] == 3
    await rig.clock.advance(10.0)
    outcome = await paused
    assert outcome.status == "enriched"
    assert rig.retries() == 0
    assert rig.replica.stats["status_429_day"] == 1
    assert rig.metric("leadlawk_rate_limit_wait_seconds_count", limiter="pagespeed_day") == 1


async def test_our_own_daily_count_pauses_before_the_service_says_so(
    rig_factory: Callable[..., object],
) -> None:
    rig: Rig = await rig_factory(queries_per_day=2)  # type: ignore[misc]
    for n in range(2):
        assert (await drive(rig, asyncio.create_task(rig.enricher.enrich(lead(20 + n))))).status == "enriched"
    await rig.clock.advance(1.0)  # the pace's next turn is free: the next call goes at once
    paused = asyncio.create_task(rig.enricher.enrich(lead(22)))
    await rig.clock.wait_for_sleepers(1)
    assert rig.replica.stats["requests"] == 2
    await rig.clock.advance(seconds_to_la_midnight(rig.clock) + 1.0)
    assert (await paused).status == "enriched"
    assert rig.replica.stats["requests"] == 3
    assert rig.replica.stats["status_429"] == 0


async def test_the_api_key_never_leaks(rig_factory: Callable[..., object]) -> None:
    """Everything a failing run produced: log lines, outcomes, exceptions, metrics."""
    captured = io.StringIO()
    handler = logging.StreamHandler(captured)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        rig: Rig = await rig_factory()  # type: ignore[misc]
        dead: Rig = await rig_factory(base="http://127.0.0.1:9")  # type: ignore[misc]
        produced: list[str] = []
        rig.replica.faults.replace({"server_error": True})
        produced.append(repr(await drive(rig, asyncio.create_task(rig.enricher.enrich(lead(30))))))
        rig.replica.faults.replace({"require_key": "not-ours", "malformed": 1})
        produced.append(repr(await drive(rig, asyncio.create_task(rig.enricher.enrich(lead(31))))))
        produced.append(repr(await drive(dead, asyncio.create_task(dead.enricher.enrich(lead(32))))))
        for r in (rig, dead):
            produced.append(r.metrics.render().decode())
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
    everything = "\n".join([captured.getvalue(), *produced])
    assert "failed" in everything
    assert "connection failed" in everything
    assert "pagespeed retry" in captured.getvalue()
    assert SECRET not in everything
    assert "TESTKEY" not in everything
