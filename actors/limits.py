"""What an actor cell is configured with: passed in by whoever builds the cell.

The runtime reads no configuration file: the daemon hands each cell its section of the settings
(``settings.ActorDefaults`` has these fields), a test or a bench a :class:`Limits`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["ActorLimits", "Limits"]


class ActorLimits(Protocol):
    @property
    def mailbox_capacity(self) -> int:
        """Messages accepted and not finished, at most (the bulkhead)."""
        ...

    @property
    def concurrency(self) -> int:
        """Messages handled at once (one worker each)."""
        ...

    @property
    def max_attempts(self) -> int:
        """Handlings that may crash before the message is given up."""
        ...

    @property
    def handle_timeout(self) -> float:
        """Seconds a handler may take before the watchdog cuts it."""
        ...


@dataclass(frozen=True, slots=True)
class Limits:
    mailbox_capacity: int
    concurrency: int
    max_attempts: int
    handle_timeout: float
