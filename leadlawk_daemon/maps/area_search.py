"""One area search: the coverage plan driven through the Maps scraper, cell after cell.

Each cell's viewport is one ordinary search (so the politeness limiter, the Maps breaker and the
block signals guard it as any other); its list is gathered, the plan keeps what is new and inside
the area, and only that goes downstream, ranked in the order found. After each cell the caller
gets the plan to persist: a crash then repeats at most the cell that was in flight.

Place ids the plan already holds are passed to the scraper as already emitted: a neighbour's
duplicate is skipped before any place page is fetched for it (``request.needs``).

With ``width`` above one (an egress pool of several exits, docs/egress-pool.md) the next ``width``
pending cells are searched at once, each through its own exit, and still recorded in the plan's
order, so ranks, splits and the saved plan are what a one-by-one search makes. A cell whose exit
failed while another is usable (:class:`ExitUnavailable`) is searched again at once; its partial
list is dropped.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import replace
from typing import Protocol

from leadlawk_daemon.listing import Listing
from leadlawk_daemon.maps.coverage import Cell, CoveragePlan
from leadlawk_daemon.maps.egress_pool import ExitUnavailable
from leadlawk_daemon.maps.scraper import Emit, ScrapeRequest
from leadlawk_daemon.outcomes import ScrapeOutcome

__all__ = ["CellDone", "Searcher", "search_area"]


class Searcher(Protocol):
    """A MapsScraper, or the egress pool's RoutedScraper."""

    async def scrape(self, request: ScrapeRequest, emit: Emit, already_emitted: Collection[str]) -> ScrapeOutcome: ...


log = logging.getLogger(__name__)

# How far past the head cell searches may run ahead, in multiples of the width: bounds what is
# searched but not yet recorded (lost, and searched again, after a crash).
_LOOK_AHEAD = 4

# Called after each cell with the plan and the listings that cell added (already emitted).
CellDone = Callable[[CoveragePlan, list[Listing]], Awaitable[None]]


class _Gathered:
    """One cell's list, held back until the plan has judged it."""

    def __init__(self) -> None:
        self.listings: list[Listing] = []

    async def __call__(self, listing: Listing, _rank: int) -> None:
        self.listings.append(listing)


async def _search_cell(
    scraper: Searcher, plan: CoveragePlan, request: ScrapeRequest, cell: Cell
) -> tuple[_Gathered, ScrapeOutcome]:
    cell_request = replace(request, limit=plan.cap, viewport=plan.viewport(cell))
    while True:
        gathered = _Gathered()
        try:
            return gathered, await scraper.scrape(cell_request, gathered, plan.seen)
        except ExitUnavailable as moved:
            log.info("area cell moves to another exit", extra={"cell": cell.key, "reason": moved.reason})


async def search_area(
    scraper: Searcher,
    plan: CoveragePlan,
    request: ScrapeRequest,
    emit: Emit,
    *,
    cell_done: CellDone | None = None,
    width: int = 1,
) -> CoveragePlan:
    """Search ``plan``'s pending cells for ``request.query`` until it is finished; returns it."""
    searching: dict[Cell, asyncio.Future[tuple[_Gathered, ScrapeOutcome]]] = {}
    width = max(1, width)
    try:
        while (cell := plan.next_cell()) is not None:
            # Keep ``width`` searches running, looking past cells searched but not yet recorded
            # (a slow head cell must not idle the other exits), a bounded way ahead.
            running = sum(1 for future in searching.values() if not future.done())
            for ahead in itertools.islice(plan.pending, _LOOK_AHEAD * width):
                if running >= width:
                    break
                if ahead not in searching:
                    searching[ahead] = asyncio.ensure_future(_search_cell(scraper, plan, request, ahead))
                    running += 1
            head = searching[cell]
            if not head.done():
                await asyncio.wait(
                    [future for future in searching.values() if not future.done()],
                    return_when=asyncio.FIRST_COMPLETED,
                )
                continue
            del searching[cell]
            gathered, outcome = head.result()
            await _recorded(plan, request, emit, cell, gathered, outcome, cell_done)
    finally:
        # The limit was reached (or the search failed) with cells still in flight: theirs is lost.
        for future in searching.values():
            future.cancel()
        await asyncio.gather(*searching.values(), return_exceptions=True)
    return plan


async def _recorded(
    plan: CoveragePlan,
    request: ScrapeRequest,
    emit: Emit,
    cell: Cell,
    gathered: _Gathered,
    outcome: ScrapeOutcome,
    cell_done: CellDone | None,
) -> None:
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
