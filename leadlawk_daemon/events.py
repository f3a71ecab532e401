"""The events the daemon announces, and the port they go out through.

This is vocabulary, below every layer that announces something (actors, jobs, the Maps
adapter) and every adapter that carries it (``intake/events.py`` publishes to Redis,
``event_bus.py`` fans out in process): an emitter names a type and gives context, and knows
nothing of where it goes.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol, get_args

__all__ = ["EVENT_TYPES", "EventSink", "EventType"]

EventType = Literal[
    "job.accepted",
    "job.started",
    "job.progress",
    "job.finished",
    "job.rejected",
    "lead.written",
    "breaker.changed",
    "actor.restarted",
    # Google's limited view while a signed-in session is configured (docs/limited-view.md).
    "maps.session_signed_out",
    # One Maps exit's state changed (docs/egress-pool.md): its name, never its URL.
    "egress.changed",
]
# Every type, in the order declared: the list is written once, in the Literal.
EVENT_TYPES: tuple[EventType, ...] = get_args(EventType)


class EventSink(Protocol):
    def publish(self, type: EventType, /, **context: Any) -> None:
        """Announce an event; never blocks, never raises."""
