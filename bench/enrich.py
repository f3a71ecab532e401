"""Our enricher on the PageSpeed stand-in: against the old system's shape, and under Lighthouse's
latency profiles, always with the daemon's default configuration (config/default.yaml).

Real PageSpeed: 400 queries per 100 s, calls of 10 to 40 s and more. Everything here runs on a
time scale: the stand-in's windows and latencies (its ``time_scale``), and the daemon's time
settings (the 100-s window, ``request_timeout``, ``expected_latency`` (only the in-flight
limit's first guess), retry delays, breaker timeouts, the time constant of the latency it
measures). Nothing the stand-in does is handed to the enricher: it measures. The stand-in runs in
a process of its own, and counts requests as they reach it, as Google does.

1. **Ours against the baseline** (the old system: five calls at a time, no rate limiter, no
   retry), each for ``--seconds`` of wall time on a fresh stand-in with ``--quota`` per
   ``--window`` seconds and calls of 0.5 to 2 s (Lighthouse's 10 to 40 s divided by 20, the
   scale of the daemon's times here). Enriched leads per minute count leads with a result (a
   site Lighthouse could not load included; 5 % of the backlog are such sites).
2. **Latency profiles**, each on a fresh stand-in with Google's quota, 400 per 100 s, at
   ``--scale`` (default 1/5: a 100-s window lasts 20 s): ``uniform`` 10-40 s; ``heavy_tail``
   lognormal, median 20 s and 5 % of calls over 60 s (cut by the 60-s request timeout, and
   retried); ``shift`` 10 s, then 40 s, then 10 s again, two minutes each. Why 1/5 and not
   1/20: the pacer leaves 1 % of the quota unused as the service's slack for requests that reach
   it sooner or later than they left, a second of Google's pace; at 1/20 that is 50 ms, and on
   a shared 2-core machine requests can reach the stand-in 130 ms late: the bench would measure
   the machine.
   Figures (in unscaled seconds where they are times):

   - quota use: calls the stand-in saw ÷ calls the quota allows over the run;
   - 429s, and the most requests the stand-in saw in any window (the quota is 400), next to the
     most we sent in any window by our own clock (the pacer allows 396): more at the stand-in
     than we sent means requests that reached it late, bunched with later ones;
   - peak in flight: the most calls holding a slot at once (running, or waiting their turn at
     the pacer): what the adaptive limit bounds; peak running: the most HTTP calls at once;
   - need: at each moment, the pacer's rate times the measured latency, taken as the longest
     mean latency of the calls started in any 10-s stretch of the minute before (the limit is
     to follow latency within a minute); "in flight ÷ need" is the largest ratio seen, from the
     end of the run's first minute (before it the limit runs on its first guess) to the last
     minute (whose calls were cut by the end of the run).

Usage: ``python bench/enrich.py [--seconds S] [--scale F] [--profiles uniform,shift]``. The last
line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import multiprocessing
import random
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actors.clock import MonotonicClock
from leadlawk_daemon.listing import Listing
from leadlawk_daemon.pagespeed.client import PageSpeedClient, PageSpeedError
from leadlawk_daemon.pagespeed.enrichment import Enricher
from leadlawk_daemon.pagespeed.result import PageSpeedResult
from leadlawk_daemon.quota import SharedQuotas
from leadlawk_daemon.replicas.pagespeed import serve_pagespeed_replica
from leadlawk_daemon.resilience.inflight import DECAY
from leadlawk_daemon.resilience.retry import RetryPolicy
from leadlawk_daemon.settings import CircuitBreakerSettings, Settings, load_settings

LATENCY_MS = {"min": 500, "max": 2000}
LATENCY_SCALE = 0.05  # 0.5-2 s calls: Lighthouse's 10-40 s divided by 20
BROKEN = {"broken-": "FAILED_DOCUMENT_REQUEST"}
GOOGLE_QUOTA = 400
GOOGLE_WINDOW = 100.0

# Unscaled: the stand-in multiplies by its time_scale. "steps" count from the first request.
PROFILES: dict[str, tuple[dict[str, Any], float]] = {
    "uniform": ({"uniform": {"min": 10_000, "max": 40_000}}, 240.0),
    "heavy_tail": ({"lognormal": {"median": 20_000, "p95": 60_000}}, 240.0),
    "shift": (
        {
            "steps": [
                {"at_s": 0, "latency_ms": {"min": 9_000, "max": 11_000}},
                {"at_s": 120, "latency_ms": {"min": 36_000, "max": 44_000}},
                {"at_s": 240, "latency_ms": {"min": 9_000, "max": 11_000}},
            ]
        },
        360.0,
    ),
}


def backlog() -> Iterator[Listing]:
    n = 0
    while True:
        site = f"https://broken-{n}.example/" if n % 20 == 19 else f"https://shop{n}.example/"
        yield Listing(name=f"Shop {n}", place_id=f"ChIJbench{n:07d}", website=site)
        n += 1


def _serve_stand_in(conn: Connection, replica: dict[str, Any]) -> None:
    """The stand-in's process: it counts requests on its own loop, as Google does on its side."""

    async def serve() -> None:
        async with serve_pagespeed_replica(**replica) as base:
            conn.send(base)
            await asyncio.Event().wait()

    uvloop.run(serve())


@dataclass(frozen=True)
class StandIn:
    base: str
    session: aiohttp.ClientSession

    async def stats(self) -> dict[str, Any]:
        async with self.session.get(f"{self.base}/_stats") as response:
            body: dict[str, Any] = await response.json()
            return body


@asynccontextmanager
async def stand_in(faults: dict[str, Any], **replica: Any) -> AsyncIterator[StandIn]:
    """A fresh stand-in in a process of its own (arrivals timed off our loop), with ``faults`` set."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=_serve_stand_in, args=(theirs, replica), daemon=True)
    process.start()
    try:
        if not await asyncio.to_thread(ours.poll, 30.0):
            raise RuntimeError("the PageSpeed stand-in did not start within 30 s")
        base = str(ours.recv())
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{base}/_faults", json=faults) as response:
                if response.status != 200:
                    raise RuntimeError(f"stand-in refused the faults: {await response.text()}")
            yield StandIn(base, session)
    finally:
        process.terminate()
        await asyncio.to_thread(process.join, 10.0)


def daemon_enricher(
    client: PageSpeedClient,
    settings: Settings,
    scale: float,
    quota: float | None = None,
    window: float | None = None,
    shared: SharedQuotas | None = None,
) -> Enricher:
    """The enricher as the daemon builds it from ``settings``, its times multiplied by ``scale``
    (``shared``: its quotas shared over Redis, as bench/fleet.py's daemons have them)."""
    ps, resilience = settings.pagespeed, settings.resilience
    return Enricher(
        client,
        clock=MonotonicClock(),
        queries_per_window=ps.queries_per_100s if quota is None else quota,
        window=100.0 * scale if window is None else window,
        queries_per_day=10_000_000,
        quota_reset_tz=ps.quota_reset_tz,
        expected_latency=ps.expected_latency * scale,
        max_in_flight=ps.max_in_flight,
        request_timeout=ps.request_timeout * scale,
        retry=RetryPolicy(
            max_attempts=resilience.retry.max_attempts,
            base_delay=resilience.retry.base_delay * scale,
            max_delay=resilience.retry.max_delay * scale,
            exponential_base=resilience.retry.exponential_base,
            jitter=resilience.retry.jitter,
        ),
        breaker=CircuitBreakerSettings(
            failure_threshold=resilience.circuit_breaker.failure_threshold,
            timeout=resilience.circuit_breaker.timeout * scale,
            reset_timeout=resilience.circuit_breaker.reset_timeout * scale,
        ),
        rng=random.Random(1),
        latency_decay=DECAY * scale,
        shared=shared,
    )


async def time_boxed(outcomes: AsyncIterator[Any], seconds: float) -> int:
    """Count outcomes with a result until the time box closes."""
    enriched = 0
    try:
        async with asyncio.timeout(seconds):
            async for outcome in outcomes:
                if outcome.status == "enriched":
                    enriched += 1
    except TimeoutError:
        pass
    return enriched


async def run_ours(settings: Settings, quota: int, window: float, seconds: float) -> dict[str, Any]:
    faults = {"latency_ms": LATENCY_MS, "lighthouse_errors": BROKEN}
    async with (
        stand_in(faults, seed=11, quota_per_window=quota, window_s=window) as service,
        PageSpeedClient(service.base, "bench-key") as client,
    ):
        enricher = daemon_enricher(client, settings, LATENCY_SCALE, quota, window)
        started = time.monotonic()
        stream = enricher.enrich_many(backlog())
        try:
            enriched = await time_boxed(stream, seconds)
        finally:
            await stream.aclose()
        elapsed = time.monotonic() - started
        stats = await service.stats()
    return {**summary(stats, enriched, elapsed), "limit": enricher.limits.limit}


async def run_baseline(quota: int, window: float, seconds: float) -> dict[str, Any]:
    """Five workers, each calling PageSpeed for the next lead as soon as its last call returned."""
    faults = {"latency_ms": LATENCY_MS, "lighthouse_errors": BROKEN}
    leads = backlog()
    enriched = 0
    async with (
        stand_in(faults, seed=11, quota_per_window=quota, window_s=window) as service,
        PageSpeedClient(service.base, "bench-key") as client,
    ):

        async def worker() -> None:
            nonlocal enriched
            for listing in leads:
                assert listing.website is not None
                try:
                    await client.run(
                        listing.website, "mobile", place_id=listing.place_id, tested_at=datetime.now(UTC)
                    )
                except PageSpeedError:
                    continue  # no retry: the lead is lost
                enriched += 1

        started = time.monotonic()
        try:
            async with asyncio.timeout(seconds), asyncio.TaskGroup() as group:
                for _ in range(5):
                    group.create_task(worker())
        except TimeoutError:
            pass
        elapsed = time.monotonic() - started
        stats = await service.stats()
    return summary(stats, enriched, elapsed)


def summary(stats: dict[str, Any], enriched: int, elapsed: float) -> dict[str, Any]:
    return {
        "enriched": enriched,
        "elapsed_s": round(elapsed, 1),
        "leads_per_min": round(enriched / elapsed * 60, 1),
        "requests": int(stats["requests"]),
        "status_429": int(stats["status_429"]),
        "max_in_window": int(stats["max_in_window"]),
    }


@dataclass
class Watch:
    """What the enricher holds and runs at every call's start and end, and every call's latency."""

    enricher: Enricher | None = None
    calls: list[tuple[float, float]] = field(default_factory=list)  # (start, seconds)
    sent: list[float] = field(default_factory=list)  # every call's start
    samples: list[tuple[float, int, int, int]] = field(default_factory=list)  # (at, held, running, limit)

    def sample(self) -> None:
        if self.enricher is not None:
            limits = self.enricher.limits
            self.samples.append((time.monotonic(), limits.held, limits.running, limits.limit))


class WatchedClient(PageSpeedClient):
    def __init__(self, base_url: str, watch: Watch, timeout: float) -> None:
        super().__init__(base_url, "bench-key")
        self._watch = watch
        self._timeout = timeout

    async def run(self, url: str, strategy: str, *, place_id: str | None, tested_at: datetime) -> PageSpeedResult:
        started = time.monotonic()
        self._watch.sent.append(started)
        self._watch.sample()
        ended = False
        try:
            result = await super().run(url, strategy, place_id=place_id, tested_at=tested_at)
            ended = True
            return result
        except PageSpeedError:
            ended = True
            raise
        finally:
            seconds = time.monotonic() - started
            if ended or seconds >= self._timeout:  # cut by the timeout: it held its slot that long
                self._watch.calls.append((started, seconds))
            self._watch.sample()


def most_in_any_window(starts: list[float], window: float) -> int:
    """The most ``starts`` in any window ``(t - window, t]``, as the service counts them."""
    ordered = sorted(starts)
    return max((i + 1 - bisect.bisect_right(ordered, t - window) for i, t in enumerate(ordered)), default=0)


def in_flight_over_need(watch: Watch, rate: float, scale: float, t0: float, t1: float) -> tuple[float, float]:
    """The largest held ÷ need between ``t0`` and ``t1``, and the need at that moment (see the docstring)."""
    stretch = 10.0 * scale
    sums: dict[int, list[float]] = {}
    for start, seconds in watch.calls:
        sums.setdefault(int((start - t0) // stretch), []).append(seconds)
    means = {k: sum(v) / len(v) for k, v in sums.items()}
    worst, need_then = 0.0, 0.0
    for at, held, _, _ in watch.samples:
        if not t0 + 60 * scale <= at <= t1 - 60 * scale:
            continue
        now = int((at - t0) // stretch)
        recent = [means[k] for k in range(now - 6, now + 1) if k in means]
        if recent:
            need = rate * max(recent)
            if held / need > worst:
                worst, need_then = held / need, need
    return worst, need_then


async def run_profile(settings: Settings, scale: float, name: str) -> dict[str, Any]:
    profile, length = PROFILES[name]
    faults = {"latency_profile": profile, "lighthouse_errors": BROKEN}
    replica = {"seed": 11, "quota_per_window": GOOGLE_QUOTA, "window_s": GOOGLE_WINDOW, "time_scale": scale}
    watch = Watch()
    timeout = settings.pagespeed.request_timeout * scale
    async with stand_in(faults, **replica) as service, WatchedClient(service.base, watch, timeout) as client:
        enricher = daemon_enricher(client, settings, scale)
        watch.enricher = enricher
        started = time.monotonic()
        stream = enricher.enrich_many(backlog())
        try:
            enriched = await time_boxed(stream, length * scale)
        finally:
            await stream.aclose()
        elapsed = time.monotonic() - started
        stats = await service.stats()
    allowed = GOOGLE_QUOTA * elapsed / (GOOGLE_WINDOW * scale)
    ratio, need = in_flight_over_need(watch, enricher.limits.rate, scale, started, started + elapsed)
    settled = [s for s in watch.samples if s[0] >= started + 60 * scale]
    return {
        "seconds": length,
        "quota_use": round(stats["requests"] / allowed, 3),
        "429s": int(stats["status_429"]),
        "max_in_window": int(stats["max_in_window"]),
        "max_sent_in_window": most_in_any_window(watch.sent, GOOGLE_WINDOW * scale),
        "peak_in_flight": max((s[1] for s in watch.samples), default=0),
        "peak_in_flight_after_first_minute": max((s[1] for s in settled), default=0),
        "peak_running": max((s[2] for s in watch.samples), default=0),
        "in_flight_over_need": round(ratio, 2),
        "need_then": round(need, 1),
        "limit_range": [min(s[3] for s in settled), max(s[3] for s in settled)] if settled else [],
        "mean_latency_s": round(sum(s for _, s in watch.calls) / len(watch.calls) / scale, 1) if watch.calls else 0,
        "calls": len(watch.calls),
        "enriched": enriched,
        "first_limit": watch.samples[0][3] if watch.samples else 0,
        "elapsed_s": round(elapsed, 1),
        "timeouts": sum(1 for _, s in watch.calls if s >= timeout),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=30.0, help="wall time ours and the baseline each run")
    parser.add_argument("--quota", type=int, default=200, help="stand-in quota per window (ours vs baseline)")
    parser.add_argument("--window", type=float, default=10.0, help="quota window, seconds (ours vs baseline)")
    parser.add_argument("--scale", type=float, default=0.2, help="time scale of the latency profiles")
    parser.add_argument("--profiles", default=",".join(PROFILES), help="comma-separated latency profiles to run")
    args = parser.parse_args()
    names = [n for n in args.profiles.split(",") if n]
    unknown = [n for n in names if n not in PROFILES]
    if unknown:
        parser.error(f"unknown profile(s) {', '.join(unknown)} (known: {', '.join(PROFILES)})")
    settings = load_settings(environ={})
    quota_per_min = args.quota / args.window * 60
    print(f"stand-in: {args.quota} queries per {args.window:g} s ({quota_per_min:.0f}/min), latency 0.5-2 s")
    ours = await run_ours(settings, args.quota, args.window, args.seconds)
    print(
        f"ours:     {ours['leads_per_min']:>7.1f} enriched leads/min, {ours['status_429']} x 429, "
        f"max {ours['max_in_window']} requests in a window (quota {args.quota}), in-flight limit {ours['limit']}"
    )
    base = await run_baseline(args.quota, args.window, args.seconds)
    print(
        f"baseline: {base['leads_per_min']:>7.1f} enriched leads/min, {base['status_429']} x 429, "
        f"max {base['max_in_window']} requests in a window (5 concurrent, no limiter, no retry)"
    )
    ratio = ours["leads_per_min"] / base["leads_per_min"] if base["leads_per_min"] else float("inf")
    print(f"ratio:    {ratio:.1f}x the baseline's enriched leads per minute")
    profiles: dict[str, dict[str, Any]] = {}
    print(f"profiles: Google's {GOOGLE_QUOTA} per {GOOGLE_WINDOW:g} s, daemon defaults, time x {args.scale:g}")
    print(
        f"{'profile':<11} {'quota use':>9} {'429s':>5} {'max/window (sent)':>17} {'peak in flight':>14} "
        f"{'peak running':>12} {'in flight/need':>14} {'mean latency':>12}"
    )
    for name in names:
        result = await run_profile(settings, args.scale, name)
        profiles[name] = result
        print(
            f"{name:<11} {result['quota_use']:>9.3f} {result['429s']:>5} "
            f"{result['max_in_window']:>10} ({result['max_sent_in_window']:>3}) "
            f"{result['peak_in_flight']:>14} {result['peak_running']:>12} {result['in_flight_over_need']:>14.2f} "
            f"{result['mean_latency_s']:>11.1f}s"
        )
    output = {
        "bench": "enrich",
        "quota_per_window": args.quota,
        "window_s": args.window,
        "latency_ms": LATENCY_MS,
        "seconds": args.seconds,
        "scale": args.scale,
        "ours_leads_per_min": ours["leads_per_min"],
        "ours_429s": ours["status_429"],
        "ours_max_in_window": ours["max_in_window"],
        "baseline_leads_per_min": base["leads_per_min"],
        "baseline_429s": base["status_429"],
        "baseline_max_in_window": base["max_in_window"],
        "ratio": round(ratio, 2),
        "profiles": profiles,
    }
    print(orjson.dumps(output).decode())


if __name__ == "__main__":
    uvloop.run(main())
