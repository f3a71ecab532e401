"""A pace shared by every daemon on one Redis: GCRA turns booked in a Lua script, capped by a log.

Two atomic steps per call, each one Lua script:

1. **Book a turn** (GCRA's virtual scheduling): the key holds the next free turn (its
   theoretical arrival time); a caller books ``max(now, next)`` and moves it on by one interval.
   No burst: turns are one interval apart whoever books them, so the daemons together keep the
   pace one daemon keeps alone. A turn is booked only within ``ahead`` of now (ten intervals):
   a caller further back sleeps until it is that close and asks again. So a daemon that dies
   (SIGKILL) leaves at most ``ahead`` of unused turns behind, and the others have the whole pace
   again right after them.
2. **Start**: a sorted set of the starts of the last window admits the caller only while it
   holds fewer than ``per_window``, else says when the oldest leaves it (a microsecond after:
   times are whole microseconds, wall clocks are not). A caller woken late
   (a busy event loop) cannot then bunch with the callers on time: no window of our clocks ever
   holds more than ``per_window`` starts, whatever the lag.

Times are the injected clock's wall time in microseconds, passed in (never Redis' own ``TIME``),
so tests run on a fake clock and every daemon books on one time line (their clocks must agree
to well under one interval: NTP's milliseconds do).

While Redis is unreachable the pacer runs on its local share (``local(n)``, built for ``n``
daemons: the quota divided by the daemons last seen alive, rounded down so that the shares never
add up to more than the quota) until Redis answers again.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from actors.racing import Stopped, unless_set
from leadlawk_daemon.quota.link import QuotaLink

__all__ = ["Pacer", "SharedPacer"]

# Daemons that used a key within this many windows count as peers for its local share.
_MEMBER_HORIZON_WINDOWS = 3

_BOOK = """
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local ahead = tonumber(ARGV[3])
local horizon = tonumber(ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', string.format('%.0f', now - horizon))
redis.call('PEXPIRE', KEYS[2], string.format('%d', math.ceil(horizon / 1000)))
local members = redis.call('ZCARD', KEYS[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local start = math.max(now, tat)
if start - now > ahead then
  return {0, start - now, members}
end
local nxt = start + interval
redis.call('SET', KEYS[1], string.format('%.0f', nxt), 'PX', string.format('%d', math.ceil((nxt - now) / 1000) + 1000))
return {1, start - now, members}
"""

_START = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now - window))
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[5], ARGV[4])
  redis.call('PEXPIRE', KEYS[1], string.format('%d', math.ceil(window / 1000) + 1000))
  return 0
end
local oldest = tonumber(redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2])
return oldest + window - now + 1
"""


_ADD = """
local window = tonumber(ARGV[1])
for i = 2, #ARGV, 2 do
  redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('PEXPIRE', KEYS[1], string.format('%d', math.ceil(window / 1000) + 1000))
return 0
"""


class Pacer(Protocol):
    async def acquire(self) -> None:
        """Wait for this caller's turn to start."""


def _us(seconds: float) -> int:
    return int(seconds * 1_000_000)


def _us_up(seconds: float) -> int:
    """A start as the log keeps it: rounded up, so that it never leaves the log before it leaves
    the service's window (a start rounded down would, by up to a microsecond)."""
    return math.ceil(seconds * 1_000_000)


class SharedPacer:
    """At most ``per_window`` starts in any ``window`` (one every ``interval``), for all daemons
    sharing ``name`` on one Redis; ``local(n)`` is the pacer of one daemon's share of ``n``."""

    def __init__(
        self,
        link: QuotaLink,
        name: str,
        *,
        per_window: int,
        window: float,
        interval: float,
        local: Callable[[int], Pacer],
        share: Callable[[int], float],
    ) -> None:
        if per_window < 1 or window <= 0 or interval <= 0:
            raise ValueError(f"shared pace {name}: need a positive pace (got {per_window} per {window} s)")
        self.name = name
        self.per_window = per_window
        self.window = window
        self.interval = interval
        self.rate = 1.0 / interval
        self._link = link
        self._clock = link.clock
        self._keys = (link.key(name, "next"), link.key(name, "members"))
        self._log_key = link.key(name, "starts")
        self._book = link.script(_BOOK)
        self._start = link.script(_START)
        self._add = link.script(_ADD)
        self._ahead = _us(10 * interval)
        self._horizon = _us(_MEMBER_HORIZON_WINDOWS * window)
        self._local_for = local
        self._share_for = share
        self._local: tuple[int, Pacer] | None = None
        self._local_from = 0.0
        self._refused = 0  # this daemon's callers waiting to ask for a turn again
        # Wall times of the local share's starts in the last window: they join the log on return.
        self._local_starts: deque[float] = deque()
        self._members = 1
        self._seq = 0
        self._starts: deque[float] = deque()  # this daemon's starts in the last window (the report)

    @property
    def members(self) -> int:
        """Daemons that used this pace within the last three windows, as Redis last said."""
        return self._members

    @property
    def shared(self) -> bool:
        return self._local is None

    async def _local_turn(self) -> bool:
        """A turn of the local share; False if Redis came back meanwhile (the caller books a shared
        turn instead: local turns still waited for would add to the shared pace, over the quota)."""
        peers = self._link.share_divisor(self._members)
        if self._local is None or self._local[0] < peers:
            if self._local is None:
                # The shared turns of the last interval may be this daemon's: its first local turn
                # comes one of its own (share's) intervals later, not at once.
                self._local_from = self._clock.monotonic() + self.interval * peers
            # Rebuilt smaller (never larger) when more daemons are seen.
            self._local = (peers, self._local_for(peers))
        pacer = self._local[1]

        async def local() -> None:
            wait = self._local_from - self._clock.monotonic()
            if wait > 0:
                await self._clock.sleep(wait)
            await pacer.acquire()

        # A local turn far off (the local pace books one per waiter) is given up as soon as Redis
        # answers another caller: given up, it only lowers the local pace.
        return not isinstance(await unless_set(self._link.back, local()), Stopped) and not self._link.up

    async def acquire(self) -> None:
        while not await self._shared_turn():
            if await self._local_turn():
                break
        self._started()

    async def _shared_turn(self) -> bool:
        """Book a turn, wait for it and pass the start log; False when Redis cannot be reached
        (then the local share decides, even for a turn booked before it was lost)."""
        while True:
            booked = await self._link.run(
                self._book,
                self._keys,
                (_us(self._clock.wall()), _us(self.interval), self._ahead, self._link.instance, self._horizon),
            )
            if booked is None:
                return False
            if self._local is not None:
                # Redis answers: the local share ends, and its starts of the last window join the
                # log, so that the shared turns make room for them.
                self._local = None
                await self._add_local_starts()
            ok, wait_us, self._members = (int(v) for v in booked)
            if ok:
                if wait_us > 0:
                    await self._clock.sleep(wait_us / 1_000_000)
                break
            # Too far back to book: ask again once the line is within reach. This daemon's waiters
            # ask one interval apart (k-th in its line: k intervals later), not all at once, so
            # that a daemon asks about once per turn booked instead of once per waiter.
            place = self._refused
            self._refused += 1
            try:
                await self._clock.sleep((wait_us - self._ahead) / 1_000_000 + place * self.interval)
            finally:
                self._refused -= 1
        while True:
            self._seq += 1
            now = self._clock.wall()
            hold = await self._link.run(
                self._start,
                (self._log_key,),
                (_us(now), _us(self.window), self.per_window, f"{self._link.instance}:{self._seq}", _us_up(now)),
            )
            if hold is None:
                return False
            if int(hold) == 0:
                return True
            await self._clock.sleep(int(hold) / 1_000_000)

    def _started(self) -> None:
        now = self._clock.monotonic()
        self._starts.append(now)
        while self._starts and self._starts[0] <= now - self.window:
            self._starts.popleft()
        if self._local is not None:
            wall = self._clock.wall()
            self._local_starts.append(wall)
            while self._local_starts[0] <= wall - self.window:
                self._local_starts.popleft()

    async def _add_local_starts(self) -> None:
        since = self._clock.wall() - self.window
        starts = [t for t in self._local_starts if t > since]
        self._local_starts.clear()
        if not starts:
            return
        args: list[object] = [_us(self.window)]
        for n, at in enumerate(starts):
            args += [_us_up(at), f"{self._link.instance}:local:{n}:{_us(at)}"]
        # Lost again at once: these starts are older than any the log will see next.
        await self._link.run(self._add, (self._log_key,), args)

    def report(self) -> dict[str, Any]:
        """This daemon's share and use of the pace (for the fleet registry and /health)."""
        now = self._clock.monotonic()
        while self._starts and self._starts[0] <= now - self.window:
            self._starts.popleft()
        peers = self._link.share_divisor(self._members)
        return {
            "mode": "shared" if self.shared else "local",
            "per_window": self.per_window,
            "window_s": self.window,
            "share": self.per_window if self.shared else self._share_for(peers),
            "used": len(self._starts),
            "peers": peers,
        }

