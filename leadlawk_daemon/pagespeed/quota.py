"""PageSpeed quotas: the per-100-seconds pace, the daily allowance and the in-flight bulkhead.

Per 100 s: aiolimiter's ``AsyncLimiter(max_rate=Q, time_period=T)`` starts with an empty bucket
of capacity Q, so the first window can see Q at once *plus* Q·(T-ε)/T leaked back in: almost 2Q.
:class:`WindowPacer` builds it with a small capacity B (2, or 1 % of Q when larger; 1 below Q = 20) leaking at
``(Q - B) / T`` per second, so any window of length T, the first included, holds at most
``B + (Q - B) = Q`` requests. Throughput is (Q-B)/Q of the quota (99 % for Google's 400). A
bucket of B > 1 lets the pace catch up after the event loop woke it late, where a bucket of one
would lose that time for good.

Per day: a leaky bucket is the wrong shape for a quota that resets at midnight Pacific time (it
would allow the whole allowance again within hours of a burst), so :class:`DailyQuota` counts
calls per calendar day in the quota's time zone, on the injected clock.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiolimiter import AsyncLimiter

from leadlawk_daemon.clock import Clock

__all__ = ["DailyQuota", "WindowPacer", "bulkhead_size"]

LITTLE_HEADROOM = 1.5
"""In-flight slots per call the quota allows in an average latency: latency varies around its
mean, and a bulkhead sized to the mean alone would leave quota unused whenever calls run slow."""


def bulkhead_size(
    queries_per_window: float, window: float, expected_latency: float, max_in_flight: int
) -> int:
    """Little's law: calls in flight = arrival rate x time in the system (with headroom)."""
    if max_in_flight > 0:
        return max_in_flight
    rate = queries_per_window / window
    return max(1, math.ceil(rate * expected_latency * LITTLE_HEADROOM))


class WindowPacer:
    """Never more than ``quota`` acquisitions in any ``window`` seconds (see the module docstring)."""

    def __init__(self, quota: float, window: float = 100.0) -> None:
        if quota <= 0 or window <= 0:
            raise ValueError(
                f"pagespeed quota: need a positive quota and window (got {quota} per {window} s)"
            )
        self.quota = quota
        self.window = window
        # Two at least once the quota allows it: with one, every late wake-up is pace lost for good.
        self.burst = 1 if quota < 20 else max(2, round(quota / 100))
        sustained = quota - self.burst if quota >= 2 else quota
        self._limiter = AsyncLimiter(self.burst, self.burst * window / sustained)

    async def acquire(self) -> None:
        await self._limiter.acquire()


class DailyQuota:
    """Calls counted per calendar day in ``tz``; exhausted until the next local midnight."""

    def __init__(self, limit: int, tz: str, clock: Clock) -> None:
        if limit < 1:
            raise ValueError(f"pagespeed.queries_per_day must be at least 1 (got {limit})")
        try:
            self._tz = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"pagespeed.quota_reset_tz: unknown time zone {tz!r}") from None
        self.limit = limit
        self._clock = clock
        self._day = self._today()
        self._used = 0
        self._exhausted_day: str | None = None

    def _today(self) -> str:
        return datetime.fromtimestamp(self._clock.wall(), self._tz).date().isoformat()

    def _roll(self) -> None:
        today = self._today()
        if today != self._day:
            self._day, self._used = today, 0
            if self._exhausted_day != today:
                self._exhausted_day = None

    @property
    def used(self) -> int:
        self._roll()
        return self._used

    @property
    def exhausted(self) -> bool:
        self._roll()
        return self._exhausted_day == self._day or self._used >= self.limit

    def take(self) -> bool:
        """Count one call against today; False (and nothing counted) when the day is spent."""
        if self.exhausted:
            return False
        self._used += 1
        return True

    def mark_exhausted(self) -> None:
        """The service said the day is spent (someone else may share the key): believe it."""
        self._roll()
        self._exhausted_day = self._day

    def seconds_until_reset(self) -> float:
        now = datetime.fromtimestamp(self._clock.wall(), self._tz)
        midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), self._tz)
        return max(0.0, midnight.timestamp() - now.timestamp())

    async def wait_until_available(self) -> float:
        """Sleep (on the clock) until the quota resets if the day is spent; returns seconds waited."""
        waited = 0.0
        while self.exhausted:
            # Re-checked after each sleep: a DST change or a clock step moves the reset.
            pause = self.seconds_until_reset() + 1.0
            await self._clock.sleep(pause)
            waited += pause
        return waited
