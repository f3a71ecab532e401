"""What a supervisor reports about its children, for logs, metrics and tests."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["EventKind", "SupervisorEvent", "SupervisorListener"]


class EventKind(enum.Enum):
    STARTED = "started"  # the child is ready
    START_FAILED = "start_failed"
    EXITED = "exited"  # the child ended by itself; ``reason`` is None for a normal exit
    RESTARTING = "restarting"  # a restart is scheduled after ``delay``
    STOPPED = "stopped"  # the supervisor stopped the child
    ABANDONED = "abandoned"  # the child ignored cancellation past its timeout
    GAVE_UP = "gave_up"  # restart intensity exceeded


@dataclass(frozen=True, slots=True)
class SupervisorEvent:
    supervisor: str
    kind: EventKind
    child: str | None = None
    reason: BaseException | None = None
    delay: float = 0.0
    restarts: int = 0  # how many times this child has been restarted so far


SupervisorListener = Callable[[SupervisorEvent], None]
