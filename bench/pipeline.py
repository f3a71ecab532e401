"""End-to-end leads per minute through the job pipeline, and the process's memory over the run.

    .venv/bin/python bench/pipeline.py [--leads 10000] [--database URL]

The whole pipeline (coordinator, scraper with real Chromium, enricher, writer) runs under a
``rest_for_one`` supervisor against both offline replicas: the Maps replica (feeds of 120) and the
PageSpeed stand-in with Lighthouse-shaped latency (10-40 s) scaled down 200 times, the quota
raised to match (this measures our machinery, not Google's pace). Searches of 120 are submitted
until ``--leads`` are written; the database is a fresh SQLite file unless ``--database`` names a
PostgreSQL one. After each 1,000 leads written the daemon process's RSS is printed (Chromium is
other processes: its memory is bench/scrape.py's business).
Target: RSS flat within 10 % after warm-up (the first 2,000 leads).
Last line: one JSON object {"bench": "pipeline", ...}.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actors.clock import MonotonicClock
from actors.dead_letters import MemoryDeadLetters
from leadlawk_daemon.jobspec import parse_job_spec
from leadlawk_daemon.metrics import Metrics
from leadlawk_daemon.pipeline import Pipeline
from leadlawk_daemon.settings import load_settings
from leadlawk_daemon.store import open_store
from supervisors.spec import Strategy
from supervisors.supervisor import Supervisor

FEED = 120
TRADES = ("plumbers", "dentists", "roofers", "bakers", "florists", "tailors", "electricians", "painters",
          "locksmiths", "barbers", "cafes", "gyms")
CITIES = ("Omaha, NE", "Austin, TX", "Denver, CO", "Boise, ID", "Tulsa, OK", "Fresno, CA", "Reno, NV",
          "Salem, OR")
WARM_UP = 2_000


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Progress:
    """The events sink: counts leads written and samples RSS at every 1,000."""

    def __init__(self, target: int) -> None:
        self.target = target  # jobs: a lead counts once its job is finished, enrichment included
        self.written = 0
        self.samples: list[tuple[int, float, float]] = []
        self.started = time.monotonic()
        self.done = asyncio.Event()
        self.finished_jobs = 0
        self.failed_jobs: list[dict[str, Any]] = []

    def publish(self, type: str, /, **context: Any) -> None:
        if type == "lead.written":
            before = self.written
            self.written += int(context.get("count", 0))
            for mark in range(before // 1000 + 1, self.written // 1000 + 1):
                elapsed = time.monotonic() - self.started
                self.samples.append((mark * 1000, rss_mb(), elapsed))
                print(f"leads {mark * 1000:>6}  rss {rss_mb():7.1f} MB  after {elapsed:6.1f} s", flush=True)
        elif type == "job.finished":
            self.finished_jobs += 1
            if self.finished_jobs >= self.target:
                self.done.set()
            if context.get("status") != "succeeded":
                self.failed_jobs.append(context)


# The replicas run in a process of their own, so that their caches do not count in our RSS.
_REPLICAS = f"""
import asyncio, sys
sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})
from leadlawk_daemon.replicas.maps import serve_maps_replica
from leadlawk_daemon.replicas.pagespeed import serve_pagespeed_replica

async def main():
    async with (
        serve_maps_replica("127.0.0.1", 0, seed=1, max_results={FEED}) as maps,
        serve_pagespeed_replica("127.0.0.1", 0, seed=1, time_scale=0.005) as pagespeed,
    ):
        print(maps, flush=True)
        print(pagespeed, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"""


@asynccontextmanager
async def replicas_process() -> AsyncIterator[tuple[str, str]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _REPLICAS, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            maps_url = (await proc.stdout.readline()).decode().strip()
            ps_url = (await proc.stdout.readline()).decode().strip()
        if not (maps_url.startswith("http") and ps_url.startswith("http")):
            sys.exit("the replicas did not start")
        yield maps_url, ps_url
    finally:
        if proc.stdin is not None:
            proc.stdin.close()  # end of stdin: the replicas stop
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leads", type=int, default=10_000)
    parser.add_argument("--database", default=None, help="postgresql://... (default: a fresh SQLite file)")
    args = parser.parse_args()
    searches = -(-args.leads // FEED)
    pairs = [(t, c) for c in CITIES for t in TRADES][:searches]
    if len(pairs) < searches:
        sys.exit(f"at most {len(TRADES) * len(CITIES) * FEED} leads: add trades or cities")
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database or f"sqlite:///{tmp}/bench.db"
        async with replicas_process() as (maps_url, ps_url):
            settings = load_settings(
                environ={
                    "DATABASE_URL": url,
                    "LOG_LEVEL": "WARNING",
                    "LEADLAWK__MAPS__BASE_URL": maps_url,
                    "LEADLAWK__MAPS__NAVIGATIONS_PER_MINUTE": "600000",
                    "LEADLAWK__PAGESPEED__BASE_URL": ps_url,
                    "LEADLAWK__PAGESPEED__QUERIES_PER_100S": "80000",
                    "LEADLAWK__PAGESPEED__EXPECTED_LATENCY": "0.125",
                    "LEADLAWK__BROWSER__PAGES": "2",
                    "LEADLAWK__RESILIENCE__BULKHEAD__QUEUE_SIZE": str(searches + 10),
                }
            )
            progress = Progress(searches)
            clock = MonotonicClock()
            async with (
                open_store(url, clock=clock, migrate=True) as store,
                Pipeline(settings, store, Metrics(process=False), clock, progress, MemoryDeadLetters(), "bench")
                as pipeline,
            ):
                # Lighthouse's 10-40 s, times the stand-in's time_scale.
                async with (
                    aiohttp.ClientSession() as session,
                    session.post(f"{ps_url}/_faults", json={"latency_ms": {"min": 10_000, "max": 40_000}}) as resp,
                ):
                    resp.raise_for_status()
                sup = Supervisor("bench", pipeline.children(), strategy=Strategy.REST_FOR_ONE, max_restarts=20)
                ready = asyncio.Event()
                task = asyncio.create_task(sup.run(ready.set))
                await asyncio.wait_for(ready.wait(), 120)
                progress.started = time.monotonic()
                for i, (trade, city) in enumerate(pairs):
                    spec = {"id": f"bench{i}", "query": trade, "location": city, "limit": 500}
                    await pipeline.submit(parse_job_spec(spec, 65536))
                try:
                    await asyncio.wait_for(progress.done.wait(), 900)
                finally:
                    elapsed = time.monotonic() - progress.started
                    sup.request_stop()
                    await asyncio.wait_for(task, 60)
    report(progress, elapsed, searches)


def report(progress: Progress, elapsed: float, searches: int) -> None:
    per_minute = progress.written / elapsed * 60 if elapsed > 0 else 0.0
    after = [rss for leads, rss, _ in progress.samples if leads >= WARM_UP]
    growth = (max(after) - after[0]) / after[0] if len(after) >= 2 else 0.0
    print(
        f"{progress.written} leads scraped, enriched and written in {elapsed:.1f} s "
        f"over {searches} searches: {per_minute:.0f} leads/min"
    )
    print(f"RSS after warm-up ({WARM_UP} leads): {after[0] if after else 0:.1f} MB, growth {growth * 100:.1f} %")
    if progress.failed_jobs:
        print(f"jobs not succeeded: {len(progress.failed_jobs)}")
    print(
        orjson.dumps(
            {
                "bench": "pipeline",
                "leads": progress.written,
                "seconds": round(elapsed, 1),
                "leads_per_minute": round(per_minute, 1),
                "rss_mb": [round(rss, 1) for _, rss, _ in progress.samples],
                "rss_growth_after_warmup": round(growth, 4),
                "flat_within_10pct": growth <= 0.10,
                "jobs_not_succeeded": len(progress.failed_jobs),
            }
        ).decode()
    )


if __name__ == "__main__":
    uvloop.run(main())
