"""Parsing Google's pages in a worker process, so the event loop never waits on it.

A thread is not enough: the parser is pure Python, and building the element tree of a 600 KB
place page (~50 ms) allocates enough objects to trigger full garbage collections, which stop
every thread of the process, the event loop's included (measured: 40-100 ms stalls). In a
worker process the parse costs the loop only the pickling of the text and of the result.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from types import TracebackType
from typing import TypeVar

from leadlawk_daemon.listing import Listing
from leadlawk_daemon.maps.feed import FeedParse, parse_feed
from leadlawk_daemon.maps.panel import parse_place_panel
from leadlawk_daemon.maps.state import parse_place_state

__all__ = ["ParsePool", "parse_place_page"]

T = TypeVar("T")


def parse_place_page(html: str, url: str) -> Listing | None:
    """A place page read both ways: its embedded state (complete) and its panel (what is shown)."""
    state = parse_place_state(html)
    panel = parse_place_panel(html, url)
    if state is None:
        return panel
    return state if panel is None else state.merged(panel)


class ParsePool:
    """``async with ParsePool() as parsers: await parsers.feed(html)``; a dead worker raises
    ``BrokenProcessPool``, which fails the scraper like a dead browser does."""

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError(f"parse pool: workers must be at least 1 (got {workers})")
        self.workers = workers
        self._executor: ProcessPoolExecutor | None = None

    async def __aenter__(self) -> ParsePool:
        # spawn, not fork: forking a process that runs Playwright's threads and pipes is unsafe.
        self._executor = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
        try:
            await self._run(parse_feed, "")  # start the worker now, so a failure shows at start
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)

    async def feed(self, html: str) -> FeedParse:
        return await self._run(parse_feed, html)

    async def place_page(self, html: str, url: str) -> Listing | None:
        return await self._run(parse_place_page, html, url)

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        if self._executor is None:
            raise RuntimeError("the parse pool is not running (use it as an async context manager)")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
