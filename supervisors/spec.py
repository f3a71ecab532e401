"""What a supervisor is told about its children: OTP's child specification, typed."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Child", "ChildSpec", "Restart", "Started", "Strategy"]

Started = Callable[[], None]


class Child(Protocol):
    """Anything a supervisor can run: a long-lived coroutine that reports when it is ready.

    ``run`` calls ``started()`` once it can do its work, then runs until it returns (a normal
    exit) or raises (a crash). Cancellation is the supervisor's "exit(shutdown)".
    """

    async def run(self, started: Started) -> None: ...


class Stoppable(Protocol):
    def request_stop(self, deadline: float | None) -> None:
        """Finish what is in hand and return from ``run``; ``deadline`` is on the supervisor's clock."""


class Restart(enum.Enum):
    PERMANENT = "permanent"  # always restarted
    TRANSIENT = "transient"  # restarted only after an abnormal exit
    TEMPORARY = "temporary"  # never restarted; removed from the supervisor when it exits


class Strategy(enum.Enum):
    ONE_FOR_ONE = "one_for_one"  # restart only the child that exited
    ONE_FOR_ALL = "one_for_all"  # stop all the others, then restart all
    REST_FOR_ONE = "rest_for_one"  # stop the children started after it, then restart it and them


@dataclass(frozen=True, slots=True)
class ChildSpec:
    id: str
    factory: Callable[[], Child]
    restart: Restart = Restart.PERMANENT
    shutdown_timeout: float = 5.0
    start_timeout: float = 60.0
