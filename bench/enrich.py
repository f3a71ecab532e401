"""Our enricher against a baseline shaped like the old system, on the same PageSpeed stand-in.

The old system ran five PageSpeed calls at a time, with no rate limiter and no retry. Real
PageSpeed: 400 queries per 100 s, calls of 10 to 40 s, so using the quota needs about 100 calls
in flight. Scaled down here so that a run takes about a minute on a small machine:

- quota: ``--quota`` (default 200) per ``--window`` (default 10 s) seconds, enforced by the
  stand-in with Google's 429 body; no daily limit;
- latency: uniform 0.5 to 2 s per call (Lighthouse's 10-40 s divided by 20);
- backlog: far more leads than either side can finish; each side runs for ``--seconds``
  (default 30) of wall time on a fresh stand-in, then stops.

Enriched leads per minute counts leads with a result (a site Lighthouse could not load
included; 5 % of the backlog are such sites). Leads the baseline lost to a 429 are not retried:
that is what the old system did. Usage: ``python bench/enrich.py [--seconds S]``. The last line
is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from leadlawk_daemon.clock import MonotonicClock
from leadlawk_daemon.listing import Listing
from leadlawk_daemon.pagespeed.client import PageSpeedClient, PageSpeedError
from leadlawk_daemon.pagespeed.enrichment import Enricher
from leadlawk_daemon.replicas.pagespeed import PageSpeedReplica, serve_pagespeed_replica
from leadlawk_daemon.resilience.retry import RetryPolicy
from leadlawk_daemon.settings import CircuitBreakerSettings

LATENCY_MS = {"min": 500, "max": 2000}
BROKEN = {"broken-": "FAILED_DOCUMENT_REQUEST"}


def backlog() -> Iterator[Listing]:
    n = 0
    while True:
        site = f"https://broken-{n}.example/" if n % 20 == 19 else f"https://shop{n}.example/"
        yield Listing(name=f"Shop {n}", place_id=f"ChIJbench{n:07d}", website=site)
        n += 1


def stand_in(quota: int, window: float) -> PageSpeedReplica:
    replica = PageSpeedReplica(seed=11, quota_per_window=quota, window_s=window)
    replica.faults.replace({"latency_ms": LATENCY_MS, "lighthouse_errors": BROKEN})
    return replica


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


async def run_ours(quota: int, window: float, seconds: float) -> dict[str, Any]:
    replica = stand_in(quota, window)
    async with serve_pagespeed_replica(replica=replica) as base, PageSpeedClient(base, "bench-key") as client:
        enricher = Enricher(
            client,
            clock=MonotonicClock(),
            queries_per_window=quota,
            window=window,
            queries_per_day=10_000_000,
            expected_latency=(LATENCY_MS["min"] + LATENCY_MS["max"]) / 2000,
            request_timeout=10.0,
            retry=RetryPolicy(max_attempts=5, base_delay=0.5, max_delay=5.0),
            breaker=CircuitBreakerSettings(failure_threshold=5, timeout=10, reset_timeout=5),
            rng=random.Random(1),
        )
        started = time.monotonic()
        stream = enricher.enrich_many(backlog())
        try:
            enriched = await time_boxed(stream, seconds)
        finally:
            await stream.aclose()
        elapsed = time.monotonic() - started
        bulkhead = enricher.bulkhead
    return {**summary(replica, enriched, elapsed), "bulkhead": bulkhead}


async def run_baseline(quota: int, window: float, seconds: float) -> dict[str, Any]:
    """Five workers, each calling PageSpeed for the next lead as soon as its last call returned."""
    replica = stand_in(quota, window)
    leads = backlog()
    enriched = 0
    async with serve_pagespeed_replica(replica=replica) as base, PageSpeedClient(base, "bench-key") as client:

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
    return summary(replica, enriched, elapsed)


def summary(replica: PageSpeedReplica, enriched: int, elapsed: float) -> dict[str, Any]:
    stats = replica.stats
    return {
        "enriched": enriched,
        "elapsed_s": round(elapsed, 1),
        "leads_per_min": round(enriched / elapsed * 60, 1),
        "requests": int(stats["requests"]),
        "status_429": int(stats["status_429"]),
        "max_in_window": int(stats["max_in_window"]),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=30.0, help="wall time each side runs")
    parser.add_argument("--quota", type=int, default=200, help="stand-in quota per window")
    parser.add_argument("--window", type=float, default=10.0, help="quota window, seconds")
    args = parser.parse_args()
    quota_per_min = args.quota / args.window * 60
    print(f"stand-in: {args.quota} queries per {args.window:g} s ({quota_per_min:.0f}/min), latency 0.5-2 s")
    ours = await run_ours(args.quota, args.window, args.seconds)
    print(
        f"ours:     {ours['leads_per_min']:>7.1f} enriched leads/min, {ours['status_429']} x 429, "
        f"max {ours['max_in_window']} requests in a window (quota {args.quota}), bulkhead {ours['bulkhead']}"
    )
    base = await run_baseline(args.quota, args.window, args.seconds)
    print(
        f"baseline: {base['leads_per_min']:>7.1f} enriched leads/min, {base['status_429']} x 429, "
        f"max {base['max_in_window']} requests in a window (5 concurrent, no limiter, no retry)"
    )
    ratio = ours["leads_per_min"] / base["leads_per_min"] if base["leads_per_min"] else float("inf")
    print(f"ratio:    {ratio:.1f}x the baseline's enriched leads per minute")
    result = {
        "bench": "enrich",
        "quota_per_window": args.quota,
        "window_s": args.window,
        "latency_ms": LATENCY_MS,
        "seconds": args.seconds,
        "ours_leads_per_min": ours["leads_per_min"],
        "ours_429s": ours["status_429"],
        "ours_max_in_window": ours["max_in_window"],
        "baseline_leads_per_min": base["leads_per_min"],
        "baseline_429s": base["status_429"],
        "baseline_max_in_window": base["max_in_window"],
        "ratio": round(ratio, 2),
    }
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    uvloop.run(main())
