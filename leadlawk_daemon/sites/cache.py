"""Per-origin reports for ``sites.ttl``, so a chain's fifty branches cost one fetch.

Concurrent askers for one origin share the one fetch in flight (the first asker runs it; the
others wait for its result). Bounded: past ``max_entries`` the least recently used goes.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from actors.clock import Clock
from leadlawk_daemon.sites.report import SiteReport

__all__ = ["SiteCache"]


class SiteCache:
    def __init__(self, *, ttl: float, max_entries: int, clock: Clock) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, SiteReport]] = OrderedDict()
        self._in_flight: dict[str, asyncio.Future[SiteReport]] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> SiteReport | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        stored_at, report = entry
        if self._clock.monotonic() - stored_at >= self.ttl:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return report

    def forget(self, key: str) -> None:
        self._entries.pop(key, None)

    async def get_or_fetch(self, key: str, fetch: Callable[[], Awaitable[SiteReport]]) -> SiteReport:
        while True:
            cached = self.get(key)
            if cached is not None:
                self.hits += 1
                return cached
            waiting = self._in_flight.get(key)
            if waiting is None:
                break
            try:
                report = await asyncio.shield(waiting)
            except _Abandoned:
                continue  # its fetcher was cancelled: fetch it ourselves
            self.hits += 1
            return report
        self.misses += 1
        future: asyncio.Future[SiteReport] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            report = await fetch()
        except BaseException as exc:
            future.set_exception(_Abandoned() if isinstance(exc, asyncio.CancelledError) else exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waited
            raise
        finally:
            del self._in_flight[key]
        future.set_result(report)
        if self.ttl > 0:
            self._entries[key] = (self._clock.monotonic(), report)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return report


class _Abandoned(Exception):
    """The fetch a waiter shared was cancelled with its owner."""
