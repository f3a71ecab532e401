"""Enrichment: PageSpeed results for a lead's website, under quota, bulkhead, breaker and retry.

The order of the guards, per attempt, is deliberate:

1. the daily quota (a spent day pauses here, before anything else, and costs no retry);
2. a slot in flight (:class:`InFlightLimit`: as many as the measured latency needs at the
   pacer's rate), taken *before* the pace so that a granted turn of the per-100-s quota is used
   at once: a turn taken and then held while waiting for a slot would be spent later, in a
   burst with others, and bunch up requests in the service's window;
3. the per-100-s pace, the only thing that decides when a call starts;
4. the circuit breaker and its per-call timeout, around the HTTP call only.

Retries wrap all four, so a retried call waits for its turn again like any other.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from actors.clock import Clock
from leadlawk_daemon.listing import Listing
from leadlawk_daemon.logs import redact
from leadlawk_daemon.metrics import Metrics
from leadlawk_daemon.pagespeed.client import (
    DailyQuotaExhaustedError,
    PageSpeedClient,
    PageSpeedError,
    RequestRejectedError,
    TransientError,
)
from leadlawk_daemon.pagespeed.quota import DailyQuota, WindowPacer
from leadlawk_daemon.pagespeed.result import PageSpeedResult
from leadlawk_daemon.quota import SharedPacer, SharedQuotas
from leadlawk_daemon.resilience.breaker import BreakerOpenError, BreakerState, CircuitBreaker
from leadlawk_daemon.resilience.inflight import DECAY, QUANTILES, DecayingLatency, InFlightLimit
from leadlawk_daemon.resilience.retry import Retrier, RetryExhaustedError, RetryPolicy
from leadlawk_daemon.settings import CircuitBreakerSettings, PageSpeedSettings, Settings

__all__ = ["DEPENDENCY", "Enricher", "EnrichmentOutcome", "is_retryable"]

DEPENDENCY = "pagespeed"
# While a half-open trial runs (retry_after 0), look again this often on the clock.
_TRIAL_POLL = 1.0
log = logging.getLogger("leadlawk.pagespeed")

Status = Literal["enriched", "skipped", "failed"]


@dataclass(frozen=True, slots=True)
class EnrichmentOutcome:
    """``enriched``: a result per strategy (a broken site's result included); ``skipped``: no
    website to test; ``failed``: the service could not give an answer (``reason`` says why)."""

    listing: Listing
    status: Status
    results: tuple[PageSpeedResult, ...] = ()
    reason: str | None = None

    def result(self, strategy: str) -> PageSpeedResult | None:
        return next((r for r in self.results if r.strategy == strategy), None)


def is_retryable(exc: BaseException) -> bool:
    """429 per 100 s, 5xx, timeouts, connection errors. (An open breaker is not retried: it is waited
    for, spending no attempt; see :meth:`Enricher._fetch`.)"""
    return isinstance(exc, TransientError | TimeoutError)


def _breaker_counts(exc: BaseException) -> bool:
    """Whether an error is the dependency's fault (the breaker excludes the others)."""
    if isinstance(exc, TransientError):
        return exc.counts_against_breaker
    return not isinstance(exc, DailyQuotaExhaustedError | RequestRejectedError)


@dataclass
class _Gauges:
    metrics: Metrics | None
    in_flight: int = field(default=0)

    def inc(self) -> None:
        self.in_flight += 1
        if self.metrics is not None:
            self.metrics.in_flight.labels(DEPENDENCY).set(self.in_flight)

    def dec(self) -> None:
        self.in_flight -= 1
        if self.metrics is not None:
            self.metrics.in_flight.labels(DEPENDENCY).set(self.in_flight)

    def waited(self, limiter: str, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.rate_limit_wait.labels(limiter).observe(seconds)


class Enricher:
    """Runs PageSpeed for leads. Use :meth:`enrich` per lead, or :meth:`enrich_many` for a backlog.

    Concurrent :meth:`enrich` calls share one in-flight limit, one pace, one daily count and one
    breaker, so an actor may call it from as many handlers as it likes (``max_workers`` is the
    most that can ever be busy); at most ``limits.limit`` calls hold a slot, whatever the number
    of callers. ``expected_latency`` is only the limit's first guess; ``max_in_flight`` is its
    ceiling (0: what the pace could use if every call ran until ``request_timeout``).
    """

    def __init__(
        self,
        client: PageSpeedClient,
        *,
        clock: Clock,
        queries_per_window: float,
        window: float = 100.0,
        queries_per_day: int,
        quota_reset_tz: str = "America/Los_Angeles",
        expected_latency: float,
        max_in_flight: int = 0,
        request_timeout: float,
        retry: RetryPolicy,
        breaker: CircuitBreakerSettings,
        metrics: Metrics | None = None,
        rng: random.Random | None = None,
        on_breaker_change: Callable[[str, BreakerState, BreakerState], None] | None = None,
        latency_decay: float = DECAY,
        shared: SharedQuotas | None = None,
    ) -> None:
        self._client = client
        self._clock = clock
        self._gauges = _Gauges(metrics)
        # Daemons on one Redis share the key's quotas (docs/scaling-out.md): the pace's turns and
        # the day's count come from Redis, or from this daemon's local share while it is down.
        self._pacer: WindowPacer | SharedPacer = (
            shared.pagespeed if shared is not None else WindowPacer(queries_per_window, window, clock=clock)
        )
        self._request_timeout = request_timeout
        self._metrics = metrics
        # Sites whose calls failed since the last success (two are enough to tell): whether an open
        # breaker is PageSpeed down for everyone, or one lead's site failing on its own.
        self._failing: set[str] = set()
        # Rate limited on every attempt: calls pause until then (on the clock), as on an outage.
        self._window = window
        self._throttled_until = 0.0
        rate = self._pacer.rate
        self.limits = InFlightLimit(
            clock=clock,
            rate=rate,
            expected_latency=expected_latency,
            request_timeout=request_timeout,
            ceiling=max_in_flight or InFlightLimit.default_ceiling(rate, request_timeout),
            decay=latency_decay,
            on_limit=self._limit_changed,
            on_latency=self._latency_measured,
        )
        self.daily: DailyQuota = (
            shared.daily if shared is not None else DailyQuota(queries_per_day, quota_reset_tz, clock)
        )
        self._on_breaker_change = on_breaker_change
        self.breaker = CircuitBreaker.from_settings(
            DEPENDENCY,
            breaker,
            clock=clock,
            on_change=self._breaker_changed,
            exclude=lambda exc: not _breaker_counts(exc),
            # Lighthouse takes 10 to 40 s: the PageSpeed timeout, not the generic one, bounds a call.
            call_timeout=request_timeout,
        )
        if metrics is not None:
            metrics.breaker_state.labels(DEPENDENCY).set(BreakerState.CLOSED.metric_value)
            metrics.in_flight.labels(DEPENDENCY).set(0)
            metrics.pagespeed_in_flight_limit.set(self.limits.limit)
        self._retrier = Retrier(
            retry, clock=clock, retryable=is_retryable, rng=rng, on_retry=self._retrying, name=DEPENDENCY
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        client: PageSpeedClient,
        *,
        clock: Clock,
        metrics: Metrics | None = None,
        rng: random.Random | None = None,
        on_breaker_change: Callable[[str, BreakerState, BreakerState], None] | None = None,
        shared: SharedQuotas | None = None,
    ) -> Enricher:
        ps: PageSpeedSettings = settings.pagespeed
        return cls(
            client,
            clock=clock,
            queries_per_window=ps.queries_per_100s,
            window=100.0,
            queries_per_day=ps.queries_per_day,
            quota_reset_tz=ps.quota_reset_tz,
            expected_latency=ps.expected_latency,
            max_in_flight=ps.max_in_flight,
            request_timeout=ps.request_timeout,
            retry=RetryPolicy.from_settings(settings.resilience.retry),
            breaker=settings.resilience.circuit_breaker,
            metrics=metrics,
            rng=rng,
            on_breaker_change=on_breaker_change,
            shared=shared,
        )

    @property
    def throttled(self) -> bool:
        """Whether PageSpeed keeps refusing us with 429s (its quota taken): jobs wait, as on an outage."""
        return self._clock.monotonic() < self._throttled_until

    @property
    def in_flight(self) -> int:
        return self._gauges.in_flight

    @property
    def max_workers(self) -> int:
        """Callers worth running at once (the actor's concurrency): the in-flight ceiling."""
        return self.limits.ceiling

    def _limit_changed(self, limit: int) -> None:
        if self._metrics is not None:
            self._metrics.pagespeed_in_flight_limit.set(limit)

    def _latency_measured(self, strategy: str, estimate: DecayingLatency) -> None:
        if self._metrics is not None:
            for q in QUANTILES:
                self._metrics.pagespeed_latency.labels(strategy, f"{q:g}").set(estimate.quantile(q))
            self._metrics.pagespeed_latency_mean.labels(strategy).set(estimate.mean)

    def _breaker_changed(self, name: str, old: BreakerState, new: BreakerState) -> None:
        if self._on_breaker_change is not None:  # the daemon's dependency registry: gauge, log, event
            self._on_breaker_change(name, old, new)
            return
        if self._metrics is not None:
            self._metrics.breaker_state.labels(name).set(new.metric_value)
        log.warning("breaker changed", extra={"breaker": name, "from": old.value, "to": new.value})

    def _retrying(self, attempt: int, exc: BaseException, delay: float) -> None:
        if self._metrics is not None:
            self._metrics.retries.labels(DEPENDENCY).inc()
        log.info(
            "pagespeed retry",
            extra={"attempt": attempt, "delay_s": round(delay, 3), "error": redact(str(exc))},
        )

    async def enrich(self, listing: Listing, strategies: Sequence[str] = ("mobile",)) -> EnrichmentOutcome:
        """PageSpeed for each strategy of this lead's website; never raises for a PageSpeed problem."""
        if not listing.website:
            return EnrichmentOutcome(listing, "skipped", reason="no website")
        results: list[PageSpeedResult] = []
        for strategy in dict.fromkeys(strategies):
            try:
                results.append(await self._fetch(listing, strategy))
            except RetryExhaustedError as exc:
                return EnrichmentOutcome(listing, "failed", tuple(results), redact(str(exc)))
            except PageSpeedError as exc:
                return EnrichmentOutcome(listing, "failed", tuple(results), redact(str(exc)))
        return EnrichmentOutcome(listing, "enriched", tuple(results))

    async def enrich_many(
        self, listings: Iterable[Listing], strategies: Sequence[str] = ("mobile",)
    ) -> AsyncGenerator[EnrichmentOutcome, None]:
        """Outcomes as they complete, with at most ``max_workers`` leads being worked on at once."""
        queue: asyncio.Queue[EnrichmentOutcome] = asyncio.Queue(maxsize=self.max_workers)
        source = iter(listings)
        workers = min(self.max_workers, 1_000)

        async def worker() -> None:
            for listing in source:
                await queue.put(await self.enrich(listing, strategies))

        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(worker(), name=f"enrich-{n}") for n in range(workers)]
            while True:
                getter = asyncio.ensure_future(queue.get())
                pending = {getter, *(t for t in tasks if not t.done())}
                if len(pending) == 1:
                    getter.cancel()
                    break
                try:
                    done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                except BaseException:
                    getter.cancel()  # the consumer went away (a time box): no getter left pending
                    raise
                if getter in done:
                    yield getter.result()
                else:
                    getter.cancel()
            while not queue.empty():
                yield queue.get_nowait()

    async def _fetch(self, listing: Listing, strategy: str) -> PageSpeedResult:
        assert listing.website is not None
        while True:
            waited = await self.daily.wait_until_available()
            if waited:
                self._gauges.waited("pagespeed_day", waited)
            try:
                return await self._retrier.call(self._attempt, listing, strategy)
            except DailyQuotaExhaustedError:
                # The pause is the quota's, not a failure: it restarts the attempts from scratch.
                if not self.daily.exhausted:
                    log.warning("pagespeed daily quota exhausted; pausing until it resets")
                self.daily.mark_exhausted()
            except BreakerOpenError as refused:
                # PageSpeed is down for everyone (an outage): wait for the breaker's trial, spending
                # no attempt of this lead's; the attempts start afresh once it is back.
                await self._clock.sleep(refused.retry_after or _TRIAL_POLL)
            except RetryExhaustedError as exhausted:
                last = exhausted.last
                if isinstance(last, TransientError) and last.status == 429:
                    # Rate limited on every attempt: the key's quota is taken (by other clients of the
                    # key, say), which is nobody's failure. Calls pause (the longest retry delay, at
                    # most one quota window), then go on with fresh attempts.
                    pause = min(self._window, max(self._retrier.policy.max_delay, _TRIAL_POLL))
                    self._throttled_until = max(self._throttled_until, self._clock.monotonic() + pause)
                    log.warning("pagespeed keeps answering 429; pausing", extra={"pause_s": pause})
                    await self._clock.sleep(self._throttled_until - self._clock.monotonic())
                    continue
                if self.breaker.state is BreakerState.CLOSED or self._failing <= {listing.website}:
                    # PageSpeed serves others (or only this site fails): the failures are this lead's own.
                    raise
                # Other sites failed as well: PageSpeed is down, which is not this lead's failure.
                log.info("pagespeed retries ran out during an outage; waiting for it to end")

    async def _attempt(self, listing: Listing, strategy: str) -> PageSpeedResult:
        assert listing.website is not None
        async with self.limits.slot():
            started = self._clock.monotonic()
            await self._pacer.acquire()
            self._gauges.waited("pagespeed_100s", self._clock.monotonic() - started)
            if not await self.daily.claim():
                raise DailyQuotaExhaustedError(
                    "pagespeed: daily quota spent (by our own count: this daemon's, or the fleet's with Redis)", 429
                )
            self._gauges.inc()
            try:
                result = await self.breaker.call(self._call, listing.website, strategy, listing.place_id)
            except Exception as exc:
                if _breaker_counts(exc) and not isinstance(exc, BreakerOpenError) and len(self._failing) < 2:
                    self._failing.add(listing.website)
                raise
            finally:
                self._gauges.dec()
            self._failing.clear()
            return result

    async def _call(self, url: str, strategy: str, place_id: str | None) -> PageSpeedResult:
        tested_at = datetime.fromtimestamp(self._clock.wall(), UTC)
        started = self.limits.started(strategy)
        measured = True
        try:
            return await self._client.run(url, strategy, place_id=place_id, tested_at=tested_at)
        except asyncio.CancelledError:
            # Cut by the breaker's timeout, it held its slot that long: a sample. Cancelled because
            # its job stopped, its latency is unknown: none.
            measured = self._clock.monotonic() - started >= self._request_timeout
            raise
        finally:
            self.limits.finished(strategy, started, measured=measured)
