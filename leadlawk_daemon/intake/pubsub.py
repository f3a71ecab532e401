"""Intake from the pub/sub channel ``{prefix}:jobs``, the design's submission path.

Pub/sub is fire-and-forget: a message published while no daemon listens is lost, and every
listening daemon receives every message. So that a message runs once however many daemons share
the Redis, each one is claimed first (``SET NX`` on a digest of the message, for
``dedupe_window`` seconds) and only the claimant admits it. When the store fails, the message is
handed to the durable stream, where it is retried and at worst dead-lettered: once received, it
is not dropped because the database blinked.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable

import redis.asyncio as aioredis

from leadlawk_daemon.clock import Clock, MonotonicClock
from leadlawk_daemon.intake.admission import Admission
from leadlawk_daemon.intake.reconnect import REDIS_ERRORS, Reconnect
from leadlawk_daemon.intake.service import Service
from leadlawk_daemon.intake.stream import FIELD, OnJob, stream_key
from leadlawk_daemon.logs import redact

__all__ = ["PubSubIntake", "jobs_channel"]

log = logging.getLogger("leadlawk.intake")


def jobs_channel(prefix: str) -> str:
    return f"{prefix}:jobs"


class PubSubIntake(Service):
    name = "pubsub-intake"

    def __init__(
        self,
        redis: aioredis.Redis,
        prefix: str,
        admission: Admission,
        on_job: OnJob,
        *,
        dedupe_window: float = 30.0,
        reconnect_max_delay: float = 30.0,
        poll: float = 1.0,
        clock: Clock | None = None,
    ) -> None:
        super().__init__()
        self.channel = jobs_channel(prefix)
        self._prefix = prefix
        self._redis = redis
        self._admission = admission
        self._on_job = on_job
        self._dedupe_ms = max(1, int(dedupe_window * 1000))
        self._poll = poll
        self._link = Reconnect(self.name, clock=clock or MonotonicClock(), max_delay=reconnect_max_delay)
        self.received = 0

    @property
    def connected(self) -> bool:
        return self._link.connected

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
                    while self._running():
                        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=self._poll)
                        if message is not None and message.get("type") == "message":
                            await self._handle(message["data"])
            except REDIS_ERRORS as exc:
                if not announced:
                    announced = True
                    started()
                await self._link.down(exc)

    async def _handle(self, raw: bytes) -> None:
        self.received += 1
        digest = hashlib.sha256(raw if isinstance(raw, bytes) else str(raw).encode()).hexdigest()[:32]
        claimed = await self._redis.set(f"{self._prefix}:jobs:claim:{digest}", b"1", nx=True, px=self._dedupe_ms)
        if not claimed:
            return  # another daemon (or an identical message moments ago) has it
        try:
            admitted = await self._admission.admit(raw, "pubsub")
        except REDIS_ERRORS:
            raise
        except Exception as exc:
            log.warning(
                "pub/sub job not persisted; handed to the durable stream",
                extra={"error": redact(f"{type(exc).__name__}: {exc}")},
            )
            await self._redis.xadd(stream_key(self._prefix), {FIELD: raw})
            return
        if admitted.outcome == "accepted" and admitted.spec is not None:
            await self._on_job(admitted.spec)
