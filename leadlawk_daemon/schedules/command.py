"""``leadlawk schedule …``: schedules managed from the command line, on the daemons' database.

They work whether or not a daemon runs (like ``jobs`` and ``dlq``); a daemon finds what changed at
its next look (``schedules.poll_interval``) and fires it when due.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TextIO
from zoneinfo import ZoneInfo

import orjson

from leadlawk_daemon.intake.admission import Admission, JobStore
from leadlawk_daemon.schedules.book import ScheduleBook, ScheduleExists, ScheduleView
from leadlawk_daemon.schedules.schedule import Fire, ScheduleError
from leadlawk_daemon.settings import Settings
from leadlawk_daemon.store import open_store_from_settings
from leadlawk_daemon.store.sql_store import SqlStore

__all__ = ["ScheduleCommandError", "add", "change", "list_schedules", "run_now", "show"]


class ScheduleCommandError(Exception):
    """What the user sees, in one line (exit status 1)."""


class _Unheard:
    """No daemon hears the CLI's events: a job it makes is found by a daemon's next lease poll."""

    def publish(self, type: str, /, **context: Any) -> None:
        pass


@asynccontextmanager
async def _book(settings: Settings) -> AsyncIterator[ScheduleBook]:
    async with open_store_from_settings(settings.database, migrate=True) as store:
        if not isinstance(store, SqlStore):
            raise ScheduleCommandError("this store keeps no schedules")

        def admission(jobs: JobStore) -> Admission:
            return Admission(
                jobs, store, _Unheard(), max_bytes=settings.server.max_body_bytes, queue_size=None,
                max_area_km2=settings.maps.max_area_km2, destinations=frozenset(settings.destinations),
            )  # fmt: skip

        yield ScheduleBook(
            store, admission, max_bytes=settings.server.max_body_bytes, max_area_km2=settings.maps.max_area_km2,
            destinations=frozenset(settings.destinations),
        )  # fmt: skip


def _when(value: datetime | None, tz: str) -> str:
    if value is None:
        return "-"
    local = value.astimezone(ZoneInfo(tz))
    return f"{local:%Y-%m-%d %H:%M %Z} ({value.astimezone(UTC):%H:%MZ})"


def _fire_line(fire: Fire, tz: str) -> str:
    job = f" {fire.job_id}" if fire.job_id else ""
    detail = f" ({fire.detail})" if fire.detail else ""
    return f"    {_when(fire.due_at, tz)}  {fire.outcome}{job}{detail}"


def _describe(view: ScheduleView, out: TextIO) -> None:
    s = view.schedule
    state = "paused" if s.paused else f"next {_when(s.next_due_at, s.tz)}"
    deliver = ", ".join(s.deliver) or "nowhere"
    out.write(f"{s.id}  {s.cron!r} {s.tz}  {state}  catch_up={s.catch_up} overlap={s.overlap} deliver={deliver}\n")
    for fire in view.fires:
        out.write(_fire_line(fire, s.tz) + "\n")


async def add(settings: Settings, definition: dict[str, Any], out: TextIO) -> int:
    try:
        async with _book(settings) as book:
            view = await book.add(definition)
    except ScheduleError as exc:
        raise ScheduleCommandError("invalid schedule: " + "; ".join(exc.problems)) from None
    except ScheduleExists as exc:
        raise ScheduleCommandError(str(exc)) from None
    out.write(f"added schedule {view.schedule.id}\n")
    _describe(view, out)
    return 0


async def list_schedules(settings: Settings, out: TextIO, *, as_json: bool = False) -> int:
    async with _book(settings) as book:
        views = await book.list()
    if as_json:
        out.write(orjson.dumps([v.to_dict() for v in views], option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    if not views:
        out.write("no schedules (add one: leadlawk schedule add QUERY --cron EXPR --tz ZONE)\n")
    for view in views:
        _describe(view, out)
    return 0


async def show(settings: Settings, schedule_id: str, out: TextIO, *, fires: int = 20) -> int:
    async with _book(settings) as book:
        view = await book.show(schedule_id, fires)
    if view is None:
        raise ScheduleCommandError(f"no schedule {schedule_id!r}")
    out.write(orjson.dumps(view.to_dict(), option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


async def change(settings: Settings, action: str, schedule_id: str, out: TextIO) -> int:
    """``pause``, ``resume`` or ``remove``."""
    async with _book(settings) as book:
        if action == "remove":
            if not await book.remove(schedule_id):
                raise ScheduleCommandError(f"no schedule {schedule_id!r}")
            out.write(f"removed schedule {schedule_id}\n")
            return 0
        view = await (book.pause(schedule_id) if action == "pause" else book.resume(schedule_id))
    if view is None:
        raise ScheduleCommandError(f"no schedule {schedule_id!r}")
    _describe(view, out)
    return 0


async def run_now(settings: Settings, schedule_id: str, out: TextIO) -> int:
    async with _book(settings) as book:
        try:
            job_id = await book.run_now(schedule_id)
        except ValueError as exc:
            raise ScheduleCommandError(str(exc)) from None
    if job_id is None:
        raise ScheduleCommandError(f"no schedule {schedule_id!r}")
    out.write(f"{job_id}\n")
    return 0


def definition_from(
    spec: dict[str, Any],
    *,
    schedule_id: str | None,
    name: str | None,
    cron: str,
    tz: str,
    deliver: Sequence[str] | None,
    catch_up: str,
    overlap: str,
    deliver_empty: bool,
    paused: bool,
) -> dict[str, Any]:
    """A definition from ``schedule add``'s options; ``spec`` is what ``submit``'s options make."""
    spec = {k: v for k, v in spec.items() if k != "id"}
    where = f" in {spec['location']}" if spec.get("location") else ""
    out: dict[str, Any] = {
        "name": name or f"{spec.get('query', 'schedule')}{where}",
        "spec": spec, "cron": cron, "tz": tz, "deliver": list(deliver or []), "catch_up": catch_up,
        "overlap": overlap, "deliver_empty": deliver_empty, "paused": paused,
    }  # fmt: skip
    if schedule_id is not None:
        out["id"] = schedule_id
    return out
