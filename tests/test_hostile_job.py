"""A job survives the hostile web (issue 20's first "Done when").

A real daemon process reads the websites of a 300-lead job through the websites replica with a
fifth of the sites hostile (:mod:`leadlawk_daemon.replicas.sites_hostile`): pathological regex
inputs, 20,000 addresses or tel: links, a gzip bomb, bogus charsets, redirects to loopback (a
listener of the replica's own counts whatever reaches it) and to the metadata address, redirect
chains, a one-byte-a-second drip and a backtracking robots rule. The job must end ``succeeded``,
every lead written, each hostile site recorded with the status ``/_answers`` names, nothing sent
to loopback or 169.254.169.254, the egress breaker closed throughout, and the daemon's event loop
responsive: ``leadlawk_event_loop_lag_seconds`` p99 under 50 ms and nothing at or over 250 ms.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from leadlawk_daemon.replicas.sites import SitesReplica
from leadlawk_daemon.replicas.sites_hostile import SHAPES
from leadlawk_daemon.sites.extract import site_key
from tests.daemon_process import DaemonProcess
from tests.waiting import eventually

LEADS = 300
HOSTILE = 0.2
# The search and the replica's seed are chosen so that the hostile fifth holds every shape
# (asserted below: a change of the generators that loses one fails here, not silently).
QUERY, LOCATION, SITES_SEED = "plumbers", "Omaha, NE", 9
TIMEOUT_S = 6  # sites.timeout: the drip is cut here, and each answer of a chain comes well within it
CHAIN_DELAY_MS = 3500  # each answer of a redirect chain: 5 hosts x (robots.txt + page) = 35 s in all
# sites.site_budget: one site's whole read, which the chain must pass; ample for any other site,
# whose pages may queue for the one parse worker on a loaded machine.
SITE_BUDGET_S = 20
LAG_P99_S, LAG_MAX_S = 0.05, 0.25


pytestmark = [
    pytest.mark.browser,
    # It measures the daemon's event-loop lag, so it runs alone after the parallel phase of
    # `make test`: beside two other workers' daemons and browsers on 2 cores, 6 of 437 samples
    # passed 50 ms from the kernel not running the loop (a fresh-clone run), not from our code.
    pytest.mark.alone,
    pytest.mark.timeout(420),
    pytest.mark.maps_replica(max_results=LEADS),
    pytest.mark.sites_replica(seed=SITES_SEED),
]


async def _json(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.request(
        method, url, json=body, timeout=aiohttp.ClientTimeout(total=10)
    ) as response:
        return response.status, orjson.loads(await response.read())


async def _metrics(daemon: DaemonProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with aiohttp.ClientSession() as http, http.get(
        daemon.base + "/metrics", timeout=aiohttp.ClientTimeout(total=5)
    ) as response:
        assert response.status == 200
        text = await response.text()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _lag_buckets(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> dict[float, float]:
    """Cumulative counts of ``leadlawk_event_loop_lag_seconds`` by upper bound."""
    return {float(dict(labels)["le"]): value for (name, labels), value in metrics.items()
            if name == "leadlawk_event_loop_lag_seconds_bucket"}


def _quantile_bound(buckets: dict[float, float], q: float) -> float:
    """The upper bound of the bucket holding quantile ``q`` of the samples."""
    total = buckets[math.inf]
    return next(bound for bound in sorted(buckets) if buckets[bound] >= q * total)


def _max_bound(buckets: dict[float, float]) -> float:
    """The upper bound of the highest bucket any sample fell in (0 without samples)."""
    worst, below = 0.0, 0.0
    for bound in sorted(buckets):
        if buckets[bound] > below:
            worst, below = bound, buckets[bound]
    return worst


def _breaker(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> float:
    return metrics.get(("leadlawk_circuit_breaker_state", (("breaker", "sites"),)), -1.0)


async def _site_rows(pg: str, job_id: str) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """The job's leads (place_id, the website stored, the site it is linked to), and each site's row."""
    conn = await asyncpg.connect(pg)
    try:
        leads = await conn.fetch("SELECT j.place_id, l.website, s.site FROM job_leads j JOIN leads l USING (place_id) "
                                 "LEFT JOIN lead_sites s USING (place_id) WHERE j.job_id = $1", job_id)
        rows = await conn.fetch("SELECT s.site, s.status, s.reason, s.truncated, s.capped, s.emails FROM sites s "
                                "WHERE s.site IN (SELECT site FROM lead_sites JOIN job_leads USING (place_id) "
                                "WHERE job_id = $1)", job_id)
    finally:
        await conn.close()
    sites = {}
    for row in rows:
        record = dict(row)
        for name in ("capped", "emails"):
            if isinstance(record[name], str):
                record[name] = orjson.loads(record[name])
        sites[row["site"]] = record
    return [dict(lead) for lead in leads], sites


def _mismatch(shape: str, site: str, expect: dict[str, Any], row: dict[str, Any] | None) -> str | None:
    if row is None:
        return f"{shape} {site}: no site row"
    got = {"status": row["status"], "reason": row["reason"]}
    wrong = row["status"] != expect["status"]
    if expect["reason"] is not None and expect["reason"] not in (row["reason"] or ""):
        wrong = True
    if "truncated" in expect and row["truncated"] != expect["truncated"]:
        wrong, got["truncated"] = True, row["truncated"]
    if "capped" in expect and (row["capped"] or {}) != expect["capped"]:
        wrong, got["capped"] = True, row["capped"]
    if "emails" in expect and sorted(row["emails"] or []) != expect["emails"]:
        wrong, got["emails"] = True, (row["emails"] or [])[:5]
    return f"{shape} {site}: expected {expect}, recorded {got}" if wrong else None


async def test_a_300_lead_job_survives_the_hostile_web(
    tmp_path: Path, maps_url: str, sites_replica: SitesReplica, fresh_pg: str
) -> None:
    faults = {"hostile": HOSTILE, "chain_delay_ms": CHAIN_DELAY_MS}
    status, _ = await _json("POST", sites_replica.base_url + "/_faults", faults)
    assert status == 200
    _, listing = await _json("GET", f"{maps_url}/_answers?q={QUERY}&location={LOCATION}")
    assert len(listing["answers"]) == LEADS

    env = {
        "DATABASE_URL": fresh_pg,
        "LEADLAWK__MAPS__BASE_URL": maps_url,
        "LEADLAWK__MAPS__NAVIGATIONS_PER_MINUTE": "6000",
        "LEADLAWK__SITES__ENABLED": "true",
        "LEADLAWK__SITES__PROXY": sites_replica.base_url,
        "LEADLAWK__SITES__CA_FILE": str(sites_replica.ca_path),
        "LEADLAWK__SITES__TIMEOUT": f"{TIMEOUT_S}s",
        "LEADLAWK__SITES__SITE_BUDGET": f"{SITE_BUDGET_S}s",
        # sites.allowed_networks stays empty: the replica's loopback listener must be refused.
        "LEADLAWK__HEALTH__LOOP_LAG_INTERVAL": "50ms",  # more samples for the percentiles
    }
    async with DaemonProcess(tmp_path, env=env) as daemon:
        await daemon.wait_status("/health/ready", 200, within=90)
        before = _lag_buckets(await _metrics(daemon))
        spec = {"query": QUERY, "location": LOCATION, "limit": LEADS, "pagespeed": {"enabled": False}}
        status, accepted = await _json("POST", daemon.base + "/jobs", spec)
        assert status == 202, accepted
        job_id = accepted["id"]
        breaker_seen, job = 0.0, None

        async def finished() -> bool:
            nonlocal breaker_seen, job
            breaker_seen = max(breaker_seen, _breaker(await _metrics(daemon)))
            _, job = await daemon.get(f"/jobs/{job_id}")
            return job is not None and job["status"] in ("succeeded", "failed", "cancelled", "partial")

        began = time.monotonic()
        # Polled once a second (a scrape a second): the breaker, once open, stays open 60 s.
        await eventually(finished, 360, lambda: f"job {job_id} finished (last: {job})", every=1.0)
        took = time.monotonic() - began
        after = await _metrics(daemon)
        breaker_seen = max(breaker_seen, _breaker(after))
        log_tail = daemon.log_text()[-3000:]
    assert job is not None
    assert job["status"] == "succeeded", f"job: {job}\nlog:\n{log_tail}"

    lag = {bound: count - before.get(bound, 0.0) for bound, count in _lag_buckets(after).items()}
    samples = lag[math.inf]
    p99 = _quantile_bound(lag, 0.99)
    over_max = samples - lag[LAG_MAX_S]
    worst = _max_bound(lag)

    leads, rows = await _site_rows(fresh_pg, job_id)
    unread = [lead for lead in leads if lead["website"] and lead["site"] not in rows]
    # What the replica says of each website the leads carry (some listings show none: not read).
    keys = sorted({site_key(urlsplit(lead["website"]).hostname or "") for lead in leads if lead["website"]})
    _, truth = await _json("GET", sites_replica.base_url + "/_answers?" + "&".join(f"site={k}" for k in keys))
    hostile = {a["site"]: a for a in truth["answers"] if a["hostile"]}
    problems = [p for site, a in sorted(hostile.items())
                if (p := _mismatch(a["hostile"], site, a["expect"], rows.get(site))) is not None]
    _, stats = await _json("GET", sites_replica.base_url + "/_stats")

    statuses = Counter(row["status"] for row in rows.values())
    reasons = Counter(re.sub(r"\d+(\.\d+)?", "N", row["reason"] or "") for row in rows.values() if row["reason"])
    by_shape = Counter((a["hostile"], (rows.get(site) or {}).get("status")) for site, a in hostile.items())
    print(f"\nhostile job: {len(leads)} leads in {took:.1f} s, {len(rows)} sites ({len(hostile)} hostile); "
          f"statuses {dict(statuses)}; reasons {dict(reasons.most_common())}")
    print(f"event-loop lag over {samples:.0f} samples: p99 <= {p99 * 1000:g} ms, max <= {worst * 1000:g} ms "
          f"({over_max:.0f} samples at or over {LAG_MAX_S * 1000:g} ms); cumulative by bound (s): "
          f"{ {b: int(n) for b, n in sorted(lag.items())} }")
    print(f"egress breaker: worst state seen {breaker_seen:g} (0 closed); reached loopback/metadata: "
          f"{stats['reached_forbidden']} via the proxy {stats['forbidden_targets']}, "
          f"{stats['listener_requests']} at the listener")
    print("hostile shapes -> recorded status:", dict(sorted(by_shape.items(), key=str)))
    for problem in problems:
        print("  MISMATCH", problem)

    assert len(leads) == LEADS
    assert unread == [], f"{len(unread)} leads with a website have no site recorded"
    assert set(Counter(a["hostile"] for a in hostile.values())) == set(SHAPES), "every shape was in the job"
    assert stats["reached_forbidden"] == 0, stats
    assert stats["listener_requests"] == 0, stats
    assert breaker_seen == 0, "the egress breaker opened (or half-opened) during the job"
    assert problems == [], "\n".join(problems)
    assert p99 <= LAG_P99_S, f"event-loop lag p99 <= {p99 * 1000:g} ms"
    assert over_max == 0, f"{over_max:.0f} event-loop lag samples at or over {LAG_MAX_S * 1000:g} ms"
