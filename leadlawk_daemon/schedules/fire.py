"""Writing fires: a group of due schedules' fires in one transaction, each job through the
daemon's one admission.

The job goes in through :class:`~leadlawk_daemon.intake.admission.Admission` like any submitted
job (its spec validated again, ``job.accepted`` announced with ``source: schedule``, the
``leadlawk_jobs_total{status="queued"}`` count), so it is leased and run like any other. The
admission's job store is a :class:`FireWriter`: its ``create_job`` hands the job, with the
schedule's move on and its fire rows, to the group's :class:`FireBatch`, which writes every
member's decision in one transaction
(:meth:`~leadlawk_daemon.store.schedules.ScheduleQueries.record_fire_batch`): a busy minute costs a
few transactions, not one per schedule. The admission announces a job only once its transaction
has committed. A spec that no longer validates is dead-lettered by the admission and its due time
recorded ``missed`` with the problems: a job's own failure (retrying cannot fix it), never an outage.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal

from leadlawk_daemon.intake.admission import Admission, JobStore
from leadlawk_daemon.schedules.schedule import Fire, Schedule
from leadlawk_daemon.store.schedules import FireDecision

__all__ = ["AdmissionFactory", "FireBatch", "FireWriter", "write_fire"]

AdmissionFactory = Callable[[JobStore], Admission]
"""The daemon's admission over a given job store (no queue bound: see docs/schedules.md)."""


class FireBatch:
    """The fires of one group of claimed schedules, written in one transaction.

    Each member (one schedule's fire, decided and admitted on its own task) arrives exactly once:
    with a decision (:meth:`write`, which returns when the group is written) or without
    (:meth:`leave`). The last to arrive writes them all; a failure (the database down) reaches
    every member that wrote. A member that raises instead of arriving ends the pass: its
    TaskGroup cancels the others and nothing of the group is written (their claims lapse).
    """

    def __init__(self, write_all: Callable[[Sequence[FireDecision]], Awaitable[list[bool]]], members: int) -> None:
        self._write_all = write_all
        self._waiting = members
        self._decisions: list[FireDecision] = []
        self._results: list[asyncio.Future[bool]] = []

    async def write(self, decision: FireDecision) -> bool:
        result: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._decisions.append(decision)
        self._results.append(result)
        await self._arrived()
        return await result

    async def leave(self) -> None:
        await self._arrived()

    async def _arrived(self) -> None:
        self._waiting -= 1
        if self._waiting > 0 or not self._decisions:
            return
        try:
            written = await self._write_all(self._decisions)
        except BaseException as exc:
            for result in self._results:
                if not result.done():
                    if isinstance(exc, Exception):
                        result.set_exception(exc)
                    else:
                        result.cancel()
            if not isinstance(exc, Exception):
                raise
            return
        for result, done in zip(self._results, written, strict=True):
            result.set_result(done)


class FireWriter:
    """The job store a fire's admission writes through: the job with its fire, in its batch."""

    def __init__(self, batch: FireBatch, decision: FireDecision) -> None:
        self._batch = batch
        self._decision = decision

    async def create_job(self, job_id: str, spec: Mapping[str, Any], parent_id: str | None = None) -> bool:
        return await self.create_batch(job_id, spec, [])

    async def create_batch(
        self, job_id: str, spec: Mapping[str, Any], children: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> bool:
        return await self._batch.write(dataclasses.replace(self._decision, job=(job_id, spec, children)))

    async def count_jobs(self, status: Literal["queued"]) -> int:
        # Never asked: a fire's admission has no queue bound.
        return 0


async def write_fire(
    batch: FireBatch,
    admission: AdmissionFactory,
    schedule: Schedule,
    decision: FireDecision,
    job_fire: Fire,
) -> Literal["accepted", "duplicate", "rejected"]:
    """Admit ``job_fire``'s job and write ``decision`` (its fires) with it, in ``batch``.
    ``duplicate``: another daemon wrote this due time first (nothing written here). ``rejected``:
    the spec no longer validates; the due time is recorded ``missed`` with the problems instead."""
    assert job_fire.job_id is not None
    admitted = await admission(FireWriter(batch, decision)).admit(
        schedule.job_spec(job_fire.job_id),
        "schedule",
        schedule_id=schedule.id,
        due_at=job_fire.due_at.isoformat(),
    )
    if admitted.outcome == "rejected":
        detail = "; ".join(admitted.problems)[:2000]
        instead = [
            dataclasses.replace(f, outcome="missed", job_id=None, detail=detail) if f is job_fire else f
            for f in decision.fires
        ]
        await batch.write(dataclasses.replace(decision, fires=instead))
    return admitted.outcome
