"""The daemon's own event bus: every event also reaches in-process subscribers (the console's SSE).

The daemon announces its events through one :class:`EventSink`; with Redis that is the
``{prefix}:events`` publisher, without it the log. :class:`EventBus` sits in front of that sink
and hands each event to the subscribers inside this process too, so the console's live progress
needs no Redis. Like the sink it wraps, publishing never blocks and never raises: each subscriber
has a bounded queue, and a subscriber that does not keep up loses its oldest events (counted),
never slowing the pipeline that emits them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from actors.clock import Clock, MonotonicClock
from leadlawk_daemon.events import EventSink, EventType

__all__ = ["EventBus", "Subscription"]

log = logging.getLogger("leadlawk.events")


class Subscription:
    """One subscriber's events, oldest first, in a bounded queue that drops its oldest when full."""

    def __init__(self, capacity: int) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=capacity)
        self.dropped = 0

    def offer(self, event: dict[str, Any]) -> None:
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(event)

    async def get(self) -> dict[str, Any]:
        return await self.queue.get()


class EventBus:
    """An :class:`EventSink` that forwards to ``forward`` and fans out to local subscribers."""

    def __init__(self, forward: EventSink, *, capacity: int = 256, clock: Clock | None = None) -> None:
        self.forward = forward
        self._capacity = capacity
        self._clock = clock or MonotonicClock()
        self._subscribers: set[Subscription] = set()

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def publish(self, type: EventType, /, **context: Any) -> None:
        self.forward.publish(type, **context)
        if not self._subscribers:
            return
        event = {
            "type": type,
            "ts": datetime.fromtimestamp(self._clock.wall(), UTC).isoformat(timespec="milliseconds"),
            **context,
        }
        for subscription in self._subscribers:
            subscription.offer(event)

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[Subscription]:
        """Events published from entry until exit; the subscription ends with the block."""
        subscription = Subscription(self._capacity)
        self._subscribers.add(subscription)
        try:
            yield subscription
        finally:
            self._subscribers.discard(subscription)
            if subscription.dropped:
                log.info("event subscriber fell behind", extra={"dropped": subscription.dropped})
