"""Deliveries per minute to the inbox replica: finished jobs' digests, signed webhook POSTs, end to end.

On its own PostgreSQL database (dropped at the end; ``LEADLAWK_BENCH_PG``, default
``postgresql://postgres@127.0.0.1:5432/test``), ``--jobs`` finished jobs of ``--leads`` qualified
leads each name one webhook destination, the inbox replica (in this process, on loopback). The
deliveries service runs as in the daemon (real clock, ``deliveries.concurrency``), and the clock
stops when the inbox holds every delivery with a valid signature. Reported: deliveries per minute
(median of ``--rounds``, min-max), and the same for making the deliveries alone (the ledger's
transaction per job).

Usage: python bench/deliveries.py [--jobs N] [--leads L] [--concurrency C] [--rounds R].
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import uvloop
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actors.clock import MonotonicClock
from leadlawk_daemon.deliveries.service import DeliveryService
from leadlawk_daemon.dependencies import Dependencies
from leadlawk_daemon.event_bus import EventBus
from leadlawk_daemon.metrics import Metrics
from leadlawk_daemon.replicas.inbox import Inbox, serve_inbox
from leadlawk_daemon.settings import load_settings
from leadlawk_daemon.store import open_store
from tests.databases import throwaway_database
from tests.support.deliveries import ENV, SECRET, Quiet, finished_job

ADMIN_DSN = os.environ.get("LEADLAWK_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")


async def one_round(jobs: int, leads: int, concurrency: int) -> dict[str, float]:
    clock = MonotonicClock()
    async with (
        throwaway_database(ADMIN_DSN, "leadlawk_bench_deliveries") as dsn,
        open_store(dsn, clock=clock, migrate=True, pool_max=concurrency + 4) as store,
        serve_inbox(inbox=Inbox(secret=SECRET.encode())) as (inbox, url, _),
    ):
        for j in range(jobs):
            await finished_job(store, f"bench-{j}", range(j * leads, (j + 1) * leads), notify=["inbox"])
        with tempfile.TemporaryDirectory() as tmp:
            config = {
                "destinations": {"inbox": {"type": "webhook", "url": f"{url}/hooks", "secret_env": "HOOK_SECRET"}},
                "deliveries": {"concurrency": concurrency},
                "sites": {"allowed_networks": ["127.0.0.0/8"]},
            }
            path = Path(tmp) / "bench.yaml"
            path.write_text(yaml.safe_dump(config), encoding="utf-8")
            settings = load_settings(path, environ=ENV)
        metrics, sink = Metrics(process=False), Quiet()
        service = DeliveryService(
            settings, store, EventBus(sink), metrics, clock, Dependencies(metrics, sink), secrets=ENV
        )
        began = time.perf_counter()
        for j in range(jobs):
            await service.make(f"bench-{j}")
        made = time.perf_counter() - began
        ready = asyncio.Event()
        task = asyncio.create_task(service.run(ready.set))
        sending = time.perf_counter()
        while len(inbox.delivered()) < jobs:
            inbox.arrived.clear()
            await asyncio.wait_for(inbox.arrived.wait(), 60)
        sent = time.perf_counter() - sending
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert all(h["signature_valid"] for h in inbox.webhooks)
        assert len([h for h in inbox.webhooks if h["status"] == 200]) == jobs, "a delivery arrived twice"
    return {"made_per_minute": jobs / made * 60, "delivered_per_minute": jobs / sent * 60}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--leads", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rounds = [uvloop.run(one_round(args.jobs, args.leads, args.concurrency)) for _ in range(args.rounds)]
    result: dict[str, Any] = {
        "jobs": args.jobs,
        "leads_per_digest": args.leads,
        "concurrency": args.concurrency,
        "load": os.getloadavg()[0],
    }
    for key in ("made_per_minute", "delivered_per_minute"):
        values = [r[key] for r in rounds]
        result[key] = round(statistics.median(values))
        result[f"{key}_range"] = [round(min(values)), round(max(values))]
        print(f"{key}: median {result[key]:,} (min {min(values):,.0f}, max {max(values):,.0f})")
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
