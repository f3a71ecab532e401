"""A stored job's lifecycle, with the SQL it owns: creation, leasing, renewal, counters, finish,
cancel, hand-back, requeue, attempts, and a batch parent's aggregate.

Leases run on the database's clock (:attr:`.Dialect.now`), never a daemon's: two daemons whose
wall clocks disagree still agree on who holds a job.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from leadlawk_daemon.store.base import DEFAULT_MAX_ATTEMPTS, JOB_COUNTERS, TERMINAL_STATUSES, Job, JobStatus
from leadlawk_daemon.store.batch import aggregate_status
from leadlawk_daemon.store.common import StoreCommon, check_job_id, priority_of
from leadlawk_daemon.store.dialect import Dialect
from leadlawk_daemon.store.session import RowRefused, Session

__all__ = ["JOB_COLUMNS", "LEAF", "JobLifecycle", "insert_jobs"]

JOB_COLUMNS = (
    "id, parent_id, spec, status, found, qualified, enriched, written, failed, error, created_at, "
    "started_at, finished_at, lease_owner, lease_expires_at, attempts, progress"
)
# A job with children is never leased: it only aggregates them.
LEAF = "NOT EXISTS (SELECT 1 FROM jobs c WHERE c.parent_id = j.id)"
_TERMINAL = ", ".join(f"'{s}'" for s in sorted(TERMINAL_STATUSES))
_INSERT_JOB = "INSERT INTO jobs (id, parent_id, spec, created_at, priority) VALUES ($1, $2, $3, $4, $5)"


def _expired(d: Dialect) -> str:
    return f"j.status = 'running' AND j.lease_expires_at < {d.now}"


@functools.cache
def _fail_exhausted_sql(d: Dialect) -> str:
    return (
        "UPDATE jobs SET status = 'failed', lease_owner = NULL, lease_expires_at = NULL, "
        f"finished_at = COALESCE(finished_at, {d.now}), "
        # The text of base.exhausted_error, built by the database from the row's own attempts.
        "error = 'the daemon died ' || attempts || ' times while running this job (jobs.max_attempts = ' "
        "|| CAST($1 AS integer) || ')' "
        f"WHERE id IN (SELECT j.id FROM jobs j WHERE {_expired(d)} AND j.attempts >= $1 AND {LEAF} "
        # A lease that lapsed while its holder lives (it stopped in time, its store was slow) is no death.
        f"AND (CAST($2 AS text) IS NULL OR j.lease_owner IS DISTINCT FROM $2){d.skip_locked}) "
        f"RETURNING {JOB_COLUMNS}"
    )


@functools.cache
def _lease_sql(d: Dialect) -> str:
    return (
        "UPDATE jobs SET status = 'running', lease_owner = $1, "
        f"lease_expires_at = {d.seconds_after_now('CAST($2 AS float8)')}, "
        # Taking back a lease of our own that lapsed while we lived counts no attempt: nobody died.
        "attempts = attempts + CASE WHEN status = 'running' AND lease_owner = $1 THEN 0 ELSE 1 END, "
        f"started_at = COALESCE(started_at, {d.now}) "
        "WHERE id = (SELECT j.id FROM jobs j "
        f"  WHERE ((j.status = 'queued' AND (j.not_before IS NULL OR j.not_before <= {d.now})) "
        f"    OR ({_expired(d)} AND (j.attempts < $3 OR j.lease_owner = $1))) AND {LEAF} "
        f"  ORDER BY j.priority DESC, j.created_at, j.{d.insertion_order} LIMIT 1{d.skip_locked}) "
        f"RETURNING {JOB_COLUMNS}"
    )


@functools.cache
def _renew_sql(d: Dialect) -> str:
    return (
        f"UPDATE jobs SET lease_expires_at = {d.seconds_after_now('CAST($3 AS float8)')} "
        "WHERE id = $1 AND lease_owner = $2 AND status = 'running'"
    )


_UPDATE_SETS = [f"{name} = COALESCE(${i + 3}, {name})" for i, name in enumerate(JOB_COUNTERS)]
_UPDATE_SQL = (
    f"UPDATE jobs SET {', '.join(_UPDATE_SETS)}, progress = COALESCE($8, progress), error = COALESCE($9, error), "
    # A cancel is never undone by the job's owner.
    f"status = CASE WHEN status IN ({_TERMINAL}) THEN status ELSE COALESCE($10, status) END "
    "WHERE id = $1 AND lease_owner = $2"
)
_FINISH_SQL = (
    "UPDATE jobs SET status = CASE WHEN status = 'cancelled' THEN status ELSE $3 END, "
    "error = COALESCE($4, error), finished_at = COALESCE(finished_at, $5), "
    "lease_owner = NULL, lease_expires_at = NULL WHERE id = $1 AND lease_owner = $2"
)


@functools.cache
def _release_sql(d: Dialect) -> str:
    wait = "CAST($3 AS float8)"
    return (
        # A hand-back is not a death: the lease it ends does not count against max_attempts.
        "UPDATE jobs SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL, "
        f"attempts = {d.greatest}(attempts - 1, 0), "
        f"not_before = CASE WHEN {wait} > 0 THEN {d.seconds_after_now(wait)} END "
        "WHERE id = $1 AND lease_owner = $2 AND status = 'running'"
    )


# A finished leaf job back to the queue, progress kept. Its attempts start again: a replay is the
# operator's decision that the job deserves new tries.
_REQUEUE_SQL = (
    "UPDATE jobs SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL, finished_at = NULL, "
    "error = NULL, attempts = 0, not_before = NULL WHERE id = $1 AND status IN ('succeeded', 'failed', 'cancelled') "
    "AND NOT EXISTS (SELECT 1 FROM jobs AS c WHERE c.parent_id = jobs.id)"
)
_CANCEL_SQL = (
    "UPDATE jobs SET status = 'cancelled', finished_at = $2 "
    "WHERE (id = $1 OR parent_id = $1) AND status IN ('queued', 'running') RETURNING id"
)
_SUMS = ", ".join(f"CAST(COALESCE(SUM({c}), 0) AS integer) AS {c}" for c in JOB_COUNTERS)
_PARENT_SETS = ", ".join(f"{c} = ${i + 3}" for i, c in enumerate(JOB_COUNTERS))
_REFRESH_PARENT_SQL = (
    f"UPDATE jobs SET status = $2, {_PARENT_SETS}, started_at = COALESCE(started_at, $8), "
    "finished_at = CASE WHEN $9 THEN COALESCE(finished_at, $10) ELSE NULL END "
    f"WHERE id = $1 RETURNING {JOB_COLUMNS}"
)


async def insert_jobs(
    session: Session,
    job_id: str,
    spec: Mapping[str, Any],
    children: Sequence[tuple[str, Mapping[str, Any]]],
    parent_id: str | None,
    now: datetime,
) -> bool:
    """A queued job (a batch: with its children) inside the caller's transaction; ``False``, and
    nothing written, when the id exists. The one INSERT of a job, shared with a schedule's fire
    (:mod:`.schedules`), which records the fire in the same transaction."""
    try:
        created = await session.execute(
            f"{_INSERT_JOB} ON CONFLICT (id) DO NOTHING", job_id, parent_id, dict(spec), now, priority_of(spec)
        )
        if not created:
            return False
        if children:
            await session.execute_many(
                _INSERT_JOB,
                [(child_id, job_id, dict(child), now, priority_of(child)) for child_id, child in children],
            )
    except RowRefused as exc:
        raise ValueError(f"job {job_id!r} cannot be created (is parent {parent_id!r} stored?): {exc}") from exc
    return True


class JobLifecycle(StoreCommon):
    async def create_job(self, job_id: str, spec: Mapping[str, Any], parent_id: str | None = None) -> bool:
        # A single job is a batch without children: one code path persists both.
        return await self.create_batch(job_id, spec, [], parent_id=parent_id)

    async def create_batch(
        self,
        job_id: str,
        spec: Mapping[str, Any],
        children: Sequence[tuple[str, Mapping[str, Any]]],
        parent_id: str | None = None,
    ) -> bool:
        check_job_id(job_id)
        async with self.database.writing() as session:
            return await insert_jobs(session, job_id, spec, children, parent_id, self._now())

    async def lease_next_job(self, owner: str, ttl_s: float, max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> Job | None:
        d = self.database.dialect
        async with self.database.writing() as session:
            failed = await session.fetch(_fail_exhausted_sql(d), max_attempts, owner)
            rows = await session.fetch(_lease_sql(d), owner, float(ttl_s), max_attempts)
        await self._refresh_parents_of(failed)
        return Job(**rows[0]) if rows else None

    async def fail_exhausted_jobs(
        self, max_attempts: int = DEFAULT_MAX_ATTEMPTS, owner: str | None = None
    ) -> list[Job]:
        async with self.database.writing() as session:
            failed = await session.fetch(_fail_exhausted_sql(self.database.dialect), max_attempts, owner)
        await self._refresh_parents_of(failed)
        return [Job(**row) for row in failed]

    async def _refresh_parents_of(self, jobs: Sequence[Mapping[str, Any]]) -> None:
        for parent_id in sorted({r["parent_id"] for r in jobs if r["parent_id"] is not None}):
            await self.refresh_parent(parent_id)

    async def renew_lease(self, job_id: str, owner: str, ttl_s: float) -> bool:
        async with self.database.writing() as session:
            return await session.execute(_renew_sql(self.database.dialect), job_id, owner, float(ttl_s)) > 0

    async def update_job(
        self,
        job_id: str,
        owner: str,
        *,
        status: JobStatus | None = None,
        found: int | None = None,
        qualified: int | None = None,
        enriched: int | None = None,
        written: int | None = None,
        failed: int | None = None,
        progress: Mapping[str, Any] | None = None,
        error: str | None = None,
    ) -> bool:
        if status is not None and status in TERMINAL_STATUSES:
            raise ValueError(f"update_job cannot set the final status {status!r}: use finish_job")
        async with self.database.writing() as session:
            changed = await session.execute(
                _UPDATE_SQL,
                job_id,
                owner,
                found,
                qualified,
                enriched,
                written,
                failed,
                None if progress is None else dict(progress),
                error,
                status,
            )
        return changed > 0

    async def finish_job(self, job_id: str, owner: str, status: JobStatus, error: str | None = None) -> bool:
        if status not in TERMINAL_STATUSES:
            raise ValueError(f"finish_job needs a final status, got {status!r}")
        async with self.database.writing() as session:
            changed = await session.execute(_FINISH_SQL, job_id, owner, status, error, self._now())
        return changed > 0

    async def cancel_job(self, job_id: str) -> bool:
        async with self.database.writing() as session:
            rows = await session.fetch(_CANCEL_SQL, job_id, self._now())
        return any(r["id"] == job_id for r in rows)

    async def release_lease(self, job_id: str, owner: str, *, wait_s: float = 0.0) -> bool:
        async with self.database.writing() as session:
            return await session.execute(_release_sql(self.database.dialect), job_id, owner, float(wait_s)) > 0

    async def requeue_job(self, job_id: str) -> bool:
        async with self.database.writing() as session:
            return await session.execute(_REQUEUE_SQL, job_id) > 0

    async def refresh_parent(self, parent_id: str) -> Job | None:
        d = self.database.dialect
        async with self.database.writing() as session:
            parent = await session.fetch(f"SELECT status FROM jobs WHERE id = $1{d.lock_rows}", parent_id)
            if not parent:
                return None
            children = await session.fetch("SELECT status FROM jobs WHERE parent_id = $1", parent_id)
            totals = (
                await session.fetch(
                    f"SELECT {_SUMS}, MIN(started_at) AS started FROM jobs WHERE parent_id = $1", parent_id
                )
            )[0]
            status = aggregate_status([r["status"] for r in children])
            if parent[0]["status"] == "cancelled":
                status = "cancelled"
            rows = await session.fetch(
                _REFRESH_PARENT_SQL,
                parent_id,
                status,
                *(totals[c] for c in JOB_COUNTERS),
                totals["started"],
                status in TERMINAL_STATUSES,
                self._now(),
            )
        return Job(**rows[0])
