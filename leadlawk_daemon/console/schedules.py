"""The console's schedules page: every schedule, its next fire time and its last five runs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from leadlawk_daemon.schedules.book import RECENT
from leadlawk_daemon.store.schedules import ScheduleQueries

__all__ = ["schedule_rows"]


def _local(value: datetime, tz: str) -> str:
    return f"{value.astimezone(ZoneInfo(tz)):%Y-%m-%d %H:%M %Z}"


async def schedule_rows(store: object) -> list[dict[str, Any]]:
    """The page's rows, read from the store (none from a store that keeps no schedules)."""
    if not isinstance(store, ScheduleQueries):
        return []
    schedules = await store.list_schedules()
    fires = await store.recent_fires([s.id for s in schedules], RECENT)
    return [
        {
            "id": s.id, "name": s.name, "cron": s.cron, "tz": s.tz, "paused": s.paused,
            "next_local": _local(s.next_due_at, s.tz), "next_utc": f"{s.next_due_at.astimezone(UTC):%H:%M UTC}",
            "catch_up": s.catch_up, "overlap": s.overlap, "deliver": list(s.deliver),
            "fires": [
                {"when": _local(f.due_at, s.tz), "outcome": f.outcome, "job_id": f.job_id, "detail": f.detail}
                for f in fires.get(s.id, [])
            ],
        }
        for s in schedules
    ]  # fmt: skip
