"""Job intake over Redis (pub/sub and the durable stream) and the events channel."""

from __future__ import annotations

from leadlawk_daemon.intake.admission import Admission, Admitted, DeadLetterStore, JobStore, QueueFull, content_id
from leadlawk_daemon.intake.events import EventPublisher, EventSink, EventType, JobEvents, follow_events
from leadlawk_daemon.intake.pubsub import PubSubIntake
from leadlawk_daemon.intake.stream import StreamIntake
from leadlawk_daemon.intake.submit import submit_to_stream

__all__ = [
    "Admission",
    "Admitted",
    "DeadLetterStore",
    "EventPublisher",
    "EventSink",
    "EventType",
    "JobEvents",
    "JobStore",
    "PubSubIntake",
    "QueueFull",
    "StreamIntake",
    "content_id",
    "follow_events",
    "submit_to_stream",
]
