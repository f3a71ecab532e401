"""Site enrichment against the websites replica's ground truth: accuracy, throughput, memory.

1. Accuracy: the websites of the Maps replica's businesses (a few trades × towns, deduplicated
   by origin: chains share a site) are read through the replica as a proxy, with the default
   limits (2 requests per host, 2 MB per page, 3 extra pages). Emails are scored as precision and
   recall over all sites; status, CMS, HTTPS, viewport and copyright year as the share of sites
   where the verdict matches (the content verdicts on sites whose pages can be read).
2. Throughput: sites per minute over the whole run, ``--sites`` sites (default 5,000; after the
   Maps businesses, more ``*.example`` hosts made up by number).
3. RSS: our process's resident memory sampled every 500 sites; flat means the last sample is
   within 10 % of the one after warm-up (2,000 sites). The replica runs in its own process. The
   run's origins are all different, so the per-origin cache would only hold them: it is off
   (``ttl`` 0) so that what is measured is what reading a site leaves behind; the cache's own
   cost, bounded by ``sites.cache_size``, is measured apart (bytes per cached report).
4. The cap: the Python heap's peak while reading one 3 MB page and one endless body, each cut at
   ``sites.max_bytes``; both must stay near the cap, not the body's size.

Usage: ``python bench/site.py [--sites N]``. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import subprocess
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actors.clock import MonotonicClock
from bench.pipeline import rss_mb
from leadlawk_daemon.replicas.maps_business import generate_answer_set
from leadlawk_daemon.replicas.sites_content import answers, profile
from leadlawk_daemon.settings import load_settings
from leadlawk_daemon.sites import SiteClient, SiteReport
from leadlawk_daemon.sites.demand import SITE_READ, site_limit
from leadlawk_daemon.sites.extract import site_key

SEED = 0
TRADES = ("plumbers", "roofers", "dentists", "hair salons", "pizza", "lawyers", "hvac", "landscaping",
          "auto repair", "cleaning", "veterinarians", "gyms", "bakeries", "florists", "pest control")
TOWNS = ("Omaha, NE", "Lincoln, NE", "Des Moines, IA", "Kansas City, MO", "Denver, CO")
WARM_UP = 2000  # as bench/pipeline.py: allocator pools and connection caches settle first


def maps_websites() -> list[str]:
    seen: dict[str, str] = {}
    for trade in TRADES:
        for town in TOWNS:
            for business in generate_answer_set(trade, town, SEED, 120).businesses:
                if business.website:
                    seen.setdefault(site_key(business.website.split("/")[2]), business.website)
    return list(seen.values())


@contextlib.asynccontextmanager
async def replica_process() -> AsyncIterator[tuple[str, str]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "leadlawk_daemon", "replica", "sites", "--seed", str(SEED),
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        base = (await process.stdout.readline()).decode().strip()
        line = (await process.stdout.readline()).decode()
        ca = line.split("sites.ca_file:")[1].strip()
        yield base, ca
    finally:
        process.terminate()
        await process.wait()


Verdicts = tuple[str, frozenset[str], str, str | None, str | None, bool | None, bool | None, int | None]


def verdicts(host: str, report: SiteReport) -> Verdicts:
    """What is scored, kept small: the run's memory is measured too."""
    return (host, frozenset(report.emails), report.status.value, report.reason, report.cms, report.https,
            report.mobile_viewport, report.copyright_year)


def score(reports: list[Verdicts]) -> dict[str, Any]:
    true_pos = false_pos = false_neg = 0
    checks: dict[str, list[bool]] = {k: [] for k in ("status", "cms", "https", "viewport", "copyright")}
    misses: list[str] = []
    for host, got, status, reason, cms, https, viewport, year in reports:
        truth = answers(profile(host, SEED))
        expected = set(truth["emails"])
        true_pos += len(expected & got)
        false_pos += len(got - expected)
        false_neg += len(expected - got)
        checks["status"].append(status == truth["status"])
        if truth["https"] is not None:
            checks["https"].append(https == truth["https"])
        if truth["cms"] is not None:
            checks["cms"].append(cms == truth["cms"])
            checks["viewport"].append(viewport == truth["mobile_viewport"])
            checks["copyright"].append(year == truth["copyright_year"])
        if (got != expected or status != truth["status"]) and len(misses) < 5:
            misses.append(f"{host}: got {sorted(got)} {status} ({reason}), "
                          f"expected {sorted(expected)} {truth['status']}")
    for line in misses:
        print("  miss:", line)
    return {
        "email_precision": round(true_pos / max(1, true_pos + false_pos), 4),
        "email_recall": round(true_pos / max(1, true_pos + false_neg), 4),
        "emails_expected": true_pos + false_neg,
        **{f"{name}_accuracy": round(sum(v) / max(1, len(v)), 4) for name, v in checks.items()},
    }


def report_kb(reports: list[SiteReport]) -> float:
    """Python heap per report, as the per-origin cache would hold them (copies of these)."""
    tracemalloc.start()
    try:
        copies = [copy.deepcopy(report) for report in reports]
        size, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return size / max(1, len(copies)) / 1024


async def heap_peak(client: SiteClient, url: str) -> float:
    """MB of Python heap at the peak while reading ``url`` (its cache entry forgotten first)."""
    client.cache.forget(site_key(url.split("/")[2]))
    tracemalloc.start()
    try:
        await client.inspect(url)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 1e6


async def main(total: int) -> dict[str, Any]:
    websites = maps_websites()
    extra = [f"http://bench-site-{n}.example/" for n in range(max(0, total - len(websites)))]
    urls = (websites + extra)[:total]
    async with replica_process() as (proxy, ca_file):
        settings = load_settings().sites.model_copy(
            update={"proxy": proxy, "ca_file": ca_file, "timeout": 5.0, "ttl": 0.0})
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=len(urls))
        for url in urls:
            queue.put_nowait(url)
        busy = 0  # urls taken by a worker: waiting for a slot of the limit, or being read
        limit = site_limit(settings, clock=MonotonicClock(), backlog=lambda: queue.qsize() + busy)
        limit_peak = 0
        async with SiteClient(settings, limit=limit) as client:
            reports: list[Verdicts] = []
            sample: list[SiteReport] = []  # a thousand reports, to weigh what the cache would hold
            done = 0
            samples: list[tuple[int, float]] = []
            started = time.perf_counter()

            async def worker() -> None:
                while not queue.empty():
                    url = queue.get_nowait()
                    nonlocal done, busy, limit_peak
                    busy += 1
                    try:
                        report = await client.inspect(url)
                    finally:
                        busy -= 1
                    limit_peak = max(limit_peak, limit.limit)
                    done += 1
                    if len(reports) < len(websites):
                        reports.append(verdicts(url.split("/")[2], report))
                    if len(sample) < 1000:
                        sample.append(report)
                    if done % 500 == 0:
                        samples.append((done, rss_mb()))
                        print(f"sites {done:>6}  rss {samples[-1][1]:7.1f} MB  "
                              f"after {time.perf_counter() - started:6.1f} s", flush=True)

            await asyncio.gather(*(worker() for _ in range(settings.max_in_flight)))
            elapsed = time.perf_counter() - started
            accuracy = score(reports)
            peaks = {"huge_page": await heap_peak(client, "http://t-huge-bench.example/"),
                     "endless_body": await heap_peak(client, "http://t-endless-bench.example/")}
            per_host_peak = max(client.fetcher.hosts.peak.values(), default=0)
            cached_kb = report_kb(sample)
    after = [rss for n, rss in samples if n >= WARM_UP]
    growth = (after[-1] - after[0]) / after[0] if len(after) > 1 else 0.0
    cap_mb = settings.max_bytes / 1e6
    result = {
        "bench": "site",
        "sites": done,
        "maps_sites_scored": len(reports),
        **accuracy,
        "sites_per_minute": round(done / elapsed * 60),
        "per_host_peak": per_host_peak,
        "in_flight_limit_peak": limit_peak,
        "site_latency_mean_s": round(limit.estimate(SITE_READ).mean, 3),
        "rss_after_warmup_mb": round(after[0], 1) if after else None,
        "rss_end_mb": round(after[-1], 1) if after else None,
        "rss_growth": round(growth, 4),
        "cache_kb_per_site": round(cached_kb, 2),
        "cache_mb_at_cache_size": round(cached_kb * settings.cache_size / 1024, 1),
        "cap_mb": round(cap_mb, 2),
        "heap_peak_huge_page_mb": round(peaks["huge_page"], 2),
        "heap_peak_endless_body_mb": round(peaks["endless_body"], 2),
    }
    print(f"emails: precision {result['email_precision']}, recall {result['email_recall']} "
          f"({result['emails_expected']} expected on {result['maps_sites_scored']} sites)")
    print(f"verdicts right: status {result['status_accuracy']}, cms {result['cms_accuracy']}, "
          f"https {result['https_accuracy']}, viewport {result['viewport_accuracy']}, "
          f"copyright {result['copyright_accuracy']}")
    print(f"throughput: {result['sites_per_minute']} sites/min, at most {per_host_peak} requests per host at once")
    print(f"RSS {result['rss_after_warmup_mb']} MB after {WARM_UP} sites, {result['rss_end_mb']} MB at the end "
          f"({growth * 100:+.1f} %)")
    print(f"the per-origin cache holds {cached_kb:.2f} KB per site: {result['cache_mb_at_cache_size']} MB "
          f"when full ({settings.cache_size} sites)")
    print(f"heap peak reading a 3 MB page: {result['heap_peak_huge_page_mb']} MB, an endless body: "
          f"{result['heap_peak_endless_body_mb']} MB (cap {cap_mb:.2f} MB)")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sites", type=int, default=5000)
    args = parser.parse_args()
    print(orjson.dumps(uvloop.run(main(args.sites))).decode())
