"""A small job behind a big one: how much longer it takes than on an idle daemon, fair lanes vs one FIFO.

    .venv/bin/python bench/fairness.py [--big-query Q --big-location L] [--backlog 500] [--quota 1000]

The whole pipeline (coordinator, scraper with real Chromium, enricher, writer) runs in process
against both offline replicas (bench/pipeline.py's), the PageSpeed stand-in with Lighthouse-shaped
latency (10-40 s) scaled down 200 times and the quota scaled to match (``--quota`` per 100 s), so
the PageSpeed pace is what the jobs compete for, as on Google's. Three runs, each on a fresh
database:

1. idle: the small job alone (``--small-limit`` 20 plumbers in Omaha, NE);
2. fair: the big job (an area job: every business of ``--big-location``, up to 5,000), then, once
   ``--backlog`` of its leads wait for PageSpeed, the small job; the enricher as the daemon has it:
   one mailbox lane per job served round-robin, and its workers waiting for call slots in their
   job's line (actors/fair_gate.py);
3. fifo: the same with the enricher as before issue 12: one FIFO mailbox, and its workers asking
   for PageSpeed call slots in the order they came.

The big job is cancelled once the small one has finished. Target: the small job within 2x its idle
time in the fair run. Last line: one JSON object {"bench": "fairness", ...}.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actors.clock import MonotonicClock
from actors.dead_letters import MemoryDeadLetters
from actors.fair_gate import FairGate
from actors.mailbox import Mailbox
from bench.pipeline import replicas_process
from leadlawk_daemon.jobspec import parse_job_spec
from leadlawk_daemon.metrics import Metrics
from leadlawk_daemon.pipeline import Pipeline
from leadlawk_daemon.settings import Settings, load_settings
from leadlawk_daemon.store import open_store
from supervisors.spec import Strategy
from supervisors.supervisor import Supervisor


class Finished:
    """The events sink: when each job finished, and how."""

    def __init__(self) -> None:
        self.at: dict[str, tuple[float, str]] = {}
        self.changed = asyncio.Event()

    def publish(self, type: str, /, **context: Any) -> None:
        if type == "job.finished":
            self.at[str(context["job_id"])] = (time.monotonic(), str(context.get("status")))
            self.changed.set()

    async def wait(self, job_id: str, within: float) -> tuple[float, str]:
        async with asyncio.timeout(within):
            while job_id not in self.at:
                self.changed.clear()
                await self.changed.wait()
        return self.at[job_id]


async def _scraped(pipeline: Pipeline, finished: Finished, job_id: str) -> float:
    """When the job's search was done (polled every 10 ms: good enough for a figure in seconds)."""
    while True:
        state = pipeline.runs.get(job_id)
        if (state is not None and state.scrape_done) or job_id in finished.at:
            return time.monotonic()
        await asyncio.sleep(0.01)


async def run(settings: Settings, mode: str, args: argparse.Namespace) -> dict[str, Any]:
    """One run on a fresh database: the small job's seconds from submission to its end."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        clock = MonotonicClock()
        finished = Finished()
        async with (
            open_store(url, clock=clock, migrate=True) as store,
            Pipeline(settings, store, Metrics(process=False), clock, finished, MemoryDeadLetters(), "bench")
            as pipeline,
        ):
            if mode == "fifo":
                # As before issue 12: one FIFO mailbox, and workers asking for call slots in arrival order.
                cell = pipeline.enricher
                cell.mailbox = Mailbox(cell.name, cell.settings.mailbox_capacity, 300.0, clock)
                pipeline.enrich_turns = FairGate(lambda: 1_000_000)
            sup = Supervisor("bench", pipeline.children(), strategy=Strategy.REST_FOR_ONE, max_restarts=20)
            ready = asyncio.Event()
            task = asyncio.create_task(sup.run(ready.set))
            try:
                await asyncio.wait_for(ready.wait(), 120)
                backlog = 0
                if mode != "idle":
                    big = {"id": "big", "query": args.big_query, "location": args.big_location,
                           "coverage": "area", "limit": 5000}
                    await pipeline.submit(parse_job_spec(big, 65536))
                    deadline = time.monotonic() + 600
                    while (backlog := pipeline.enricher.mailbox.depth) < args.backlog:
                        if time.monotonic() > deadline:
                            raise SystemExit(f"{mode}: the big job's backlog stayed at {backlog}")
                        await asyncio.sleep(0.2)
                small = {"id": "small", "query": "plumbers", "location": "Omaha, NE", "limit": args.small_limit}
                submitted = time.monotonic()
                await pipeline.submit(parse_job_spec(small, 65536))
                scraped = asyncio.create_task(_scraped(pipeline, finished, "small"))
                ended, status = await finished.wait("small", 900)
                seconds = ended - submitted
                scrape_s = (await scraped) - submitted
                lanes = getattr(pipeline.enricher.mailbox, "lanes", {})
                print(f"{mode:>4}: small job {status} in {seconds:6.2f} s, its search done after {scrape_s:.2f} s "
                      f"(enricher backlog {backlog} when it was submitted; lanes now {lanes})", flush=True)
                if mode != "idle":
                    await pipeline.cancel("big")
                return {"seconds": seconds, "scrape_s": scrape_s, "status": status, "backlog": backlog}
            finally:
                sup.request_stop()
                await asyncio.wait_for(task, 120)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--big-query", default="restaurants")
    parser.add_argument("--big-location", default="Chicago, IL")
    parser.add_argument("--small-limit", type=int, default=20)
    parser.add_argument("--backlog", type=int, default=500, help="big-job leads waiting for PageSpeed first")
    parser.add_argument("--quota", type=int, default=1000, help="PageSpeed queries per 100 s (scaled)")
    args = parser.parse_args()
    async with replicas_process() as (maps_url, ps_url):
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{ps_url}/_faults", json={"latency_ms": {"min": 10_000, "max": 40_000}}) as resp,
        ):
            resp.raise_for_status()
        settings = load_settings(
            environ={
                "LOG_LEVEL": "WARNING",
                "LEADLAWK__MAPS__BASE_URL": maps_url,
                "LEADLAWK__MAPS__NAVIGATIONS_PER_MINUTE": "600000",
                "LEADLAWK__PAGESPEED__BASE_URL": ps_url,
                "LEADLAWK__PAGESPEED__QUERIES_PER_100S": str(args.quota),
                "LEADLAWK__PAGESPEED__QUERIES_PER_DAY": "10000000",
                "LEADLAWK__PAGESPEED__EXPECTED_LATENCY": "0.125",
                "LEADLAWK__BROWSER__PAGES": "2",
            }
        )
        results = {mode: await run(settings, mode, args) for mode in ("idle", "fair", "fifo")}
    idle = results["idle"]["seconds"]
    ratios = {mode: results[mode]["seconds"] / idle for mode in ("fair", "fifo")}
    print(f"small job behind the big one: {ratios['fair']:.2f}x its idle time with fair lanes, "
          f"{ratios['fifo']:.2f}x with one FIFO (target: at most 2x)")
    print(orjson.dumps({
        "bench": "fairness",
        "idle_s": round(idle, 2),
        "fair_s": round(results["fair"]["seconds"], 2),
        "fifo_s": round(results["fifo"]["seconds"], 2),
        "fair_ratio": round(ratios["fair"], 2),
        "fifo_ratio": round(ratios["fifo"], 2),
        "scrape_s": {mode: round(r["scrape_s"], 2) for mode, r in results.items()},
        "backlog": {mode: results[mode]["backlog"] for mode in ("fair", "fifo")},
        "within_2x": ratios["fair"] <= 2.0,
        "statuses": {mode: r["status"] for mode, r in results.items()},
    }).decode())


if __name__ == "__main__":
    uvloop.run(main())
