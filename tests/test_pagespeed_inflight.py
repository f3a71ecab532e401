"""The in-flight limit on the FakeClock: it follows latency up and down, timeouts and the ceiling
bound it, and only the quota pacer decides when a call starts (a property over random latencies)."""

from __future__ import annotations

import asyncio
import bisect
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from actors.clock import FakeClock
from leadlawk_daemon.listing import Listing
from leadlawk_daemon.metrics import Metrics
from leadlawk_daemon.pagespeed.client import PageSpeedClient
from leadlawk_daemon.pagespeed.enrichment import Enricher
from leadlawk_daemon.pagespeed.quota import WindowPacer
from leadlawk_daemon.pagespeed.result import PageSpeedResult
from leadlawk_daemon.replicas.faults import FaultSettingError
from leadlawk_daemon.replicas.pagespeed import PageSpeedReplica, create_pagespeed_app, parse_latency_profile
from leadlawk_daemon.resilience.inflight import MARGIN, DecayingLatency, InFlightLimit
from leadlawk_daemon.resilience.retry import RetryPolicy
from leadlawk_daemon.settings import CircuitBreakerSettings
from tests.linearity import examples

# Google's defaults: 400 calls per 100 s, calls cut at 60 s.
QUOTA = 400
WINDOW = 100.0
TIMEOUT = 60.0

Latency = Callable[[float], float]
"""A call's latency, from the (fake) time it starts."""


def most_in_any_window(starts: Sequence[float], window: float) -> int:
    """The most starts in any half-open window ``(t - window, t]``, as the service counts them."""
    ordered = sorted(starts)
    return max((i + 1 - bisect.bisect_right(ordered, t - window) for i, t in enumerate(ordered)), default=0)


@dataclass
class Trace:
    at: list[float] = field(default_factory=list)
    limit: list[int] = field(default_factory=list)
    held: list[int] = field(default_factory=list)
    running: list[int] = field(default_factory=list)

    def limit_at(self, t: float) -> int:
        return self.limit[bisect.bisect_left(self.at, t)]

    def between(self, start: float, end: float) -> list[int]:
        return [v for at, v in zip(self.at, self.limit, strict=True) if start <= at <= end]


class Backlog:
    """The enricher's slot-then-pace order (``Enricher._attempt``) over an endless backlog, on the
    FakeClock: the limit and the pacer for real, the HTTP call a sleep of the profile's latency."""

    def __init__(self, latency: Latency, *, ceiling: int = 0, expected_latency: float = 25.0) -> None:
        self.clock = FakeClock(start=0.0)
        self.latency = latency
        self.pacer = WindowPacer(QUOTA, WINDOW, clock=self.clock)
        self.limits = InFlightLimit(
            clock=self.clock,
            rate=self.pacer.rate,
            expected_latency=expected_latency,
            request_timeout=TIMEOUT,
            ceiling=ceiling or InFlightLimit.default_ceiling(self.pacer.rate, TIMEOUT),
        )
        self.starts: list[float] = []
        self.trace = Trace()

    async def _worker(self) -> None:
        while True:
            async with self.limits.slot():
                await self.pacer.acquire()
                started = self.limits.started("mobile")
                self.starts.append(started)
                # A call longer than the request timeout is cut at the timeout.
                await self.clock.sleep(min(self.latency(started), TIMEOUT))
                self.limits.finished("mobile", started)

    async def run(self, seconds: float, step: float = 0.5) -> None:
        workers = [asyncio.create_task(self._worker()) for _ in range(min(self.limits.ceiling, 1_000))]
        try:
            for n in range(1, round(seconds / step) + 1):
                await self.clock.advance(step)
                self.trace.at.append(n * step)
                self.trace.limit.append(self.limits.limit)
                self.trace.held.append(self.limits.held)
                self.trace.running.append(self.limits.running)
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    def need(self, latency: float) -> float:
        """What Little's law asks for: the pacer's rate times the latency, with the margin."""
        return MARGIN * self.pacer.rate * latency

    def started_between(self, start: float, end: float) -> int:
        return sum(1 for t in self.starts if start <= t < end)


def steps(*phases: tuple[float, float], spread: float = 0.1, seed: int = 7) -> Latency:
    """Latency by phase: ``(from_s, latency_s)``, each call within +/- ``spread`` of its phase's."""
    rng = random.Random(seed)

    def latency(t: float) -> float:
        base = [value for start, value in phases if start <= t][-1]
        return base * rng.uniform(1 - spread, 1 + spread)

    return latency


def near(values: Sequence[int], target: float, within: float = 0.15) -> bool:
    return all(abs(v - target) <= within * target for v in values)


async def test_the_limit_follows_a_latency_rise_within_a_minute_without_stalling_the_pace() -> None:
    rig = Backlog(steps((0, 10.0), (120, 40.0)))
    await rig.run(240)
    before = rig.trace.between(90, 120)
    assert near(before, rig.need(10)), before
    # Within a minute of the change the limit is what 40 s calls need, and stays there.
    after = rig.trace.between(180, 240)
    assert near(after, rig.need(40)), after
    # The calls still running show the rise before any slow call ends: the pace never stalls.
    for start in range(120, 180, 10):
        assert rig.started_between(start, start + 10) >= 0.95 * rig.pacer.rate * 10, start
    assert max(rig.trace.held) <= math.ceil(1.15 * rig.need(40))


async def test_the_limit_follows_a_latency_fall_within_a_minute() -> None:
    rig = Backlog(steps((0, 40.0), (180, 10.0)))
    await rig.run(300)
    assert near(rig.trace.between(120, 180), rig.need(40))
    # Calls started before the change end for 40 s more; within the minute the limit is down.
    after = rig.trace.between(240, 300)
    assert near(after, rig.need(10)), after
    assert rig.started_between(180, 300) >= 0.95 * rig.pacer.rate * 120


async def test_the_first_guess_is_only_a_guess() -> None:
    rig = Backlog(steps((0, 30.0)), expected_latency=0.5)
    assert rig.limits.limit == math.ceil(rig.need(0.5)) == 3
    await rig.run(120)
    assert rig.started_between(0, 120) >= 0.95 * rig.pacer.rate * 120
    assert near(rig.trace.between(60, 120), rig.need(30))


async def test_a_burst_of_timeouts_does_not_raise_the_limit_without_bound() -> None:
    # Every call hangs for an hour from t=60 to t=180, and is cut at the 60 s request timeout.
    rig = Backlog(steps((0, 20.0), (60, 3600.0), (180, 20.0), spread=0.0), ceiling=1_000)
    await rig.run(360)
    bound = math.ceil(rig.need(TIMEOUT))
    assert max(rig.trace.limit) <= bound
    assert max(rig.trace.limit) >= 0.9 * bound  # it did follow the timeouts up: they held their slots
    # Once calls answer again, the limit comes back down within a minute of the last timeout.
    assert near(rig.trace.between(300, 360), rig.need(20))
    assert most_in_any_window(rig.starts, WINDOW) <= QUOTA


async def test_a_timeout_counts_at_the_timeout_however_long_the_call_hung() -> None:
    clock = FakeClock(start=0.0)
    limits = InFlightLimit(
        clock=clock, rate=4.0, expected_latency=25.0, request_timeout=TIMEOUT, ceiling=10_000
    )
    for _ in range(1_000):
        started = limits.started("mobile")
        await clock.advance(86_400.0)
        limits.finished("mobile", started)
    assert limits.estimate("mobile").mean == pytest.approx(TIMEOUT)
    assert limits.estimate("mobile").quantile(0.99) <= TIMEOUT
    assert limits.limit == math.ceil(MARGIN * 4.0 * TIMEOUT)


async def test_the_ceiling_is_honoured() -> None:
    # 40 s calls need 190 slots; the operator allows 50: never more are held or running.
    rig = Backlog(steps((0, 40.0)), ceiling=50)
    await rig.run(200)
    assert max(rig.trace.limit) == 50
    assert max(rig.trace.held) == 50
    assert max(rig.trace.running) <= 50
    # The ceiling, not the pacer, is what bounds the pace now: 50 calls per 40 s.
    assert rig.started_between(100, 200) <= 50 / 36 * 100


async def test_a_waiter_cancelled_at_the_door_leaks_no_slot() -> None:
    clock = FakeClock(start=0.0)
    limits = InFlightLimit(clock=clock, rate=0.01, expected_latency=100.0, request_timeout=600, ceiling=1)
    entered = asyncio.Event()
    release = asyncio.Event()

    async def hold() -> None:
        async with limits.slot():
            entered.set()
            await release.wait()

    async def wait_for_slot() -> None:
        async with limits.slot():
            pass

    holder = asyncio.create_task(hold())
    await entered.wait()
    waiters = [asyncio.create_task(wait_for_slot()) for _ in range(3)]
    await asyncio.sleep(0)
    waiters[0].cancel()
    release.set()
    await holder
    await asyncio.gather(*waiters, return_exceptions=True)
    assert [w.cancelled() for w in waiters] == [True, False, False]
    assert limits.held == 0


def test_the_decaying_percentile_reads_its_samples() -> None:
    estimate = DecayingLatency(decay=5.0, cap=60.0, first_guess=25.0, now=0.0)
    rng = random.Random(3)
    values = sorted(rng.uniform(10, 40) for _ in range(2_000))
    for value in values:  # all at once: no decay between them
        estimate.observe(value, 0.0)
    for q in (0.5, 0.9, 0.99):
        assert estimate.quantile(q) == pytest.approx(values[int(q * len(values))], rel=0.05)
    assert estimate.mean == pytest.approx(sum(values) / len(values), rel=0.01)
    # A minute later, a minute of 5 s calls: the old samples weigh e^-10 of the new ones.
    for n in range(240):
        estimate.observe(5.0, 60.0 + n / 4)
    assert estimate.mean == pytest.approx(5.0, rel=0.01)
    assert estimate.quantile(0.99) == pytest.approx(5.0, rel=0.08)


# --- the Enricher itself: its _attempt order, its metrics, its cut of a hung call -------------------


class ClockedClient(PageSpeedClient):
    """A PageSpeed that answers after the given latencies on the FakeClock (and never over HTTP)."""

    def __init__(self, clock: FakeClock, latencies: Sequence[float]) -> None:
        super().__init__("http://pagespeed.invalid", None)
        self.clock = clock
        self.latencies = list(latencies)
        self.starts: list[float] = []

    async def run(self, url: str, strategy: str, *, place_id: str | None, tested_at: datetime) -> PageSpeedResult:
        self.starts.append(self.clock.monotonic())
        await self.clock.sleep(self.latencies[(len(self.starts) - 1) % len(self.latencies)])
        return PageSpeedResult(place_id=place_id, strategy=strategy, url=url, tested_at=tested_at, performance=50)


def enricher(client: ClockedClient, quota: int, *, metrics: Metrics | None = None, max_in_flight: int = 0) -> Enricher:
    return Enricher(
        client,
        clock=client.clock,
        queries_per_window=quota,
        window=WINDOW,
        queries_per_day=1_000_000,
        expected_latency=25.0,
        max_in_flight=max_in_flight,
        request_timeout=TIMEOUT,
        retry=RetryPolicy(max_attempts=2, base_delay=1.0, max_delay=10.0),
        breaker=CircuitBreakerSettings(failure_threshold=1_000, timeout=TIMEOUT, reset_timeout=30.0),
        metrics=metrics,
        rng=random.Random(1),
    )


async def enrich_all(
    subject: Enricher,
    clock: FakeClock,
    leads: int,
    strategies: Sequence[str] = ("mobile",),
    each_step: Callable[[], None] = lambda: None,
    callers: int = 0,
) -> int:
    """Run a backlog to its end, moving the FakeClock from deadline to deadline; returns results
    enriched. ``callers``: that many concurrent callers of ``enrich`` (the actor's workers, and
    more), instead of ``enrich_many``."""
    listings = [Listing(name=f"L{n}", place_id=f"ChIJin{n}", website=f"https://l{n}.example/") for n in range(leads)]

    async def consume() -> int:
        if not callers:
            return sum([o.status == "enriched" async for o in subject.enrich_many(listings, strategies)])
        backlog = iter(listings)
        enriched = 0

        async def caller() -> None:
            nonlocal enriched
            for listing in backlog:
                enriched += (await subject.enrich(listing, strategies)).status == "enriched"

        async with asyncio.TaskGroup() as group:
            for _ in range(callers):
                group.create_task(caller())
        return enriched

    task = asyncio.create_task(consume())
    for _ in range(100_000):
        if task.done():
            break
        deadline = clock.next_deadline()
        await clock.advance(1.0 if deadline is None else max(0.0, deadline - clock.monotonic()))
        each_step()
    return await task


@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    # Backlogs longer than the quota, so that windows fill and a start out of turn would show.
    quota=st.sampled_from([3, 20, 60, 100]),
    latencies=st.lists(st.floats(min_value=0.01, max_value=120.0), min_size=1, max_size=60),
    leads=st.integers(min_value=1, max_value=250),
    max_in_flight=st.sampled_from([0, 1, 7, 500]),
    callers=st.sampled_from([0, 50]),
)
# Slow calls fill the slots while turns come due, then fast ones free them at once: had a caller
# taken its turn before its slot, the overdue turns would all start together.
@example(quota=20, latencies=[100.0] * 7 + [0.01] * 20, leads=250, max_in_flight=7, callers=50)
def test_the_pacer_not_the_limit_bounds_every_window(
    quota: int, latencies: list[float], leads: int, max_in_flight: int, callers: int
) -> None:
    async def scenario() -> None:
        clock = FakeClock(start=0.0)
        client = ClockedClient(clock, latencies)
        subject = enricher(client, quota, max_in_flight=max_in_flight)
        limits = subject.limits

        def check() -> None:
            assert limits.floor <= limits.limit <= limits.ceiling
            assert limits.running <= limits.held <= limits.ceiling

        await enrich_all(subject, clock, leads, each_step=check, callers=callers)
        # The pace's own bound, below the quota by its headroom: the service's slack for late requests.
        assert most_in_any_window(client.starts, WINDOW) <= WindowPacer(quota, WINDOW, clock=clock).per_window < quota
        assert subject.limits.held == 0
        assert subject.limits.running == 0

    asyncio.run(scenario())


async def test_the_enricher_cuts_a_hung_call_at_the_timeout_and_counts_it_so() -> None:
    clock = FakeClock(start=0.0)
    client = ClockedClient(clock, [86_400.0])
    metrics = Metrics(process=False)
    subject = enricher(client, 20, metrics=metrics)
    assert await enrich_all(subject, clock, 10) == 0
    assert subject.limits.estimate("mobile").mean == pytest.approx(TIMEOUT)
    assert subject.limits.limit <= math.ceil(MARGIN * subject.limits.rate * TIMEOUT)


async def test_the_enricher_exports_its_limit_and_measured_latency() -> None:
    clock = FakeClock(start=0.0)
    client = ClockedClient(clock, [10.0, 20.0, 30.0])
    metrics = Metrics(process=False)
    subject = enricher(client, QUOTA, metrics=metrics)

    def sample(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    assert sample("leadlawk_pagespeed_in_flight_limit") == subject.limits.limit
    assert subject.max_workers == subject.limits.ceiling == math.ceil(MARGIN * subject.limits.rate * TIMEOUT)
    assert await enrich_all(subject, clock, 300, ("mobile", "desktop")) == 300
    for strategy in ("mobile", "desktop"):
        median = sample("leadlawk_pagespeed_latency_seconds", strategy=strategy, quantile="0.5")
        assert median is not None
        assert 10.0 <= median <= 30.0 * 1.08  # read to within a histogram bucket
        mean = sample("leadlawk_pagespeed_latency_mean_seconds", strategy=strategy)
        assert mean is not None
        assert 10.0 <= mean <= 30.0
    assert sample("leadlawk_pagespeed_in_flight_limit") == subject.limits.limit


# --- the stand-in's latency profiles, which bench/enrich.py runs the enricher against ---------------


def test_the_stand_in_draws_latency_from_its_profiles() -> None:
    rng = random.Random(5)
    tail = parse_latency_profile({"lognormal": {"median": 20_000, "p95": 60_000}})
    draws = sorted(tail.draw(rng, 0.0) for _ in range(20_000))
    assert draws[len(draws) // 2] == pytest.approx(20.0, rel=0.05)
    assert sum(d > 60.0 for d in draws) / len(draws) == pytest.approx(0.05, abs=0.01)
    flat = parse_latency_profile({"uniform": {"min": 10_000, "max": 40_000}})
    assert all(10.0 <= flat.draw(rng, 0.0) <= 40.0 for _ in range(1_000))
    steps = parse_latency_profile(
        {"steps": [{"at_s": 0, "latency_ms": 10_000}, {"at_s": 120, "latency_ms": 40_000}]}
    )
    assert (steps.draw(rng, 119.9), steps.draw(rng, 120.0)) == (10.0, 40.0)


@pytest.mark.parametrize(
    "bad",
    [
        {"normal": {"median": 1}},
        {"lognormal": {"median": 5_000, "p95": 1_000}},
        {"uniform": {"min": 5, "max": 1}},
        {"steps": [{"at_s": 10, "latency_ms": 5}]},
        {"steps": [{"at_s": 0, "latency_ms": 5}, {"at_s": 0, "latency_ms": 9}]},
        {"uniform": {"min": 1, "max": 2}, "steps": []},
    ],
)
def test_a_bad_latency_profile_is_refused_with_its_reason(bad: dict[str, object]) -> None:
    with pytest.raises(FaultSettingError, match="latency_profile"):
        PageSpeedReplica().faults.replace({"latency_profile": bad})


async def test_a_steps_profile_counts_from_its_first_request_on_the_stand_ins_clock() -> None:
    clock = FakeClock(start=0.0)
    replica = PageSpeedReplica(clock=clock, time_scale=0.01)
    shift = {"steps": [{"at_s": 0, "latency_ms": 10_000}, {"at_s": 100, "latency_ms": 40_000}]}
    app = create_pagespeed_app(replica)
    async with TestClient(TestServer(app, host="127.0.0.1")) as http:
        async with http.post("/_faults", json={"latency_profile": shift}) as response:
            assert response.status == 200
            assert (await response.json())["active"]["latency_profile"] == shift
        assert replica._delay() == pytest.approx(0.1)  # 10 s, scaled
        await clock.advance(0.99)
        assert replica._delay() == pytest.approx(0.1)
        await clock.advance(0.02)
        assert replica._delay() == pytest.approx(0.4)
