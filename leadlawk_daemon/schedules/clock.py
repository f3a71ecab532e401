"""The schedule clock: the time due times are judged by.

In production it is the database's own clock (:class:`DatabaseTime`), read through the store, so
every daemon on one database agrees when a schedule is due however their wall clocks disagree.
Tests and the bench run a simulated day with :class:`ScaledTime`: the database's clock still
moves it (so several processes agree), ``factor`` times faster, from a chosen ``origin``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

__all__ = ["DatabaseTime", "NowSource", "ScaledTime", "ScheduleClock"]


class NowSource(Protocol):
    async def database_now(self) -> datetime: ...


class ScheduleClock(Protocol):
    async def now(self) -> datetime:
        """The schedule clock's now (aware, UTC); raises ``StoreUnavailable`` with the database down."""
        ...

    def real_seconds(self, seconds: float) -> float:
        """How long ``seconds`` of schedule time take in real time (to sleep until a due time)."""
        ...

    def schedule_seconds(self, seconds: float) -> float:
        """How much schedule time ``seconds`` of real time are (a fire's time within its pass)."""
        ...


class DatabaseTime:
    def __init__(self, store: NowSource) -> None:
        self._store = store

    async def now(self) -> datetime:
        return await self._store.database_now()

    def real_seconds(self, seconds: float) -> float:
        return seconds

    def schedule_seconds(self, seconds: float) -> float:
        return seconds


class ScaledTime:
    """``origin + (database now - epoch) * factor``: a day in ``86400 / factor`` real seconds."""

    def __init__(self, store: NowSource, *, origin: datetime, epoch: datetime, factor: float) -> None:
        self._store = store
        self.origin = origin
        self.epoch = epoch
        self.factor = factor

    async def now(self) -> datetime:
        return self.origin + (await self._store.database_now() - self.epoch) * self.factor

    def real_seconds(self, seconds: float) -> float:
        return seconds / self.factor

    def schedule_seconds(self, seconds: float) -> float:
        return seconds * self.factor
