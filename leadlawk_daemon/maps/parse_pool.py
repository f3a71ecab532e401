"""Parsing Google's pages in a budgeted worker process, so the event loop never waits on it.

A thread is not enough: the parser is pure Python, and building the element tree of a 600 KB
place page (~50 ms) allocates enough objects to trigger full garbage collections, which stop
every thread of the process, the event loop's included (measured: 40-100 ms stalls). In a
worker process the parse costs the loop only the pickling of the text and of the result; and a
page that is slow to parse for any reason is stopped at its CPU budget
(:mod:`leadlawk_daemon.resilience.worker_pool`) instead of holding the parser, its caller judging
what that page was (the scraper: a place page is that lead's loss, a results page its search's).
"""

from __future__ import annotations

from types import TracebackType

from leadlawk_daemon.listing import Listing
from leadlawk_daemon.maps.feed import FeedParse, parse_feed
from leadlawk_daemon.maps.panel import parse_place_panel
from leadlawk_daemon.maps.state import parse_place_state
from leadlawk_daemon.resilience.worker_pool import WorkerPool

__all__ = ["PARSE_BUDGET", "ParsePool", "parse_place_page"]

# CPU per page: the largest place page of the corpus parses in about 0.1 s, so this is a page
# built to be slow, never a large one.
PARSE_BUDGET = 5.0


def parse_place_page(html: str, url: str) -> Listing | None:
    """A place page read both ways: its embedded state (complete) and its panel (what is shown)."""
    state = parse_place_state(html)
    panel = parse_place_panel(html, url)
    if state is None:
        return panel
    return state if panel is None else state.merged(panel)


class ParsePool:
    """``async with ParsePool() as parsers: await parsers.feed(html)``. A page over its budget
    raises :class:`~leadlawk_daemon.resilience.worker_pool.TaskLost` (the page's); no worker
    starting raises ``PoolUnavailable``, which fails the scraper like a dead browser does."""

    def __init__(self, workers: int = 1, budget: float = PARSE_BUDGET) -> None:
        if workers < 1:
            raise ValueError(f"parse pool: workers must be at least 1 (got {workers})")
        self.workers = workers
        # This module preloaded: the parser's imports are paid at start, not out of a page's budget.
        self._pool = WorkerPool(workers=workers, budget=budget, preload=(__name__,))

    async def __aenter__(self) -> ParsePool:
        await self._pool.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._pool.close()

    async def feed(self, html: str) -> FeedParse:
        return await self._pool.run(parse_feed, html)

    async def place_page(self, html: str, url: str) -> Listing | None:
        return await self._pool.run(parse_place_page, html, url)
