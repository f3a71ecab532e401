"""Writing one fire that creates a job: through the daemon's one admission, in one transaction.

The job goes in through :class:`~leadlawk_daemon.intake.admission.Admission` like any submitted
job (its spec validated again, ``job.accepted`` announced with ``source: schedule``, the
``leadlawk_jobs_total{status="queued"}`` count), so it is leased and run like any other. The
admission's job store is a :class:`FireWriter`: its ``create_job`` writes the schedule's move on,
the fire rows and the job together (:meth:`~leadlawk_daemon.store.schedules.ScheduleQueries.record_fires`).
A spec that no longer validates is dead-lettered by the admission and its due time recorded
``missed`` with the problems: a job's own failure (retrying cannot fix it), never an outage.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from leadlawk_daemon.intake.admission import Admission, JobStore
from leadlawk_daemon.schedules.schedule import Fire, Schedule
from leadlawk_daemon.store.sql_store import SqlStore

__all__ = ["AdmissionFactory", "FireWriter", "write_fire"]

AdmissionFactory = Callable[[JobStore], Admission]
"""The daemon's admission over a given job store (no queue bound: see docs/schedules.md)."""


class FireWriter:
    """The job store a fire's admission writes through: the job and the fire in one transaction."""

    def __init__(
        self,
        store: SqlStore,
        schedule_id: str,
        expected_due: datetime | None,
        next_due_at: datetime | None,
        fires: Sequence[Fire],
    ) -> None:
        self._store = store
        self._schedule_id = schedule_id
        self._expected_due = expected_due
        self._next_due_at = next_due_at
        self._fires = fires

    async def create_job(self, job_id: str, spec: Mapping[str, Any], parent_id: str | None = None) -> bool:
        return await self.create_batch(job_id, spec, [])

    async def create_batch(
        self, job_id: str, spec: Mapping[str, Any], children: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> bool:
        return await self._store.record_fires(
            self._schedule_id, self._expected_due, self._next_due_at, self._fires, (job_id, spec, children)
        )

    async def count_jobs(self, status: Literal["queued"]) -> int:
        # Never asked: a fire's admission has no queue bound.
        return 0


async def write_fire(
    store: SqlStore,
    admission: AdmissionFactory,
    schedule: Schedule,
    fires: Sequence[Fire],
    job_fire: Fire,
    *,
    expected_due: datetime | None,
    next_due_at: datetime | None,
) -> Literal["accepted", "duplicate", "rejected"]:
    """Admit ``job_fire``'s job and record ``fires`` with it. ``duplicate``: another daemon wrote
    this due time first (nothing written here). ``rejected``: the spec no longer validates; the due
    time is recorded ``missed`` with the problems instead."""
    assert job_fire.job_id is not None
    writer = FireWriter(store, schedule.id, expected_due, next_due_at, fires)
    admitted = await admission(writer).admit(
        schedule.job_spec(job_fire.job_id),
        "schedule",
        schedule_id=schedule.id,
        due_at=job_fire.due_at.isoformat(),
    )
    if admitted.outcome == "rejected":
        detail = "; ".join(admitted.problems)[:2000]
        instead = [
            dataclasses.replace(f, outcome="missed", job_id=None, detail=detail) if f is job_fire else f for f in fires
        ]
        await store.record_fires(schedule.id, expected_due, next_due_at, instead)
    return admitted.outcome
