"""The egress pool: one area job through 1 exit, then through 4, with the replica blocking per client.

    .venv/bin/python bench/egress.py [--per-minute 30] [--query restaurants] [--location "Chicago, IL"]

A real daemon (``leadlawk run``, SQLite, Chromium) searches the whole area (``coverage: "area"``,
the location's own map) of the Maps replica through the local proxies replica
(``leadlawk_daemon/replicas/proxy.py``: each proxy leaves from its own loopback address, so the
replica counts each exit as one client). Each exit's politeness budget is ``--per-minute``
navigations (the default budget, 30: the wall time is the budget's, as it is on Google); the
replica's rate limit is just over it (``per_minute + 2`` a minute per client, 60 s of ``/sorry/``
past it). In the 4-exit run, once half of the 1-exit run's cells are done, exit1 (127.0.0.12) is
rate-limited hard (1 a minute, 20 s of ``/sorry/``) until its breaker opens; its cells move to the
other exits, it cools down (``maps.egress_cooldown`` 5 s, doubling) and comes back. (Not in the
1-exit run: there the one exit blocked is Google's outage by definition, which the Maps breaker
waits out.)

Figures per run: wall time from submission to the job's end, businesses stored against the
replica's ground truth for the area, duplicates, the replica's navigations and blocks per client,
whether the Google Maps breaker opened (the daemon's log), exit1's navigations after its block.
The last line is one JSON object; the 4-exit run's wall time over the 1-exit run's is the figure
(target <= 0.35).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from leadlawk_daemon.replicas.maps import serve_maps_replica
from leadlawk_daemon.replicas.proxy import ProxyFleet
from tests.daemon_process import DaemonProcess
from tests.waiting import eventually

HARD = {"per_minute": 1, "cooldown_s": 20}
LIMIT_COOLDOWN_S = 60


async def call(
    http: aiohttp.ClientSession, method: str, url: str, body: Any = None, params: dict[str, str] | None = None
) -> Any:
    async with http.request(method, url, json=body, params=params) as response:
        response.raise_for_status()
        return await response.json()


def stored(db: Path, job_id: str) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [row[0] for row in conn.execute("SELECT place_id FROM job_leads WHERE job_id = ?", (job_id,))]


async def run(
    base: str, fleet: ProxyFleet, exits: int, args: argparse.Namespace, half_cells: int | None
) -> dict[str, Any]:
    limit = {"per_minute": int(args.per_minute) + 2, "cooldown_s": LIMIT_COOLDOWN_S}
    egress = [{"url": p.url_with("${EXIT_PASSWORD}"), "name": f"exit{p.index}"} for p in fleet.proxies[:exits]]
    env = {
        "LEADLAWK__MAPS__BASE_URL": base,
        "LEADLAWK__MAPS__NAVIGATIONS_PER_MINUTE": str(args.per_minute),
        "LEADLAWK__MAPS__EGRESS": json.dumps(egress),
        "LEADLAWK__MAPS__EGRESS_COOLDOWN": "5s",
        "LEADLAWK__MAPS__EGRESS_MAX_COOLDOWN": "40s",
        "LEADLAWK__BROWSER__PAGES": "1",
        "LEADLAWK__JOBS__PROGRESS_INTERVAL": "500ms",
        "LEADLAWK__PAGESPEED__BASE_URL": "http://127.0.0.1:9",
        "EXIT_PASSWORD": fleet.password,
        "PAGESPEED_API_KEY": "AIzaBenchKeyNeverUsed",
        "LOG_LEVEL": "INFO",
    }
    spec = {
        "id": f"egress-{exits}",
        "query": args.query,
        "location": args.location,
        "coverage": "area",
        "limit": 10_000,
        "pagespeed": {"enabled": False},
    }
    with tempfile.TemporaryDirectory(prefix="bench-egress-") as tmp:
        async with aiohttp.ClientSession() as http, DaemonProcess(Path(tmp), env=env) as daemon:
            await call(http, "POST", f"{base}/_stats/reset")
            await call(http, "POST", f"{base}/_faults", {"rate_limit": limit})
            await daemon.wait_status("/health/ready", 200, within=120)
            started = time.monotonic()
            code, answer = await daemon.post("/jobs", spec)
            if code != 202:
                raise SystemExit(f"the job was refused: {code} {answer}")
            blocked_at: int | None = None
            blocked_after_s: float | None = None
            if half_cells is not None:

                async def halfway() -> bool:
                    _, job = await daemon.get(f"/jobs/{spec['id']}")
                    return int(((job.get("progress") or {}).get("area") or {}).get("cells_done", 0)) >= half_cells

                await eventually(halfway, 3600, "half the cells", every=0.2)
                hard = {**limit, "clients": {"127.0.0.12": HARD}}
                await call(http, "POST", f"{base}/_faults", {"rate_limit": hard})
                blocked_after_s = time.monotonic() - started
                clients = (await call(http, "GET", f"{base}/_stats"))["clients"]
                blocked_at = clients.get("127.0.0.12", {}).get("navigations", 0)

                async def exit1_open() -> bool:
                    _, ready = await daemon.get("/health/ready")
                    return any(e["egress"] == "exit1" and e["state"] == "open" for e in ready.get("egress", []))

                await eventually(exit1_open, 600, "exit1 opened by its block", every=0.2)
                # The hard limit lifts; the replica's cool-down for exit1 (20 s) still runs out.
                await call(http, "POST", f"{base}/_faults", {"rate_limit": limit})

            async def finished() -> dict[str, Any] | None:
                _, job = await daemon.get(f"/jobs/{spec['id']}")
                return dict(job) if job.get("status") in ("succeeded", "failed", "cancelled", "partial") else None

            job = await eventually(finished, 3600, "the job's end", every=0.2)
            wall = time.monotonic() - started
            stats = await call(http, "GET", f"{base}/_stats")
            ready = (await daemon.get("/health/ready"))[1]
            log = daemon.log_lines()
        ids = stored(Path(tmp) / "daemon.db", spec["id"])
    opened = [
        line for line in log if line.get("event") == "circuit breaker changed" and line.get("breaker") == "google_maps"
    ]
    changes = [
        {k: line.get(k) for k in ("egress", "from", "to", "reason", "cooldown_s")}
        for line in log
        if line.get("event") == "egress exit changed"
    ]
    clients = stats.get("clients", {})
    row: dict[str, Any] = {
        "exits": exits,
        "status": job["status"],
        "wall_s": round(wall, 1),
        "stored": len(ids),
        "duplicates": len(ids) - len(set(ids)),
        "ids": set(ids),
        "cells": ((job.get("progress") or {}).get("area") or {}).get("cells_done"),
        "navigations": stats.get("navigations"),
        "clients": clients,
        "maps_breaker_opened": bool(opened),
        "egress_changes": changes,
        "egress_at_end": ready.get("egress"),
    }
    if blocked_at is not None:
        row["exit1_blocked_after_s"] = round(blocked_after_s or 0.0, 1)
        row["exit1_navigations_after_block"] = clients.get("127.0.0.12", {}).get("navigations", 0) - blocked_at
    return row


async def main(args: argparse.Namespace) -> dict[str, Any]:
    async with (
        serve_maps_replica("127.0.0.1", 0) as base,
        ProxyFleet(4) as fleet,
        aiohttp.ClientSession() as http,
    ):
        where = {"q": args.query, "location": args.location, "coverage": "area"}
        truth_body = await call(http, "GET", f"{base}/_answers", params=where)
        truth = {a["place_id"] for a in truth_body["answers"]}
        print(f"{args.query!r} in {args.location!r}: {len(truth):,} businesses in the area", flush=True)
        one = await run(base, fleet, 1, args, None)
        print(f"1 exit: {one['wall_s']} s, {one['status']}, {one['stored']} stored", flush=True)
        half = max(1, int(one["cells"] or 2) // 2)
        four = await run(base, fleet, 4, args, half)
        print(f"4 exits: {four['wall_s']} s, {four['status']}, {four['stored']} stored", flush=True)
    for row in (one, four):
        ids = row.pop("ids")
        row["coverage_pct"] = round(100 * len(ids & truth) / max(1, len(truth)), 2)
        row["outside_truth"] = len(ids - truth)
    ratio = four["wall_s"] / one["wall_s"]
    print(f"wall time 4 exits / 1 exit: {ratio:.3f} (target <= 0.35)")
    return {
        "bench": "egress",
        "query": args.query,
        "location": args.location,
        "ground_truth": len(truth),
        "per_minute_per_exit": args.per_minute,
        "runs": [one, four],
        "ratio_4_to_1": round(ratio, 3),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--query", default="restaurants")
    parser.add_argument("--location", default="Chicago, IL")
    parser.add_argument("--per-minute", type=float, default=30.0)
    summary = uvloop.run(main(parser.parse_args()))
    print(orjson.dumps(summary).decode())
