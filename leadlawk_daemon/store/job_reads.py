"""Reading stored jobs: one by id, a page of them, how many wait."""

from __future__ import annotations

from leadlawk_daemon.store.base import Job, JobStatus
from leadlawk_daemon.store.common import StoreCommon
from leadlawk_daemon.store.lifecycle import JOB_COLUMNS, LEAF

__all__ = ["JobReads"]


class JobReads(StoreCommon):
    async def get_job(self, job_id: str) -> Job | None:
        async with self.database.reading() as session:
            rows = await session.fetch(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1", job_id)
        return Job(**rows[0]) if rows else None

    async def list_jobs(
        self, status: JobStatus | None = None, limit: int = 100, parent_id: str | None = None
    ) -> list[Job]:
        order = self.database.dialect.insertion_order
        async with self.database.reading() as session:
            rows = await session.fetch(
                f"SELECT {JOB_COLUMNS} FROM jobs WHERE (CAST($1 AS text) IS NULL OR status = $1) "
                f"AND (CAST($2 AS text) IS NULL OR parent_id = $2) ORDER BY created_at DESC, {order} DESC LIMIT $3",
                status,
                parent_id,
                limit,
            )
        return [Job(**row) for row in rows]

    async def count_jobs(self, status: JobStatus) -> int:
        async with self.database.reading() as session:
            rows = await session.fetch(f"SELECT count(*) AS n FROM jobs j WHERE j.status = $1 AND {LEAF}", status)
        return int(rows[0]["n"])
