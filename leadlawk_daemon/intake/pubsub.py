"""Intake from the pub/sub channel ``{prefix}:jobs``, the design's submission path.

Pub/sub is fire-and-forget: a message published while no daemon listens is lost, and every
listening daemon receives every message. So that a message runs exactly once however many daemons
share the Redis, and survives any daemon dying, a daemon does not admit a message itself: it hands
it to the durable stream, and claims it in the same step. One Lua script, atomic in Redis, does
``SET NX`` on a digest of the message (for ``dedupe_window``) and, only if that claim is new,
``XADD``s the message to ``{prefix}:jobs:stream`` (marked ``source=pubsub``). So:

* the claim and the durable copy exist together or not at all: a daemon that dies right after
  claiming leaves an entry in the stream that any daemon's stream intake admits (there is no
  "claimed, then lost" window, as there was with a claim before the admission);
* the daemons that lose the claim drop their copy: one entry, one job (the stream's own
  exactly-once, a content-derived id per entry, covers its redeliveries);
* a Redis error during the hand-off keeps the message in this daemon, which tries again once
  Redis answers (a held message is retried, oldest first; at most ``max_held`` are kept).

Identical messages within ``dedupe_window`` therefore count as one.
"""

from __future__ import annotations

import hashlib
import logging
from collections import deque
from collections.abc import Callable

import redis.asyncio as aioredis

from actors.clock import Clock, MonotonicClock
from leadlawk_daemon.intake.reconnect import REDIS_ERRORS, Reconnect
from leadlawk_daemon.intake.service import Service
from leadlawk_daemon.intake.stream import FIELD, SOURCE_FIELD, stream_key

__all__ = ["PubSubIntake", "claim_key", "jobs_channel"]

log = logging.getLogger("leadlawk.intake")

# KEYS[1] the claim, KEYS[2] the stream; ARGV: the claim's lifetime (ms), the message, field names.
# Returns the new entry id, or false when another daemon (or an identical message) has the claim.
_HAND_OFF = """
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then
  return redis.call('XADD', KEYS[2], '*', ARGV[3], ARGV[2], ARGV[4], 'pubsub')
end
return false
"""


def jobs_channel(prefix: str) -> str:
    return f"{prefix}:jobs"


def claim_key(prefix: str, raw: bytes) -> str:
    return f"{prefix}:jobs:claim:{hashlib.sha256(raw).hexdigest()[:32]}"


class PubSubIntake(Service):
    name = "pubsub-intake"

    def __init__(
        self,
        redis: aioredis.Redis,
        prefix: str,
        *,
        dedupe_window: float = 30.0,
        reconnect_max_delay: float = 30.0,
        poll: float = 1.0,
        max_held: int = 1000,
        clock: Clock | None = None,
    ) -> None:
        super().__init__()
        self.channel = jobs_channel(prefix)
        self._prefix = prefix
        self._stream = stream_key(prefix)
        self._redis = redis
        self._dedupe_ms = max(1, int(dedupe_window * 1000))
        self._poll = poll
        self._clock = clock or MonotonicClock()
        self._link = Reconnect(self.name, clock=self._clock, max_delay=reconnect_max_delay)
        # Received, not yet handed off (Redis failed under us): bounded, oldest dropped and logged.
        self._held: deque[bytes] = deque(maxlen=max_held)
        self.received = 0
        self.handed_off = 0

    @property
    def connected(self) -> bool:
        return self._link.connected

    @property
    def held(self) -> int:
        return len(self._held)

    async def run(self, started: Callable[[], None]) -> None:
        announced = False
        while self._running():
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    self._link.up()
                    if not announced:
                        announced = True
                        started()
                    await self._hand_off_held()
                    while self._running():
                        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=self._poll)
                        if message is not None and message.get("type") == "message":
                            self._receive(message["data"])
                            await self._hand_off_held()
            except REDIS_ERRORS as exc:
                if not announced:
                    announced = True
                    started()
                await self._link.down(exc)

    def _receive(self, data: bytes | str) -> None:
        self.received += 1
        raw = data if isinstance(data, bytes) else str(data).encode("utf-8", "surrogateescape")
        if len(self._held) == self._held.maxlen:
            log.error("pub/sub messages held while Redis fails: the oldest is dropped", extra={"held": len(self._held)})
        self._held.append(raw)

    async def _hand_off_held(self) -> None:
        """Hand every held message to the stream, oldest first; a Redis error leaves it held."""
        while self._held:
            entry = await self._hand_off(self._held[0])
            self._held.popleft()
            if entry is not None:
                self.handed_off += 1
                log.info("pub/sub job handed to the durable stream", extra={"entry": entry})

    async def _hand_off(self, raw: bytes) -> str | None:
        """Claim ``raw`` and copy it to the stream, atomically; the entry id, or None if claimed already.

        Retried after an error whose reply was lost, it finds its own claim: a message is never copied
        twice within ``dedupe_window``."""
        result = await self._redis.eval(
            _HAND_OFF, 2, claim_key(self._prefix, raw), self._stream, self._dedupe_ms, raw, FIELD, SOURCE_FIELD
        )
        if not result:
            return None
        return result.decode() if isinstance(result, bytes) else str(result)
