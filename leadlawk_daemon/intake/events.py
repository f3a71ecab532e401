"""The events channel ``{prefix}:events``: what the daemon announces, and how a client follows a job.

Events are informational. :meth:`EventPublisher.publish` never blocks and never raises: it
serialises the event (secrets redacted) into a bounded buffer, and one owned task drains the
buffer to Redis. While Redis is down the buffer fills and the oldest events are dropped and
counted, so a Redis outage can neither stall nor crash the pipeline that emits them.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import orjson
import redis.asyncio as aioredis

from actors.clock import Clock, MonotonicClock
from leadlawk_daemon.events import EVENT_TYPES, EventSink, EventType
from leadlawk_daemon.intake.reconnect import REDIS_ERRORS, Reconnect
from leadlawk_daemon.intake.service import Service
from leadlawk_daemon.logs import redact

__all__ = [
    "EVENT_TYPES",
    "EventPublisher",
    "EventSink",
    "EventType",
    "JobEvents",
    "events_channel",
    "follow_events",
]

log = logging.getLogger("leadlawk.events")

# The events that end a job for someone following it.
_FINAL = ("job.finished", "job.rejected")


def events_channel(prefix: str) -> str:
    return f"{prefix}:events"


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {redact(str(k)): _redacted(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_redacted(v) for v in value]
    return value


class EventPublisher(Service):
    """Publishes events on ``{prefix}:events`` from a bounded drop-oldest buffer."""

    name = "events"
    stop_timeout = 0.5

    def __init__(
        self,
        redis: aioredis.Redis,
        prefix: str,
        *,
        capacity: int = 1000,
        reconnect_max_delay: float = 30.0,
        flush_timeout: float = 1.0,
        clock: Clock | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"events: capacity must be at least 1 (got {capacity})")
        super().__init__()
        self.channel = events_channel(prefix)
        self._redis = redis
        self._clock = clock or MonotonicClock()
        self._buffer: deque[bytes] = deque()
        self._capacity = capacity
        self._pending = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._flush_timeout = flush_timeout
        self._link = Reconnect("events", clock=self._clock, max_delay=reconnect_max_delay)
        self.published = 0
        self.dropped = 0

    @property
    def connected(self) -> bool:
        return self._link.connected

    @property
    def depth(self) -> int:
        return len(self._buffer)

    def publish(self, type: EventType, /, **context: Any) -> None:
        event = {
            "type": type,
            "ts": datetime.fromtimestamp(self._clock.wall(), UTC).isoformat(timespec="milliseconds"),
        }
        event.update(_redacted(context))
        try:
            data = orjson.dumps(event, default=lambda v: redact(str(v)), option=orjson.OPT_NON_STR_KEYS)
        except (TypeError, orjson.JSONEncodeError) as exc:
            self.dropped += 1
            log.warning("event not serialisable, dropped", extra={"event_type": type, "error": str(exc)})
            return
        if len(self._buffer) >= self._capacity:
            self._buffer.popleft()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("events buffer full, oldest dropped", extra={"dropped": self.dropped})
        self._buffer.append(data)
        self._drained.clear()
        self._pending.set()

    async def run(self, started: Callable[[], None]) -> None:
        started()
        while self._running():
            await self._pending.wait()
            while self._buffer and self._running():
                data = self._buffer[0]
                try:
                    await self._redis.publish(self.channel, data)
                except REDIS_ERRORS as exc:
                    await self._link.down(exc)
                    continue
                self._link.up()
                # The event may have been dropped by publish() while we awaited Redis.
                if self._buffer and self._buffer[0] is data:
                    self._buffer.popleft()
                self.published += 1
            self._pending.clear()
            self._drained.set()

    def _wake(self) -> None:
        self._pending.set()

    async def _before_stop(self) -> None:
        # Let the last events (job.finished, say) out, within a bound: shutdown must not wait on Redis.
        try:
            async with asyncio.timeout(self._flush_timeout):
                await self._drained.wait()
        except TimeoutError:
            log.warning("events not flushed at shutdown", extra={"left": len(self._buffer)})


class JobEvents:
    """One job's events, subscribed on entry so that nothing published after entry is missed.

    ``async with follow_events(redis, prefix, job_id) as events:`` then submit, then
    ``async for event in events``: the iteration ends after ``job.finished`` (or ``job.rejected``)
    of that job. Events of a batch's children (``parent_id`` equal to the id) are included.
    """

    def __init__(self, redis: aioredis.Redis, prefix: str, job_id: str) -> None:
        self._pubsub = redis.pubsub()
        self._channel = events_channel(prefix)
        self._job_id = job_id
        self._subscribed = False

    async def __aenter__(self) -> JobEvents:
        await self._pubsub.subscribe(self._channel)
        self._subscribed = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]  # unannotated before redis-py 8.2

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._events()

    async def _events(self) -> AsyncIterator[dict[str, Any]]:
        if not self._subscribed:
            await self.__aenter__()
        while True:
            message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is None or message.get("type") != "message":
                continue
            try:
                event = orjson.loads(message["data"])
            except orjson.JSONDecodeError:
                continue  # someone else's noise on the channel
            if not isinstance(event, dict):
                continue
            if self._job_id not in (event.get("job_id"), event.get("parent_id")):
                continue
            yield event
            if event.get("type") in _FINAL and event.get("job_id") == self._job_id:
                return


def follow_events(redis: aioredis.Redis, prefix: str, job_id: str) -> JobEvents:
    """The events of ``job_id`` until it finishes; enter it (``async with``) before submitting."""
    return JobEvents(redis, prefix, job_id)
