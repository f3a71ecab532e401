"""Area coverage: one search, a fixed grid (as gosom's), and our adaptive split, on one replica area.

    .venv/bin/python bench/coverage.py [--query restaurants] [--location "Chicago, IL"] [--driver chromium|http]

The area is the location's own extent as its page reports it; the ground truth is the replica's
``/_answers?coverage=area`` for that area. Each strategy is judged by coverage (share of the
ground truth found inside the area), navigations (searches opened), and the minutes those take
at the default politeness (``maps.navigations_per_minute``, 30).

* single: today's ``coverage: "first"``: one search of the location, at most 120 results.
* grid: gosom's ``-grid-cell``: the area's box cut into 1 km cells, one search per cell at zoom 15.
* adaptive: ours (``leadlawk_daemon/maps/coverage.py``).

``--driver chromium`` (the default) runs ours through the real MapsScraper and Chromium, the
navigations counted by the replica's ``/_stats``; the single search and the grid (750+ searches)
are answered by the replica's ``/_answers?at=…``, which lists exactly what that search's feed
shows (``tests/test_area_replica.py`` checks that). ``--driver http`` answers ours that way too.
Last line: one JSON object {"bench": "coverage", ...}.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actors.clock import MonotonicClock
from leadlawk_daemon.listing import Listing
from leadlawk_daemon.maps.area import Bbox, Viewport
from leadlawk_daemon.maps.area_search import search_area
from leadlawk_daemon.maps.browser import BrowserPool
from leadlawk_daemon.maps.coverage import CoveragePlan
from leadlawk_daemon.maps.scraper import MapsScraper, ScrapeRequest
from leadlawk_daemon.replicas.maps import serve_maps_replica
from leadlawk_daemon.resilience.breaker import CircuitBreaker
from leadlawk_daemon.settings import BrowserSettings, MapsSettings

W, H = 1280, 720
POLITE_PER_MINUTE = 30.0
GRID_CELL_KM = 1.0
GRID_ZOOM = 15.0


@dataclass(frozen=True)
class Hit:
    place_id: str | None
    latitude: float | None
    longitude: float | None


@dataclass
class Result:
    strategy: str
    driver: str
    found: set[str]
    navigations: int
    seconds: float

    def row(self, truth: set[str]) -> dict[str, Any]:
        covered = len(self.found & truth)
        return {
            "strategy": self.strategy,
            "driver": self.driver,
            "found_in_area": covered,
            "coverage_pct": round(100 * covered / len(truth), 2),
            "navigations": self.navigations,
            "polite_minutes": round(self.navigations / POLITE_PER_MINUTE, 2),
            "wall_seconds": round(self.seconds, 1),
        }


class Replica:
    def __init__(self, base_url: str, session: aiohttp.ClientSession, query: str, location: str) -> None:
        self.base_url, self.session, self.query, self.location = base_url, session, query, location

    async def get(self, path: str, **params: str) -> dict[str, Any]:
        async with self.session.get(self.base_url + path, params=params) as response:
            response.raise_for_status()
            body: dict[str, Any] = await response.json()
            return body

    async def listed(self, viewport: Viewport | None) -> list[Hit]:
        """What one search lists: of the location (no viewport) or of the viewport (query alone)."""
        if viewport is None:
            body = await self.get("/_answers", q=self.query, location=self.location)
        else:
            body = await self.get("/_answers", q=self.query, at=viewport.url_segment()[1:-1])
        return [Hit(a["place_id"], a["latitude"], a["longitude"]) for a in body["answers"]]


def in_area(hits: list[Hit], area: Bbox) -> set[str]:
    return {
        h.place_id for h in hits
        if h.place_id and h.latitude is not None and h.longitude is not None and area.contains(h.latitude, h.longitude)
    }


async def single(replica: Replica, area: Bbox) -> Result:
    started = time.perf_counter()
    hits = await replica.listed(None)
    return Result("single search", "http", in_area(hits, area), 1, time.perf_counter() - started)


async def grid(replica: Replica, area: Bbox) -> Result:
    started = time.perf_counter()
    rows = max(1, math.ceil(area.height_km / GRID_CELL_KM))
    cols = max(1, math.ceil(area.width_km / GRID_CELL_KM))
    found: set[str] = set()
    for cell in area.grid(rows, cols):
        lat, lng = cell.centre
        found |= in_area(await replica.listed(Viewport(lat, lng, GRID_ZOOM, W, H)), area)
    return Result(f"fixed grid ({GRID_CELL_KM:g} km, zoom {GRID_ZOOM:g})", "http", found, rows * cols,
                  time.perf_counter() - started)


async def adaptive_http(replica: Replica, area: Bbox) -> Result:
    started = time.perf_counter()
    plan = CoveragePlan(area, width_px=W, height_px=H, limit=10_000)
    while (cell := plan.next_cell()) is not None:
        plan.record(cell, await replica.listed(plan.viewport(cell)))
    return Result("adaptive (ours)", "http", set(plan.seen), plan.cells_done, time.perf_counter() - started)


async def adaptive_chromium(replica: Replica, area: Bbox) -> Result:
    browser = BrowserSettings(executable=None, headless=True, pages=1, page_recycle_after=50,
                              browser_recycle_after=400, memory_limit_mb=1536, launch_timeout=30.0)
    maps = MapsSettings(base_url=replica.base_url, language="en", navigations_per_minute=600_000,
                        navigation_timeout=30.0, scroll_timeout=10.0, max_idle_scrolls=4,
                        viewport_width=W, viewport_height=H)
    clock = MonotonicClock()
    breaker = CircuitBreaker("google_maps", failure_threshold=5, reset_timeout=60.0, call_timeout=None, clock=clock)
    found: list[str] = []

    async def keep(listing: Listing, _rank: int) -> None:
        found.append(listing.place_id or "")

    async with replica.session.post(replica.base_url + "/_stats/reset") as response:
        response.raise_for_status()
    started = time.perf_counter()
    async with BrowserPool(browser) as pool:
        scraper = MapsScraper(pool, maps, breaker=breaker, clock=clock)
        plan = CoveragePlan(area, width_px=W, height_px=H, limit=10_000)
        await search_area(scraper, plan, ScrapeRequest(replica.query), keep)
    seconds = time.perf_counter() - started
    stats = await replica.get("/_stats")
    if len(found) != len(set(found)):
        raise SystemExit("adaptive: a business was emitted twice")
    return Result("adaptive (ours)", "chromium", set(found), int(stats["navigations"]), seconds)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    async with serve_maps_replica("127.0.0.1", 0, viewport_px=(W, H)) as base_url, aiohttp.ClientSession() as session:
        replica = Replica(base_url, session, args.query, args.location)
        truth_body = await replica.get("/_answers", q=args.query, location=args.location, coverage="area")
        area = Bbox(*truth_body["area"]["bbox"])
        truth = {a["place_id"] for a in truth_body["answers"]}
        print(f"area: {args.query!r} in {args.location!r}, the location's map, {area.height_km:.1f} km N-S × "
              f"{area.width_km:.1f} km E-W ({area.area_km2:,.0f} km²), {len(truth):,} businesses in it")
        results = [await single(replica, area), await grid(replica, area)]
        if args.driver == "chromium":
            results.append(await adaptive_chromium(replica, area))
        results.append(await adaptive_http(replica, area))
    rows = [r.row(truth) for r in results]
    grid_row = rows[1]
    print(f"{'strategy':<32} {'driver':<9} {'coverage':>9} {'navigations':>12} {'minutes at 30/min':>18}")
    for row in rows:
        print(f"{row['strategy']:<32} {row['driver']:<9} {row['coverage_pct']:>8.2f}% {row['navigations']:>12,} "
              f"{row['polite_minutes']:>18,.2f}")
    ours = rows[2]
    ratio = ours["navigations"] / grid_row["navigations"]
    print(f"ours / grid navigations: {ratio:.1%} (target <= 30 %, at equal or better coverage: "
          f"{ours['coverage_pct']:.2f}% vs {grid_row['coverage_pct']:.2f}%)")
    return {"bench": "coverage", "query": args.query, "location": args.location, "ground_truth": len(truth),
            "area_km2": round(area.area_km2, 1), "results": rows, "ours_to_grid_navigations": round(ratio, 4)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--query", default="restaurants")
    parser.add_argument("--location", default="Chicago, IL")
    parser.add_argument("--driver", choices=["chromium", "http"], default="chromium")
    summary = uvloop.run(main(parser.parse_args()))
    print(orjson.dumps(summary).decode())
