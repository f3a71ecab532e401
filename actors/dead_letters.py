"""Where messages go when their handler crashed on every attempt."""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["DeadLetter", "DeadLetterSink", "MemoryDeadLetters", "describe"]

log = logging.getLogger("leadlawk.dead_letters")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    kind: str  # message | job | lead
    payload: Any
    reason: str
    attempts: int
    source: str


class DeadLetterSink(Protocol):
    def dead_letter(self, letter: DeadLetter) -> None:
        """Take ``letter``; never blocks and never raises (an actor calls it while unwinding)."""


def describe(message: object) -> Any:
    """A message as plain data for a dead letter: its ``to_dict()`` where it has one."""
    to_dict = getattr(message, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    if isinstance(message, str | int | float | bool | dict | list) or message is None:
        return message
    return repr(message)


class MemoryDeadLetters:
    """The sink before the database is wired in, and in tests: bounded, logged, never blocking."""

    def __init__(self, capacity: int = 10_000) -> None:
        self.letters: collections.deque[DeadLetter] = collections.deque(maxlen=capacity)

    def dead_letter(self, letter: DeadLetter) -> None:
        # The reason comes masked from the cell (ActorCell.redact), and the daemon's log
        # formatters mask every field again.
        self.letters.append(letter)
        log.error(
            "dead letter",
            extra={"source": letter.source, "kind": letter.kind, "reason": letter.reason,
                   "attempts": letter.attempts},
        )
