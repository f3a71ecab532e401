"""Scraper throughput, CPU and browser memory against the offline Maps replica.

    .venv/bin/python bench/scrape.py [--searches 6] [--memory-listings 2000]

1. Listings per minute with 1, 2 and 4 pages (jobs run concurrently, one page each), and CPU
   seconds per 100 listings: ours (event loop + parse worker) and the browser's processes.
2. Peak browser memory (PSS summed over its processes) over a run of at least 2,000 listings
   (searches of 120), with recycling (pages and browser replaced) and without.
The politeness limiter is lifted (the replica is local): this measures the machinery, not Google.
Last line: one JSON object {"bench": "scrape", ...}.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actors.clock import MonotonicClock
from leadlawk_daemon.listing import Listing
from leadlawk_daemon.maps import proctree
from leadlawk_daemon.maps.browser import BrowserPool
from leadlawk_daemon.maps.parse_pool import ParsePool
from leadlawk_daemon.maps.scraper import MapsScraper, ScrapeRequest
from leadlawk_daemon.resilience.breaker import CircuitBreaker
from leadlawk_daemon.settings import BrowserSettings, MapsSettings

ROOT = Path(__file__).resolve().parent.parent
_TICK = os.sysconf("SC_CLK_TCK")


def browser_settings(pages: int, page_recycle_after: int, browser_recycle_after: int) -> BrowserSettings:
    return BrowserSettings(
        executable=None,
        headless=True,
        pages=pages,
        page_recycle_after=page_recycle_after,
        browser_recycle_after=browser_recycle_after,
        memory_limit_mb=1536,
        launch_timeout=30.0,
    )


def maps_settings(base_url: str) -> MapsSettings:
    return MapsSettings(
        base_url=base_url,
        language="en",
        navigations_per_minute=600_000,
        navigation_timeout=30.0,
        scroll_timeout=10.0,
        max_idle_scrolls=4,
    )


def tree_cpu_seconds(pool: BrowserPool) -> float:
    """CPU of the browser's live processes plus what they reaped (exited renderers)."""
    total = 0
    for pid in pool.pids():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
    return total / _TICK


def self_cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


async def run_searches(
    pool: BrowserPool,
    scraper: MapsScraper,
    queries: list[str],
    concurrency: int,
    on_listing: Callable[[], None] | None = None,
) -> int:
    """Scrape every query, ``concurrency`` at once; the number of listings emitted."""
    emitted = 0
    todo: asyncio.Queue[str] = asyncio.Queue(maxsize=len(queries))
    for query in queries:
        todo.put_nowait(query)

    async def emit(listing: Listing, rank: int) -> None:
        nonlocal emitted
        emitted += 1
        if on_listing is not None:
            on_listing()

    async def worker() -> None:
        while not todo.empty():
            query = todo.get_nowait()
            await scraper.scrape(ScrapeRequest(query, "Omaha, NE", limit=500), emit, set())

    async with asyncio.TaskGroup() as tasks:
        for _ in range(concurrency):
            tasks.create_task(worker())
    return emitted


def make_scraper(pool: BrowserPool, base_url: str, parsers: ParsePool) -> MapsScraper:
    clock = MonotonicClock()
    breaker = CircuitBreaker(
        "google_maps", failure_threshold=5, reset_timeout=60, call_timeout=None, clock=clock
    )
    return MapsScraper(pool, maps_settings(base_url), breaker=breaker, clock=clock, parsers=parsers)


async def throughput(base_url: str, pages: int, searches: int, tag: str) -> dict[str, float]:
    queries = [f"{tag} shop {i}" for i in range(searches)]
    async with BrowserPool(browser_settings(pages, 25, 10_000)) as pool:
        scraper_cpu_before = self_cpu(resource.RUSAGE_SELF)
        children_before = self_cpu(resource.RUSAGE_CHILDREN)
        browser_before = tree_cpu_seconds(pool)
        async with ParsePool() as parsers:
            # One search first: the browser's caches and the parse worker are warm for everyone.
            await run_searches(pool, make_scraper(pool, base_url, parsers), [f"{tag} warmup"], 1)
            scraper_cpu_before = self_cpu(resource.RUSAGE_SELF)
            browser_before = tree_cpu_seconds(pool)
            started = time.perf_counter()
            listings = await run_searches(pool, make_scraper(pool, base_url, parsers), queries, pages)
            elapsed = time.perf_counter() - started
            ours = self_cpu(resource.RUSAGE_SELF) - scraper_cpu_before
            browser = tree_cpu_seconds(pool) - browser_before
        # The parse worker has exited and been reaped: its CPU is in our children's usage now.
        worker = self_cpu(resource.RUSAGE_CHILDREN) - children_before
    per_minute = listings / elapsed * 60
    return {
        "pages": pages,
        "listings": listings,
        "seconds": round(elapsed, 2),
        "listings_per_min": round(per_minute),
        "cpu_s_per_100_ours": round((ours + worker) / listings * 100, 3),
        "cpu_s_per_100_browser": round(browser / listings * 100, 3),
    }


async def memory_run(base_url: str, listings_goal: int, recycle: bool, tag: str) -> dict[str, Any]:
    searches = -(-listings_goal // 120)
    queries = [f"{tag} store {i}" for i in range(searches)]
    settings = browser_settings(2, 2, 4) if recycle else browser_settings(2, 1_000_000, 1_000_000)
    peak = 0
    async with BrowserPool(settings) as pool, ParsePool() as parsers:
        done = asyncio.Event()

        async def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, await asyncio.to_thread(lambda: proctree.pss_bytes(pool.pids())))
                # A sampling period, not a wait for a condition: bounded by the run's end.
                try:
                    async with asyncio.timeout(0.25):
                        await done.wait()
                except TimeoutError:
                    pass

        async with asyncio.TaskGroup() as tasks:
            sampler = tasks.create_task(sample())
            try:
                listings = await run_searches(pool, make_scraper(pool, base_url, parsers), queries, 2)
            finally:
                done.set()
            await sampler
        restarts = pool.stats.restarts
    return {
        "recycling": recycle,
        "listings": listings,
        "peak_browser_pss_mb": round(peak / (1024 * 1024), 1),
        "browser_restarts": restarts,
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"bench": "scrape"}
    # The replica runs in a process of its own, so that its CPU is not counted as ours.
    replica = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import asyncio; from leadlawk_daemon.replicas.maps import run_maps_replica; "
        "asyncio.run(run_maps_replica('127.0.0.1', 0, 11))",
        stdout=asyncio.subprocess.PIPE,
        cwd=str(ROOT),
    )
    try:
        assert replica.stdout is not None
        async with asyncio.timeout(30):
            base_url = (await replica.stdout.readline()).decode().strip()
        if not base_url.startswith("http"):
            raise SystemExit("the Maps replica did not start")
        print(f"Maps replica at {base_url}; searches of 120 listings, limiter lifted")
        for pages in (1, 2, 4):
            row = await throughput(base_url, pages, args.searches, f"p{pages}")
            results[f"pages_{pages}"] = row
            print(
                f"{pages} page(s): {row['listings']} listings in {row['seconds']} s = "
                f"{row['listings_per_min']} listings/min; CPU per 100 listings: "
                f"ours {row['cpu_s_per_100_ours']} s, browser {row['cpu_s_per_100_browser']} s"
            )
        for recycle in (False, True):
            row = await memory_run(base_url, args.memory_listings, recycle, "rc" if recycle else "nr")
            results["memory_recycling" if recycle else "memory_no_recycling"] = row
            print(
                f"{row['listings']} listings {'with' if recycle else 'without'} recycling: peak browser "
                f"PSS {row['peak_browser_pss_mb']} MB, {row['browser_restarts']} browser restarts"
            )
    finally:
        replica.kill()
        await replica.wait()
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--searches", type=int, default=6, help="searches of 120 per page count")
    parser.add_argument("--memory-listings", type=int, default=2000, help="listings per memory run")
    figures = uvloop.run(main(parser.parse_args()))
    print(orjson.dumps(figures).decode())
