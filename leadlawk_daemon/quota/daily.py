"""The daily PageSpeed quota, counted once for every daemon on one Redis.

One counter per calendar day in the quota's time zone (midnight Pacific for Google),
``<prefix>:quota:<key id>:day:<YYYY-MM-DD>``: a Lua script adds a call only while the count is
under the limit (INCR and a check in one atomic step), and gives the key a time to live past the
day's end (relative, from the injected clock, so it never depends on Redis' own clock). The next
day is another key: the rollover is the date in the name, exactly the local count's.

While Redis is unreachable a daemon may spend its local share of what was left of the day when
it last heard from Redis: ``(limit - used) // peers``, rounded down so that the shares never add
up to more than what was left. Those calls are added to the shared count when Redis is back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from actors.clock import Clock
from leadlawk_daemon.pagespeed.quota import DailyQuota
from leadlawk_daemon.quota.link import QuotaLink

__all__ = ["SharedDailyQuota"]

_CLAIM = """
local limit = tonumber(ARGV[1])
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[3]) > 0 then
  used = redis.call('INCRBY', KEYS[1], ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if tonumber(ARGV[4]) == 0 or used >= limit then
  return {0, used}
end
used = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, used}
"""

# While only the local share is spent, look for Redis again this often (it may have more left).
_RECHECK = 30.0


class SharedDailyQuota(DailyQuota):
    """:class:`DailyQuota` whose count is every daemon's on this Redis (see the module docstring)."""

    def __init__(
        self,
        link: QuotaLink,
        key_id: str,
        limit: int,
        tz: str,
        clock: Clock,
        *,
        members: Callable[[], int] | None = None,
    ) -> None:
        super().__init__(limit, tz, clock)
        self._link = link
        # Daemons seen using this key lately (the pace's member count): a local share is cut for them too.
        self._members = members or (lambda: 1)
        self._key_id = key_id
        self._claim = link.script(_CLAIM)
        self._fleet: tuple[str, int] = (self._day, 0)  # (day, the shared count last heard)
        self._unsynced = (self._day, 0)  # calls counted locally while Redis was down, not yet added to it
        self._share: tuple[str, int, int] | None = None  # (day, allowance, spent) while Redis is down

    @property
    def fleet_used(self) -> int:
        """Today's shared count as last heard from Redis (0 on a new day)."""
        self._roll()
        day, used = self._fleet
        return used if day == self._day else 0

    @property
    def exhausted(self) -> bool:
        if super().exhausted or self.fleet_used >= self.limit:
            return True
        share = self._share
        return share is not None and share[0] == self._day and share[2] >= share[1]

    def _ttl_ms(self) -> int:
        # Past the day's end by an hour: the key outlives its day, never the other way round.
        return int((self.seconds_until_reset() + 3600) * 1000)

    async def _ask(self, take: bool) -> bool | None:
        self._roll()
        day = self._day
        unsynced = self._unsynced[1] if self._unsynced[0] == day else 0  # yesterday's are yesterday's
        answer = await self._link.run(
            self._claim,
            (self._link.key(self._key_id, "day", day),),
            (self.limit, self._ttl_ms(), unsynced, 1 if take else 0),
        )
        if answer is not None:
            self._unsynced = (day, 0)
            self._share = None
            taken, used = (int(v) for v in answer)
            self._fleet = (day, used)
            return bool(taken)
        return None

    async def claim(self) -> bool:
        """Count one call against today, for every daemon; False (nothing counted) when it is spent."""
        if self.exhausted:
            return False
        taken = await self._ask(take=True)
        if taken is None:
            return self._claim_locally()
        if taken:
            self._used += 1
        return taken

    def _claim_locally(self) -> bool:
        day = self._day
        if self._share is None or self._share[0] != day:
            left = max(0, self.limit - self.fleet_used)
            self._share = (day, left // self._link.share_divisor(self._members()), 0)
        _, allowance, spent = self._share
        if spent >= allowance:
            return False
        self._share = (day, allowance, spent + 1)
        self._used += 1
        self._unsynced = (day, (self._unsynced[1] if self._unsynced[0] == day else 0) + 1)
        return True

    async def wait_until_available(self) -> float:
        waited = 0.0
        while self.exhausted:
            if self._share is not None:
                await self._ask(take=False)  # Redis back? then the day's shared count decides
                if not self.exhausted:
                    break
            pause = self.seconds_until_reset() + 1.0
            if self._share is not None:
                pause = min(pause, _RECHECK)
            await self._clock.sleep(pause)
            waited += pause
        return waited

    def report(self) -> dict[str, Any]:
        share = self._share
        return {
            "mode": "shared" if share is None else "local",
            "limit": self.limit,
            "share": self.limit if share is None else share[1],
            "used": self.used,
            "fleet_used": self.fleet_used,
            "day": self._today(),
        }
