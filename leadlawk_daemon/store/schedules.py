"""Schedules and their fires, with the SQL they own (migration 006).

A fire is written in one transaction: the schedule's ``next_due_at`` is moved on by
compare-and-set (only from the value the firing daemon read), each due time gets its
``schedule_fires`` row and a fired due time its job. Two daemons firing one due time cannot both
succeed: the second's compare-and-set finds nothing to change, and the keys on
``schedule_fires (schedule_id, due_at)`` and ``jobs (id)`` refuse a second row even then.

Due-ness is judged on the schedule clock's now, passed in (the database's own, read by
:meth:`ScheduleQueries.database_now`; tests scale it); a claim's expiry is always the database's
clock, so a daemon killed holding claims loses them after ``claim_ttl`` seconds of real time.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from leadlawk_daemon.schedules.schedule import Fire, Schedule, ScheduleDefinition
from leadlawk_daemon.store.common import StoreCommon
from leadlawk_daemon.store.dialect import Dialect
from leadlawk_daemon.store.lifecycle import insert_jobs
from leadlawk_daemon.store.session import Session

__all__ = ["FireDecision", "JobToCreate", "ScheduleQueries", "WaitingFire"]

_COLUMNS = (
    "id, name, spec, cron, tz, catch_up, overlap, deliver, deliver_empty, paused, created_at, updated_at, next_due_at"
)
_FIRE_COLUMNS = "schedule_id, due_at, job_id, outcome, fired_at, detail"
# Fire rows go in one statement (one round trip), in chunks within every database's parameter limit.
_FIRES_PER_INSERT = 100
# A job a fire created and that has not finished yet: the next fire overlaps it.
_LIVE = "('queued', 'running')"

JobToCreate = tuple[str, Mapping[str, Any], Sequence[tuple[str, Mapping[str, Any]]]]
"""A job's id, its spec and its batch children, to be inserted with a fire."""


@dataclass(frozen=True, slots=True)
class FireDecision:
    """What one fire writes: the schedule moved on (unless ``expected_due`` is None: a run-now),
    its fire rows, and its job."""

    schedule_id: str
    expected_due: datetime | None
    next_due_at: datetime | None
    fires: Sequence[Fire]
    job: JobToCreate | None = None


def _schedule(row: Mapping[str, Any]) -> Schedule:
    return Schedule(
        id=row["id"],
        name=row["name"],
        spec=dict(row["spec"]),
        cron=row["cron"],
        tz=row["tz"],
        catch_up=row["catch_up"],
        overlap=row["overlap"],
        deliver=tuple(row["deliver"] or ()),
        deliver_empty=bool(row["deliver_empty"]),
        paused=bool(row["paused"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        next_due_at=row["next_due_at"],
    )


def _fire(row: Mapping[str, Any]) -> Fire:
    return Fire(
        schedule_id=row["schedule_id"],
        due_at=row["due_at"],
        outcome=row["outcome"],
        fired_at=row["fired_at"],
        job_id=row["job_id"],
        detail=row["detail"],
    )


@functools.cache
def _claim_sql(d: Dialect) -> str:
    return (
        f"UPDATE schedules SET claimed_by = $1, claim_expires_at = {d.seconds_after_now('CAST($4 AS float8)')} "
        "WHERE id IN (SELECT s.id FROM schedules s WHERE NOT s.paused AND s.next_due_at <= $2 "
        f"AND (s.claim_expires_at IS NULL OR s.claim_expires_at < {d.now} OR s.claimed_by = $1) "
        f"ORDER BY s.next_due_at LIMIT $3{d.skip_locked}) "
        f"RETURNING {_COLUMNS}"
    )


@functools.cache
def _insert_fires_sql(rows: int) -> str:
    values = ", ".join(
        f"(${6 * r + 1}, ${6 * r + 2}, ${6 * r + 3}, ${6 * r + 4}, ${6 * r + 5}, ${6 * r + 6})" for r in range(rows)
    )
    return f"INSERT INTO schedule_fires ({_FIRE_COLUMNS}) VALUES {values} ON CONFLICT DO NOTHING"


@functools.cache
def _previous_sql(schedules: int) -> str:
    """Of each schedule, the latest fire that has (or will have) a job, and where that job stands."""
    ids = ", ".join(f"${n + 1}" for n in range(schedules))
    return (
        "SELECT schedule_id, outcome, status FROM (SELECT f.schedule_id, f.outcome, j.status, ROW_NUMBER() OVER "
        "(PARTITION BY f.schedule_id ORDER BY f.due_at DESC) AS n FROM schedule_fires f "
        f"LEFT JOIN jobs j ON j.id = f.job_id WHERE f.job_id IS NOT NULL AND f.schedule_id IN ({ids})) AS latest "
        "WHERE n = 1"
    )


# Queued fires whose job is not created yet and whose previous fire's job has finished.
_WAITING_SQL = (
    f"SELECT f.schedule_id, f.due_at, f.job_id, {', '.join('s.' + c for c in _COLUMNS.split(', ')[1:])} "
    "FROM schedule_fires f JOIN schedules s ON s.id = f.schedule_id "
    "WHERE f.outcome = 'queued' AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = f.job_id) "
    "AND NOT EXISTS (SELECT 1 FROM schedule_fires p JOIN jobs pj ON pj.id = p.job_id "
    f"  WHERE p.schedule_id = f.schedule_id AND p.due_at < f.due_at AND pj.status IN {_LIVE}) "
    "ORDER BY f.due_at LIMIT $1"
)


@dataclass(frozen=True, slots=True)
class WaitingFire:
    """A queued fire ready to have its job created, with its schedule."""

    schedule: Schedule
    due_at: datetime
    job_id: str


class ScheduleQueries(StoreCommon):
    async def database_now(self) -> datetime:
        """The database's own clock: the one every daemon judges due times by."""
        async with self.database.reading() as session:
            rows = await session.fetch(f"SELECT {self.database.dialect.now} AS db_now")
        value = rows[0]["db_now"]
        return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))

    # -- definitions --------------------------------------------------------------------------------

    async def add_schedule(self, definition: ScheduleDefinition, next_due_at: datetime, now: datetime) -> bool:
        """Store a new schedule; ``False`` when its id is taken."""
        async with self.database.writing() as session:
            return (
                await session.execute(
                    f"INSERT INTO schedules ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, "
                    "$12) ON CONFLICT (id) DO NOTHING",
                    *_definition_values(definition),
                    now,
                    next_due_at,
                )
                > 0
            )

    async def replace_schedule(self, definition: ScheduleDefinition, next_due_at: datetime, now: datetime) -> bool:
        """A new definition for a stored schedule, due next at ``next_due_at``; its fires are kept."""
        async with self.database.writing() as session:
            return (
                await session.execute(
                    "UPDATE schedules SET name = $2, spec = $3, cron = $4, tz = $5, catch_up = $6, overlap = $7, "
                    "deliver = $8, deliver_empty = $9, paused = $10, updated_at = $11, next_due_at = $12, "
                    "claimed_by = NULL, claim_expires_at = NULL WHERE id = $1",
                    *_definition_values(definition),
                    now,
                    next_due_at,
                )
                > 0
            )

    async def set_paused(self, schedule_id: str, paused: bool, next_due_at: datetime | None, now: datetime) -> bool:
        """Pause, or resume due next at ``next_due_at`` (the time it was paused is not caught up)."""
        async with self.database.writing() as session:
            return (
                await session.execute(
                    "UPDATE schedules SET paused = $2, updated_at = $3, next_due_at = COALESCE($4, next_due_at) "
                    "WHERE id = $1",
                    schedule_id,
                    paused,
                    now,
                    next_due_at,
                )
                > 0
            )

    async def remove_schedule(self, schedule_id: str) -> bool:
        """The schedule and its fires; the jobs it fired stay."""
        async with self.database.writing() as session:
            await session.execute("DELETE FROM schedule_fires WHERE schedule_id = $1", schedule_id)
            return await session.execute("DELETE FROM schedules WHERE id = $1", schedule_id) > 0

    async def get_schedule(self, schedule_id: str) -> Schedule | None:
        async with self.database.reading() as session:
            rows = await session.fetch(f"SELECT {_COLUMNS} FROM schedules WHERE id = $1", schedule_id)
        return _schedule(rows[0]) if rows else None

    async def list_schedules(self, limit: int = 500) -> list[Schedule]:
        async with self.database.reading() as session:
            rows = await session.fetch(f"SELECT {_COLUMNS} FROM schedules ORDER BY id LIMIT $1", limit)
        return [_schedule(row) for row in rows]

    async def recent_fires(self, schedule_ids: Sequence[str], per_schedule: int = 5) -> dict[str, list[Fire]]:
        """The last ``per_schedule`` fires of each schedule, newest first."""
        if not schedule_ids:
            return {}
        async with self.database.reading() as session:
            rows = await session.fetch(
                f"SELECT {_FIRE_COLUMNS} FROM (SELECT {_FIRE_COLUMNS}, ROW_NUMBER() OVER "
                "(PARTITION BY schedule_id ORDER BY due_at DESC) AS n FROM schedule_fires) AS ranked "
                "WHERE n <= $1 ORDER BY schedule_id, due_at DESC",
                per_schedule,
            )
        wanted = set(schedule_ids)
        out: dict[str, list[Fire]] = {sid: [] for sid in schedule_ids}
        for row in rows:
            if row["schedule_id"] in wanted:
                out[row["schedule_id"]].append(_fire(row))
        return out

    async def fires_of(self, schedule_id: str, limit: int = 10_000) -> list[Fire]:
        """Every fire of a schedule, oldest first."""
        async with self.database.reading() as session:
            rows = await session.fetch(
                f"SELECT {_FIRE_COLUMNS} FROM schedule_fires WHERE schedule_id = $1 ORDER BY due_at LIMIT $2",
                schedule_id,
                limit,
            )
        return [_fire(row) for row in rows]

    async def schedule_of_job(self, job_id: str) -> str | None:
        """The schedule whose fire created this job, if one did."""
        async with self.database.reading() as session:
            rows = await session.fetch("SELECT schedule_id FROM schedule_fires WHERE job_id = $1", job_id)
        return rows[0]["schedule_id"] if rows else None

    # -- firing -------------------------------------------------------------------------------------

    async def earliest_due(self) -> datetime | None:
        """The earliest ``next_due_at`` of the schedules not paused: when the firing loop next has work."""
        async with self.database.reading() as session:
            rows = await session.fetch("SELECT MIN(next_due_at) AS next_due_at FROM schedules WHERE NOT paused")
        return rows[0]["next_due_at"] if rows else None

    async def claim_due(self, owner: str, now: datetime, limit: int, claim_ttl_s: float) -> list[Schedule]:
        """Claim up to ``limit`` schedules due by ``now`` that no other daemon holds a live claim on
        (a claim lasts ``claim_ttl_s`` on the database's clock, or until the fire is written)."""
        async with self.database.writing() as session:
            rows = await session.fetch(_claim_sql(self.database.dialect), owner, now, limit, float(claim_ttl_s))
        return sorted((_schedule(row) for row in rows), key=lambda s: s.next_due_at)

    async def previous_fire(self, schedule_id: str) -> tuple[str, str | None] | None:
        """The latest fire that has a job id: its outcome and its job's status (``None``: not created yet)."""
        return (await self.previous_fires([schedule_id])).get(schedule_id)

    async def previous_fires(self, schedule_ids: Sequence[str]) -> dict[str, tuple[str, str | None]]:
        """:meth:`previous_fire` of each of a claimed batch, in one query (none: no such fire yet)."""
        if not schedule_ids:
            return {}
        async with self.database.reading() as session:
            rows = await session.fetch(_previous_sql(len(schedule_ids)), *schedule_ids)
        return {row["schedule_id"]: (row["outcome"], row["status"]) for row in rows}

    async def record_fire_batch(self, decisions: Sequence[FireDecision]) -> list[bool]:
        """Write fire decisions in one transaction, each all or nothing: move ``next_due_at`` on from
        ``expected_due`` (``None``: a run-now, which moves nothing), insert the job and the fire rows.
        Each decision's ``False``: nothing of it written, because another daemon moved the schedule
        on first, or its job exists already."""
        written: list[bool] = []
        rows: list[Fire] = []
        async with self.database.writing() as session:
            for decision in decisions:
                done = await _write_decision(session, decision, self._now())
                written.append(done)
                if done:
                    rows.extend(decision.fires)
            for start in range(0, len(rows), _FIRES_PER_INSERT):
                chunk = rows[start : start + _FIRES_PER_INSERT]
                values = [
                    v for f in chunk for v in (f.schedule_id, f.due_at, f.job_id, f.outcome, f.fired_at, f.detail)
                ]
                await session.execute(_insert_fires_sql(len(chunk)), *values)
        return written

    async def waiting_fires(self, limit: int) -> list[WaitingFire]:
        """Queued fires whose previous job has finished: their jobs can be created now."""
        async with self.database.reading() as session:
            rows = await session.fetch(_WAITING_SQL, limit)
        return [WaitingFire(_schedule({**row, "id": row["schedule_id"]}), row["due_at"], row["job_id"]) for row in rows]


async def _move_on(session: Session, schedule_id: str, expected: datetime, to: datetime | None) -> bool:
    """Compare-and-set: the schedule's ``next_due_at`` from ``expected`` to ``to``."""
    changed = await session.execute(
        "UPDATE schedules SET next_due_at = $3, claimed_by = NULL, claim_expires_at = NULL "
        "WHERE id = $1 AND next_due_at = $2",
        schedule_id,
        expected,
        to,
    )
    return changed > 0


async def _write_decision(session: Session, d: FireDecision, now: datetime) -> bool:
    """One decision's move on and job, inside the batch's transaction (its fire rows come after)."""
    if d.expected_due is not None and not await _move_on(session, d.schedule_id, d.expected_due, d.next_due_at):
        return False
    if d.job is None:
        return True
    job_id, spec, children = d.job
    if await insert_jobs(session, job_id, spec, children, None, d.fires[-1].fired_at if d.fires else now):
        return True
    # This due time's job exists: it fired already. Its move on is taken back, the batch goes on.
    if d.expected_due is not None and d.next_due_at is not None:
        await _move_on(session, d.schedule_id, d.next_due_at, d.expected_due)
    return False


def _definition_values(d: ScheduleDefinition) -> tuple[Any, ...]:
    return (d.id, d.name, d.spec, d.cron, d.tz, d.catch_up, d.overlap, list(d.deliver), d.deliver_empty, d.paused)
