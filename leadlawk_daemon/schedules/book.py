"""Managing schedules: what ``leadlawk schedule …``, ``/schedules`` and the console's page do.

Every operation works on the database the daemons use, so it works whether or not a daemon runs:
a schedule added here is fired by whichever daemon first finds it due. Next due times are
computed from the schedule clock (the database's), never this process's wall clock.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from leadlawk_daemon.jobspec import DEFAULT_MAX_AREA_KM2
from leadlawk_daemon.schedules.clock import DatabaseTime, ScheduleClock
from leadlawk_daemon.schedules.fire import AdmissionFactory, FireBatch, write_fire
from leadlawk_daemon.schedules.schedule import Fire, Schedule, ScheduleDefinition, job_id_for, parse_schedule
from leadlawk_daemon.store.schedules import FireDecision
from leadlawk_daemon.store.sql_store import SqlStore

__all__ = ["RECENT", "ScheduleBook", "ScheduleExists", "ScheduleView"]

# Fires shown with each schedule (the console's "last five runs").
RECENT = 5


class ScheduleExists(Exception):
    """``add`` of an id already taken (``replace`` changes a stored one)."""


@dataclass(frozen=True, slots=True)
class ScheduleView:
    schedule: Schedule
    fires: Sequence[Fire]

    def to_dict(self) -> dict[str, Any]:
        return self.schedule.to_dict(self.fires)


class ScheduleBook:
    def __init__(
        self,
        store: SqlStore,
        admission: AdmissionFactory,
        *,
        max_bytes: int,
        max_area_km2: float = DEFAULT_MAX_AREA_KM2,
        destinations: Collection[str] | None = None,
        schedule_clock: Callable[[SqlStore], ScheduleClock] = DatabaseTime,
    ) -> None:
        self.store = store
        self._admission = admission
        self._max_bytes = max_bytes
        self._max_area_km2 = max_area_km2
        self._destinations = destinations
        self._time = schedule_clock(store)

    def parse(self, obj: Any) -> ScheduleDefinition:
        """Raises :class:`~.schedule.ScheduleError` naming every problem."""
        return parse_schedule(
            obj, max_bytes=self._max_bytes, max_area_km2=self._max_area_km2, destinations=self._destinations
        )

    async def add(self, obj: Any) -> ScheduleView:
        definition = self.parse(obj)
        now = await self._time.now()
        if not await self.store.add_schedule(definition, definition.rule.next_after(now), now):
            raise ScheduleExists(f"schedule {definition.id!r} exists already (remove it first, or replace it)")
        return await self._view(definition.id)

    async def replace(self, schedule_id: str, obj: Any) -> ScheduleView | None:
        """A new definition for ``schedule_id`` (its ``id`` field, if given, must agree)."""
        definition = self.parse({**obj, "id": schedule_id} if isinstance(obj, dict) else obj)
        now = await self._time.now()
        if not await self.store.replace_schedule(definition, definition.rule.next_after(now), now):
            return None
        return await self._view(schedule_id)

    async def list(self) -> list[ScheduleView]:
        schedules = await self.store.list_schedules()
        fires = await self.store.recent_fires([s.id for s in schedules], RECENT)
        return [ScheduleView(s, fires.get(s.id, [])) for s in schedules]

    async def show(self, schedule_id: str, fires: int = RECENT) -> ScheduleView | None:
        schedule = await self.store.get_schedule(schedule_id)
        if schedule is None:
            return None
        recent = await self.store.recent_fires([schedule_id], fires)
        return ScheduleView(schedule, recent.get(schedule_id, []))

    async def pause(self, schedule_id: str) -> ScheduleView | None:
        now = await self._time.now()
        return await self._view(schedule_id) if await self.store.set_paused(schedule_id, True, None, now) else None

    async def resume(self, schedule_id: str) -> ScheduleView | None:
        """Due next at the first cron time from now: the time it was paused is not caught up."""
        schedule = await self.store.get_schedule(schedule_id)
        if schedule is None:
            return None
        now = await self._time.now()
        await self.store.set_paused(schedule_id, False, schedule.rule.next_after(now), now)
        return await self._view(schedule_id)

    async def remove(self, schedule_id: str) -> bool:
        return await self.store.remove_schedule(schedule_id)

    async def run_now(self, schedule_id: str) -> str | None:
        """Fire once now, outside the cron times (overlap not applied: an operator asked for it);
        the job's id, or ``None`` for an unknown schedule. Raises ``ValueError`` with the problems
        when its spec no longer validates."""
        schedule = await self.store.get_schedule(schedule_id)
        if schedule is None:
            return None
        now = await self._time.now()
        fire = Fire(schedule.id, now, "fired", now, job_id_for(schedule.id, now, seconds=True))
        decision = FireDecision(schedule.id, None, None, [fire])
        outcome = await write_fire(
            FireBatch(self.store.record_fire_batch, 1), self._admission, schedule, decision, fire
        )
        if outcome == "rejected":
            latest = await self.store.recent_fires([schedule.id], 1)
            detail = latest[schedule.id][0].detail if latest.get(schedule.id) else None
            raise ValueError(f"schedule {schedule.id!r}: its job spec no longer validates: {detail}")
        return fire.job_id

    async def _view(self, schedule_id: str) -> ScheduleView:
        view = await self.show(schedule_id)
        if view is None:
            raise LookupError(f"schedule {schedule_id!r} vanished while it was being changed")
        return view
