"""PageSpeed quotas: the per-100-seconds pace and the daily allowance.

Per 100 s: aiolimiter's ``AsyncLimiter(max_rate=Q, time_period=T)`` starts with an empty bucket
of capacity Q, so the first window can see Q at once *plus* Q·(T-ε)/T leaked back in: almost 2Q.
:class:`WindowPacer` paces calls at ``S = Q - H`` per window and leaves H of the quota unused (2,
or 1 % of Q when larger; 1 below Q = 20): the service's slack for requests that reach it sooner
or later than they left (a new connection, a busy event loop), a second of Google's pace.
Throughput is S/Q of the quota (99 % for Google's 400).

It runs on the injected clock, as a schedule (GCRA): each caller is given its start time when it
asks, so a caller the event loop wakes late starts late without moving anyone else's turn, and
the pace is not lost. Callers woken late could then go together into a window that has its
on-time callers too: a log of the last S actual starts holds any caller until the window it
starts in has room, so no window of length T ever holds more than S of our starts, whatever the
lag. No burst, not even after a pause: calls bunched at a window's start would meet, one window
later, the callers that the log held back to its end, with none of the slack left between.

How many calls may be in flight is not a quota: see :mod:`leadlawk_daemon.resilience.inflight`.

Per day: a leaky bucket is the wrong shape for a quota that resets at midnight Pacific time (it
would allow the whole allowance again within hours of a burst), so :class:`DailyQuota` counts
calls per calendar day in the quota's time zone, on the injected clock.
"""

from __future__ import annotations

import math
from collections import deque
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from actors.clock import Clock

__all__ = ["DailyQuota", "WindowPacer"]


class WindowPacer:
    """Never more than ``per_window`` starts in any ``window`` seconds (see the module docstring)."""

    def __init__(self, quota: float, window: float = 100.0, *, clock: Clock) -> None:
        if quota <= 0 or window <= 0:
            raise ValueError(
                f"pagespeed quota: need a positive quota and window (got {quota} per {window} s)"
            )
        self.quota = quota
        self.window = window
        self._clock = clock
        self.headroom = 1 if quota < 20 else max(2, round(quota / 100))
        sustained = quota - self.headroom if quota >= 2 else quota
        self.per_window = max(1, math.floor(sustained))
        self.interval = window / sustained
        self.rate = sustained / window
        self._next = -math.inf  # the next free turn (GCRA's theoretical arrival time)
        self._started: deque[float] = deque(maxlen=self.per_window)

    async def acquire(self) -> None:
        """Wait for this caller's turn. Its turn is booked before the wait: a caller cancelled
        while waiting leaves its turn unused, which can only lower the pace, never raise it."""
        now = self._clock.monotonic()
        start = max(now, self._next)
        self._next = start + self.interval
        if start > now:
            await self._clock.sleep(start - now)
        started = self._started
        while True:
            now = self._clock.monotonic()
            if len(started) < self.per_window or started[0] <= now - self.window:
                break
            await self._clock.sleep(started[0] + self.window - now)
        started.append(now)


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

    async def claim(self) -> bool:
        """:meth:`take`, as a daemon sharing the quota over Redis does it (see ``quota.daily``)."""
        return self.take()

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
