"""Deliveries in the store: the ``deliveries`` outbox and each schedule's ``delivered_leads`` ledger.

One :class:`DeliveryLedger` over the store's own :class:`~leadlawk_daemon.store.session.Database`,
on PostgreSQL and SQLite alike (migration 007). A finished job's deliveries are made in one
transaction with the ledger rows of its new leads (:meth:`DeliveryLedger.create`): the delivery
rows are the outbox, so a crash after a job's end loses no digest (the sweep finds the job
without rows and makes them), and the ledger's primary key ``(schedule_id, place_id)`` makes a
lead new to a schedule exactly once, whichever of its runs finishes first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, get_args

import orjson

from actors.clock import Clock
from leadlawk_daemon.store.base import Store, StoreError, utc_from_epoch
from leadlawk_daemon.store.common import StoreCommon
from leadlawk_daemon.store.session import Database, Session

__all__ = [
    "DELIVERABLE_STATUSES",
    "DELIVERY_STATUSES",
    "Delivery",
    "DeliveryLedger",
    "DeliveryStatus",
    "ScheduleRef",
    "delivery_id",
    "ledger_of",
]

DeliveryStatus = Literal["pending", "delivered", "failed", "dead"]
DELIVERY_STATUSES: tuple[DeliveryStatus, ...] = get_args(DeliveryStatus)
# A cancelled job delivers nothing; a failed one delivers what it found, and says why it failed.
DELIVERABLE_STATUSES = ("succeeded", "partial", "failed")

_COLUMNS = (
    "id, destination, job_id, schedule_id, status, attempts, last_error, leads, summary, created_at, "
    "next_attempt_at, delivered_at"
)
# The job and, for a batch parent, its children: a batch's digest is its parent's.
_JOB_AND_CHILDREN = "(jl.job_id = $1 OR jl.job_id IN (SELECT c.id FROM jobs c WHERE c.parent_id = $1))"
_NOTIFY = {"postgres": "(spec -> 'notify') IS NOT NULL", "sqlite": "json_extract(spec, '$.notify') IS NOT NULL"}
_TABLE_EXISTS = {
    "postgres": "SELECT to_regclass($1) IS NOT NULL AS ok",
    "sqlite": "SELECT count(*) > 0 AS ok FROM sqlite_master WHERE type = 'table' AND name = $1",
}


def delivery_id(job_id: str, destination: str) -> str:
    """The id of a job's delivery to one destination: derived, so the sweep and the ``job.finished``
    handler (in any daemon) making it at once make one row. Also the webhook's idempotency key."""
    digest = hashlib.sha256(f"{job_id}\x00{destination}".encode()).hexdigest()
    return f"d{digest[:24]}"


@dataclass(frozen=True, slots=True)
class ScheduleRef:
    """The schedule that fired a job (H2's ``schedule_fires``), and whether it delivers empty digests."""

    id: str
    deliver_empty: bool = True


@dataclass(frozen=True, slots=True)
class Delivery:
    """One row of ``deliveries``: a job's digest to one destination, and how its sending stands."""

    id: str
    destination: str
    job_id: str
    schedule_id: str | None
    status: DeliveryStatus
    attempts: int
    last_error: str | None
    leads: tuple[str, ...]
    summary: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    next_attempt_at: datetime | None = None
    delivered_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "id": self.id,
            "destination": self.destination,
            "job_id": self.job_id,
            "schedule_id": self.schedule_id,
            "status": self.status,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "leads": len(self.leads),
            "summary": self.summary,
            "created_at": iso(self.created_at),
            "next_attempt_at": iso(self.next_attempt_at),
            "delivered_at": iso(self.delivered_at),
        }


def _time(value: Any) -> datetime | None:
    # SQLite hands timestamps back as the fixed-width ISO text they were stored as.
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def _row(row: Mapping[str, Any]) -> Delivery:
    return Delivery(
        id=row["id"],
        destination=row["destination"],
        job_id=row["job_id"],
        schedule_id=row["schedule_id"],
        status=row["status"],
        attempts=int(row["attempts"]),
        last_error=row["last_error"],
        leads=tuple(_json(row["leads"]) or ()),
        summary=dict(_json(row["summary"]) or {}),
        created_at=_time(row["created_at"]),
        next_attempt_at=_time(row["next_attempt_at"]),
        delivered_at=_time(row["delivered_at"]),
    )


def ledger_of(store: Store, clock: Clock | None = None) -> DeliveryLedger:
    """The ledger on ``store``'s database (the one SQL store; any other has no deliveries)."""
    if not isinstance(store, StoreCommon):
        raise StoreError(f"deliveries need the SQL store, not {type(store).__name__}")
    return DeliveryLedger(store.database, clock or store._clock)


class DeliveryLedger:
    def __init__(self, database: Database, clock: Clock) -> None:
        self.database = database
        self._clock = clock
        self._schedules_known = False

    def _now(self) -> datetime:
        return utc_from_epoch(self._clock.wall())

    def _sql(self, text: str) -> str:
        return text.replace("{notify}", _NOTIFY[self.database.dialect.name])

    # -- making a job's deliveries -----------------------------------------------------------------

    async def schedule_of(self, job_id: str) -> ScheduleRef | None:
        """The schedule whose fire made ``job_id`` (None: an ad-hoc job). Read from the schedules'
        own tables; before they exist (a store not migrated that far) every job is ad hoc."""
        async with self.database.reading() as session:
            if not self._schedules_known:
                for table in ("schedule_fires", "schedules"):
                    rows = await session.fetch(_TABLE_EXISTS[self.database.dialect.name], table)
                    if not rows or not rows[0]["ok"]:
                        return None
                self._schedules_known = True
            rows = await session.fetch(
                "SELECT f.schedule_id, s.deliver_empty FROM schedule_fires f "
                "LEFT JOIN schedules s ON s.id = f.schedule_id WHERE f.job_id = $1",
                job_id,
            )
        if not rows:
            return None
        empty = rows[0]["deliver_empty"]
        return ScheduleRef(str(rows[0]["schedule_id"]), True if empty is None else bool(empty))

    async def create(
        self,
        job_id: str,
        destinations: Sequence[str],
        summary: Mapping[str, Any],
        schedule: ScheduleRef | None,
    ) -> list[Delivery]:
        """Make ``job_id``'s deliveries, one per destination, with its new qualified leads; returns
        the ones made now (none when they exist already: made by the sweep, or another daemon).

        For a scheduled job, "new" is what the schedule's ledger did not hold: the ledger rows go in
        with the deliveries, in one transaction. An ad-hoc job delivers all its qualified leads."""
        now = self._now()
        names = sorted(set(destinations))
        if not names:
            return []
        made: list[str] = []
        async with self.database.writing() as session:
            for name in names:
                changed = await session.execute(
                    "INSERT INTO deliveries (id, destination, job_id, schedule_id, status, attempts, leads, "
                    "summary, created_at, next_attempt_at) VALUES ($1, $2, $3, $4, 'pending', 0, $5, $6, $7, $7) "
                    "ON CONFLICT (id) DO NOTHING",
                    delivery_id(job_id, name),
                    name,
                    job_id,
                    None if schedule is None else schedule.id,
                    [],
                    {},
                    now,
                )
                if changed:
                    made.append(delivery_id(job_id, name))
            if not made:
                return []
            leads = await self._new_leads(session, job_id, made[0], schedule, now)
            body = {**summary, "new": len(leads)}
            empty = not leads and schedule is not None and not schedule.deliver_empty
            if empty:
                body["skipped"] = "no new leads (the schedule's deliver_empty is false)"
            for one in made:
                await session.execute(
                    "UPDATE deliveries SET leads = $2, summary = $3, status = $4, delivered_at = $5 WHERE id = $1",
                    one,
                    leads,
                    body,
                    "delivered" if empty else "pending",
                    now if empty else None,
                )
        return [d for d in [await self.get(one) for one in made] if d is not None]

    async def _new_leads(
        self, session: Session, job_id: str, ledger_delivery: str, schedule: ScheduleRef | None, now: datetime
    ) -> list[str]:
        ranked = await session.fetch(
            f"SELECT jl.place_id, min(jl.rank) AS rank FROM job_leads jl WHERE {_JOB_AND_CHILDREN} "
            "AND jl.qualified GROUP BY jl.place_id ORDER BY min(jl.rank), jl.place_id",
            job_id,
        )
        order = [str(r["place_id"]) for r in ranked]
        if schedule is None:
            return order
        taken = await session.fetch(
            "INSERT INTO delivered_leads (schedule_id, place_id, delivery_id, delivered_at) "
            f"SELECT DISTINCT $2, jl.place_id, $3, CAST($4 AS {self.database.dialect.timestamp_type}) "
            f"FROM job_leads jl WHERE {_JOB_AND_CHILDREN} AND jl.qualified "
            "ON CONFLICT (schedule_id, place_id) DO NOTHING RETURNING place_id",
            job_id,
            schedule.id,
            ledger_delivery,
            now,
        )
        new = {str(r["place_id"]) for r in taken}
        return [place for place in order if place in new]

    async def unmade(self, limit: int = 100) -> list[str]:
        """Finished jobs that name destinations but have no delivery yet: the outbox's sweep."""
        async with self.database.reading() as session:
            rows = await session.fetch(
                self._sql(
                    "SELECT j.id FROM jobs j WHERE {notify} AND j.finished_at IS NOT NULL "
                    "AND j.status IN ('succeeded', 'partial', 'failed') "
                    "AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.job_id = j.id) "
                    "ORDER BY j.finished_at LIMIT $1"
                ),
                limit,
            )
        return [str(r["id"]) for r in rows]

    # -- sending ---------------------------------------------------------------------------------

    async def due(self, limit: int) -> list[Delivery]:
        """Pending deliveries whose next attempt is due, the longest-waiting first."""
        async with self.database.reading() as session:
            rows = await session.fetch(
                f"SELECT {_COLUMNS} FROM deliveries WHERE status = 'pending' AND next_attempt_at <= $1 "
                "ORDER BY next_attempt_at, id LIMIT $2",
                self._now(),
                limit,
            )
        return [_row(r) for r in rows]

    async def next_due(self) -> datetime | None:
        async with self.database.reading() as session:
            rows = await session.fetch("SELECT min(next_attempt_at) AS due_at FROM deliveries WHERE status = 'pending'")
        return _time(rows[0]["due_at"]) if rows else None

    async def claim(self, one: str, hold_s: float) -> bool:
        """Take a due delivery for ``hold_s``: no other daemon sends it meanwhile. False: taken."""
        now = self._now()
        return await self._changes(
            "UPDATE deliveries SET next_attempt_at = $3 WHERE id = $1 AND status = 'pending' AND next_attempt_at <= $2",
            one,
            now,
            utc_from_epoch(self._clock.wall() + hold_s),
        )

    async def delivered(self, one: str) -> bool:
        return await self._changes(
            "UPDATE deliveries SET status = 'delivered', attempts = attempts + 1, last_error = NULL, "
            "delivered_at = $2 WHERE id = $1 AND status = 'pending'",
            one,
            self._now(),
        )

    async def retry_later(self, one: str, error: str, delay_s: float) -> datetime | None:
        """The destination is down: try again in ``delay_s``. Returns the time set (None: the
        delivery was no longer pending), which :meth:`hurry` compares against."""
        at = utc_from_epoch(self._clock.wall() + delay_s)
        changed = await self._changes(
            "UPDATE deliveries SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3 "
            "WHERE id = $1 AND status = 'pending'",
            one,
            error[:2000],
            at,
        )
        return at if changed else None

    async def hurry(self, waiting: Mapping[str, datetime]) -> int:
        """Its destination is back: deliveries waiting to retry are due now. Each only if it still
        waits for the time this daemon set (compare and set): one another daemon has claimed since
        keeps its claim, so nothing is sent twice."""
        now = self._now()
        hurried = 0
        async with self.database.writing() as session:
            for one, at in waiting.items():
                hurried += await session.execute(
                    "UPDATE deliveries SET next_attempt_at = $3 WHERE id = $1 AND status = 'pending' "
                    "AND next_attempt_at = $2",
                    one,
                    at,
                    now,
                )
        return hurried

    async def dead(self, one: str, error: str) -> bool:
        """The destination refused it: the delivery's own failure, kept until replayed."""
        return await self._changes(
            "UPDATE deliveries SET status = 'dead', attempts = attempts + 1, last_error = $2 "
            "WHERE id = $1 AND status = 'pending'",
            one,
            error[:2000],
        )

    async def replay(self, one: str) -> bool:
        """Send it again, now: a dead delivery after its destination was fixed, or a delivered one
        asked for again (the receiver sees the same delivery id). False: unknown or pending."""
        return await self._changes(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = $2, delivered_at = NULL "
            "WHERE id = $1 AND status <> 'pending'",
            one,
            self._now(),
        )

    async def _changes(self, sql: str, *args: Any) -> bool:
        """Whether the statement changed a row."""
        async with self.database.writing() as session:
            return await session.execute(sql, *args) > 0

    # -- reading -----------------------------------------------------------------------------------

    async def get(self, one: str) -> Delivery | None:
        async with self.database.reading() as session:
            rows = await session.fetch(f"SELECT {_COLUMNS} FROM deliveries WHERE id = $1", one)
        return _row(rows[0]) if rows else None

    async def list(
        self, status: DeliveryStatus | None = None, job_id: str | None = None, limit: int = 100
    ) -> list[Delivery]:
        """Newest first."""
        async with self.database.reading() as session:
            rows = await session.fetch(
                f"SELECT {_COLUMNS} FROM deliveries WHERE (CAST($1 AS text) IS NULL OR status = $1) "
                "AND (CAST($2 AS text) IS NULL OR job_id = $2) ORDER BY created_at DESC, id LIMIT $3",
                status,
                job_id,
                limit,
            )
        return [_row(r) for r in rows]

    async def ledger(self, schedule_id: str) -> set[str]:
        """Every place ever delivered to a schedule."""
        async with self.database.reading() as session:
            rows = await session.fetch("SELECT place_id FROM delivered_leads WHERE schedule_id = $1", schedule_id)
        return {str(r["place_id"]) for r in rows}
