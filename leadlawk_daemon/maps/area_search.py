"""One area search: the coverage plan driven through the Maps scraper, cell after cell.

Each cell's viewport is one ordinary search (so the politeness limiter, the Maps breaker and the
block signals guard it as any other); its list is gathered, the plan keeps what is new and inside
the area, and only that goes downstream, ranked in the order found. After each cell the caller
gets the plan to persist: a crash then repeats at most the cell that was in flight.

Place ids the plan already holds are passed to the scraper as already emitted: a neighbour's
duplicate is skipped before any place page is fetched for it (``request.needs``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace

from leadlawk_daemon.listing import Listing
from leadlawk_daemon.maps.coverage import CoveragePlan
from leadlawk_daemon.maps.scraper import Emit, MapsScraper, ScrapeRequest

__all__ = ["CellDone", "search_area"]

log = logging.getLogger(__name__)

# Called after each cell with the plan and the listings that cell added (already emitted).
CellDone = Callable[[CoveragePlan, list[Listing]], Awaitable[None]]


class _Gathered:
    """One cell's list, held back until the plan has judged it."""

    def __init__(self) -> None:
        self.listings: list[Listing] = []

    async def __call__(self, listing: Listing, _rank: int) -> None:
        self.listings.append(listing)


async def search_area(
    scraper: MapsScraper,
    plan: CoveragePlan,
    request: ScrapeRequest,
    emit: Emit,
    *,
    cell_done: CellDone | None = None,
) -> CoveragePlan:
    """Search ``plan``'s pending cells for ``request.query`` until it is finished; returns it."""
    while (cell := plan.next_cell()) is not None:
        gathered = _Gathered()
        cell_request = replace(request, limit=plan.cap, viewport=plan.viewport(cell))
        outcome = await scraper.scrape(cell_request, gathered, plan.seen)
        listed = gathered.listings
        first_rank = len(plan.seen) + 1
        kept = plan.record(cell, listed, capped=outcome.found >= plan.cap)
        for offset, listing in enumerate(kept):
            await emit(listing, first_rank + offset)
        progress = plan.progress()
        log.info(
            "area cell searched",
            extra={
                "job_id": request.job_id,
                "cell": cell.key,
                "depth": cell.depth,
                "listed": len(listed),
                "kept": len(kept),
                "cells_done": progress.cells_done,
                "cells_pending": progress.cells_pending,
                "found": progress.found,
            },
        )
        if cell_done is not None:
            await cell_done(plan, kept)
    return plan
