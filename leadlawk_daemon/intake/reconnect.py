"""Staying connected to Redis: the ``connected`` flag readiness reads, and backoff between attempts.

Every intake component loops "connect, serve until Redis fails, wait, again"; this holds the
part they share, so the backoff (exponential, full jitter, a ceiling) and the log lines that say
Redis went away or came back are the same everywhere.
"""

from __future__ import annotations

import logging
import random

from redis.exceptions import RedisError

from actors.clock import Clock
from leadlawk_daemon.logs import redact
from leadlawk_daemon.resilience.retry import RandomSource, RetryPolicy

__all__ = ["REDIS_ERRORS", "Reconnect"]

log = logging.getLogger("leadlawk.intake")

# What a lost or refused Redis connection raises: redis-py's own errors, and the OS's when a
# socket dies under it.
REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError)


class Reconnect:
    """The connection state of one component, and the wait before its next attempt."""

    def __init__(
        self,
        what: str,
        *,
        clock: Clock,
        max_delay: float,
        base_delay: float = 0.5,
        rng: RandomSource | None = None,
    ) -> None:
        self.what = what
        self._clock = clock
        self._policy = RetryPolicy(base_delay=min(base_delay, max_delay), max_delay=max_delay)
        self._rng: RandomSource = rng if rng is not None else random.Random()
        self._failures = 0
        self.connected = False

    @property
    def failures(self) -> int:
        """Failed attempts since the last success."""
        return self._failures

    def up(self) -> None:
        if not self.connected:
            log.info("redis connected", extra={"component": self.what, "after_failures": self._failures})
        self.connected = True
        self._failures = 0

    async def down(self, error: BaseException) -> None:
        """Record a failure, then wait out the backoff before the caller tries again."""
        if self.connected or self._failures == 0:
            log.warning(
                "redis unavailable, reconnecting",
                extra={"component": self.what, "error": redact(f"{type(error).__name__}: {error}")},
            )
        self.connected = False
        delay = self._policy.delay(self._failures, self._rng)
        self._failures += 1
        await self._clock.sleep(delay)
