"""The shared quotas' own connection to Redis, and what happens when Redis cannot be reached.

A quota shared over Redis must never stall the calls it paces: this link has its own client with
short socket timeouts (``redis.quota_timeout``, 500 ms by default) and one immediate retry (a
pooled connection dropped while idle), so a cut or a blackholed Redis costs one caller at most
two timeouts. While Redis is
unreachable every limiter answers from its *local share* (the quota divided by the daemons last
seen alive), and one caller at a time tries Redis again every ``retry_every`` seconds: the first
answer ends the fallback.

Keys live under ``<prefix>:quota:``; a PageSpeed key is named by :func:`quota_id` (the first 16
hex digits of its SHA-256), never by itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from actors.clock import Clock
from leadlawk_daemon.logs import redact

__all__ = ["REDIS_DOWN", "QuotaLink", "quota_id"]

log = logging.getLogger("leadlawk.quota")

# What "Redis is unreachable" looks like to redis-py: refused, reset, timed out, DNS.
_MAX_CALLS = 8
REDIS_DOWN: tuple[type[BaseException], ...] = (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError)


def quota_id(secret: str | None) -> str:
    """What names a PageSpeed key in Redis: never the key, a hash of it (the empty string's
    without a key, so keyless daemons (the replica's) share one quota too)."""
    return hashlib.sha256((secret or "").encode()).hexdigest()[:16]


class QuotaLink:
    """``QuotaLink.from_url(url, prefix, clock=…)``; :meth:`run` a script, or None while Redis is down.

    ``peers`` is how many daemons were last seen alive (the fleet registry's count; 1 without
    one): each limiter divides its quota by the larger of it and the daemons it saw use its own
    key recently (see :class:`~leadlawk_daemon.quota.pace.SharedPacer`).
    """

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str,
        *,
        clock: Clock,
        peers: Callable[[], int] | None = None,
        retry_every: float = 1.0,
        owns_client: bool = True,
    ) -> None:
        self._client = client
        self.prefix = prefix
        self.clock = clock
        self.peers: Callable[[], int] = peers or (lambda: 1)
        self.retry_every = retry_every
        self._owns_client = owns_client
        # This daemon's name in the quotas' member sets: random, so no hostname or pid is stored.
        self.instance = uuid.uuid4().hex[:12]
        self._up = True
        self._retry_at = 0.0
        self._probing = False
        self.fallbacks = 0  # times Redis was lost (tests and the report)
        # Calls to Redis at once: hundreds of callers asking together (a daemon starting with its
        # whole in-flight limit) would open as many connections and time out on their own queue.
        self._calls = asyncio.Semaphore(_MAX_CALLS)
        # Set while Redis answers: callers waiting for a local turn stop waiting when it is back.
        self.back = asyncio.Event()
        self.back.set()

    @classmethod
    def from_url(
        cls,
        url: str,
        prefix: str,
        *,
        clock: Clock,
        timeout: float = 0.5,
        peers: Callable[[], int] | None = None,
        retry_every: float = 1.0,
    ) -> QuotaLink:
        client = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            # One immediate retry: a pooled connection that Redis (or a proxy) dropped while it sat
            # idle fails once on its next use; a cut or refused Redis fails the retry at once too.
            retry=Retry(NoBackoff(), 1),
            retry_on_timeout=False,
            health_check_interval=0,
        )
        return cls(client, prefix, clock=clock, peers=peers, retry_every=retry_every)

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    @property
    def up(self) -> bool:
        """Whether the last call reached Redis (False: the limiters run on their local shares)."""
        return self._up

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, "quota", *parts))

    def script(self, lua: str) -> AsyncScript:
        return self._client.register_script(lua)

    def share_divisor(self, members: int) -> int:
        """Daemons a local share is cut for: the registry's count or those seen on this key, the larger."""
        return max(1, self.peers(), members)

    async def run(self, script: AsyncScript, keys: Sequence[str], args: Sequence[Any]) -> Any | None:
        """The script's answer, or None while Redis is unreachable (the caller uses its local share).

        While down, only one caller at a time, and at most every ``retry_every`` seconds, tries
        Redis again; everyone else is answered None at once.
        """
        async with self._calls:
            if not self._up and (self._probing or self.clock.monotonic() < self._retry_at):
                return None
            probing = not self._up
            self._probing = probing or self._probing
            try:
                answer = await script(keys=list(keys), args=list(args))
            except REDIS_DOWN as exc:
                self._lost(exc)
                return None
            finally:
                if probing:
                    self._probing = False
        if not self._up:
            self._up = True
            self.back.set()
            log.warning("shared quotas: Redis is back; the local shares end")
        return answer

    def _lost(self, exc: BaseException) -> None:
        self._retry_at = self.clock.monotonic() + self.retry_every
        if self._up:
            self._up = False
            self.back.clear()
            self.fallbacks += 1
            log.warning(
                "shared quotas: Redis unreachable; each daemon uses its local share until it is back",
                extra={"error": redact(f"{type(exc).__name__}: {exc}")},
            )
