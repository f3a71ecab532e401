"""The :class:`~leadlawk_daemon.store.base.Store` on PostgreSQL, through an asyncpg pool."""

from __future__ import annotations

import asyncio
import hashlib
import operator
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Literal

import asyncpg
import orjson

from leadlawk_daemon.clock import Clock, MonotonicClock
from leadlawk_daemon.listing import LISTING_FIELDS, Listing
from leadlawk_daemon.sites.report import SiteReport
from leadlawk_daemon.store.base import (
    DEFAULT_MAX_ATTEMPTS,
    JOB_COUNTERS,
    REQUEUE_SQL,
    TERMINAL_STATUSES,
    DeadLetter,
    DeadLetterKind,
    Job,
    JobLead,
    JobStatus,
    PageSpeedRow,
    StoreError,
    StoreUnavailable,
    first_error,
    utc_from_epoch,
)
from leadlawk_daemon.store.batch import (
    aggregate_status,
    check_dead_letter_kind,
    dead_letter_text,
    json_text,
    lead_values,
    prepare_job_leads,
    prepare_leads,
    prepare_pagespeed,
)
from leadlawk_daemon.store.common import StoreCommon, check_job_id, priority_of
from leadlawk_daemon.store.export import export_rows
from leadlawk_daemon.store.migrations import check_applied, load_migrations
from leadlawk_daemon.store.sites import SITE_FIELDS, site_values

__all__ = ["PostgresStore", "open_postgres"]

# Measured by bench/write.py: COPY into a temp staging table then INSERT … ON CONFLICT beats
# INSERT … SELECT FROM unnest(…) by 20-70 % (batches of 500 to 5,000 rows), so it is the default.
UpsertMethod = Literal["unnest", "copy"]

# Failures of the connection, not of the statement: the writer retries these after its breaker.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.OperatorInterventionError,  # 57P01 admin shutdown (pg_terminate_backend), 57P03 starting up
    asyncpg.InsufficientResourcesError,  # 53300 too many connections
)
# One key per database: two daemons starting together migrate one after the other.
_MIGRATION_LOCK = int.from_bytes(hashlib.sha256(b"leadlawk.migrations").digest()[:8], "big", signed=True)

_LEAD_TYPES = {"rating": "float8", "review_count": "int4", "latitude": "float8", "longitude": "float8"}
_LEAD_COLS = ", ".join(LISTING_FIELDS)
_LEAD_UPDATE = (
    ", ".join(f"{c} = COALESCE(EXCLUDED.{c}, l.{c})" for c in LISTING_FIELDS if c != "place_id")
    + ", last_seen_at = GREATEST(l.last_seen_at, EXCLUDED.last_seen_at)"
)
_LEAD_SELECT = ", ".join("s.hours::jsonb" if c == "hours" else f"s.{c}" for c in LISTING_FIELDS)
_UPSERT_TAIL = f" ON CONFLICT (place_id) DO UPDATE SET {_LEAD_UPDATE}"
_N = len(LISTING_FIELDS)
_UNNEST_SQL = (
    f"INSERT INTO leads AS l ({_LEAD_COLS}, first_seen_at, last_seen_at) "
    f"SELECT {_LEAD_SELECT}, ${_N + 1}, ${_N + 1} FROM unnest("
    + ", ".join(f"${i + 1}::{_LEAD_TYPES.get(c, 'text')}[]" for i, c in enumerate(LISTING_FIELDS))
    + f") AS s({_LEAD_COLS})"
    + _UPSERT_TAIL
)
_PLACE_ID_OF = operator.itemgetter(LISTING_FIELDS.index("place_id"))
# Below this, one transaction is cheaper than the round trips of several.
_PARALLEL_MIN_ROWS = 1000

_STAGE_SQL = (
    "CREATE TEMP TABLE IF NOT EXISTS leads_stage ("
    + ", ".join(f"{c} {_LEAD_TYPES.get(c, 'text')}" for c in LISTING_FIELDS)
    + ") ON COMMIT DELETE ROWS"
)
_FROM_STAGE_SQL = (
    f"INSERT INTO leads AS l ({_LEAD_COLS}, first_seen_at, last_seen_at) "
    f"SELECT {_LEAD_SELECT}, $1, $1 FROM leads_stage AS s" + _UPSERT_TAIL
)

_PS_COLS = (
    "place_id, strategy, performance, accessibility, best_practices, seo, fcp_ms, lcp_ms, tbt_ms, "
    "speed_index_ms, tti_ms, cls, final_url, error, field_data, tested_at"
)
_PS_NAMES = [c.strip() for c in _PS_COLS.split(",")]
_PS_SQL = (
    f"INSERT INTO pagespeed_results AS p ({_PS_COLS}) VALUES ("
    + ", ".join(f"${i + 1}" for i in range(len(_PS_NAMES)))
    + ") ON CONFLICT (place_id, strategy) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in _PS_NAMES[2:])
    + " WHERE EXCLUDED.tested_at >= p.tested_at"
)

_JOB_COLS = (
    "id, parent_id, spec, status, found, qualified, enriched, written, failed, error, created_at, "
    "started_at, finished_at, lease_owner, lease_expires_at, attempts, progress"
)
_DL_COLS = "id, kind, payload, reason, attempts, created_at, replayed_at"

# Leases run on the database's clock (clock_timestamp(): the real time of the statement, not of its
# transaction), never a daemon's: two daemons whose wall clocks disagree still agree on who holds a job.
_LEAF = "NOT EXISTS (SELECT 1 FROM jobs c WHERE c.parent_id = j.id)"
_EXPIRED = "j.status = 'running' AND j.lease_expires_at < clock_timestamp()"
_FAIL_EXHAUSTED_SQL = (
    "UPDATE jobs SET status = 'failed', lease_owner = NULL, lease_expires_at = NULL, "
    "finished_at = COALESCE(finished_at, clock_timestamp()), "
    "error = 'the daemon died ' || attempts || ' times while running this job (jobs.max_attempts = ' "
    "|| $1::int || ')' "
    f"WHERE id IN (SELECT j.id FROM jobs j WHERE {_EXPIRED} AND j.attempts >= $1 AND {_LEAF} "
    # A lease that lapsed while its holder lives (it stopped in time, its store was slow) is no death.
    "AND ($2::text IS NULL OR j.lease_owner IS DISTINCT FROM $2) "
    f"FOR UPDATE SKIP LOCKED) RETURNING {_JOB_COLS}"
)
# SKIP LOCKED: a job another daemon is leasing right now is passed over, not waited on.
_LEASE_SQL = (
    "UPDATE jobs SET status = 'running', lease_owner = $1, "
    "lease_expires_at = clock_timestamp() + make_interval(secs => $2), "
    # Taking back a lease of our own that lapsed while we lived counts no attempt: nobody died.
    "attempts = attempts + CASE WHEN status = 'running' AND lease_owner = $1 THEN 0 ELSE 1 END, "
    "started_at = COALESCE(started_at, clock_timestamp()) "
    "WHERE id = (SELECT j.id FROM jobs j "
    "  WHERE ((j.status = 'queued' AND (j.not_before IS NULL OR j.not_before <= clock_timestamp())) "
    f"    OR ({_EXPIRED} AND (j.attempts < $3 OR j.lease_owner = $1))) AND {_LEAF} "
    "  ORDER BY j.priority DESC, j.created_at, j.seq LIMIT 1 FOR UPDATE SKIP LOCKED) "
    f"RETURNING {_JOB_COLS}"
)
_SITE_SQL = (
    f"INSERT INTO sites ({', '.join(SITE_FIELDS)}) VALUES ({', '.join(f'${i + 1}' for i in range(len(SITE_FIELDS)))}) "
    "ON CONFLICT (site) DO UPDATE SET " + ", ".join(f"{c} = EXCLUDED.{c}" for c in SITE_FIELDS if c != "site")
)


def _job(row: Mapping[str, Any]) -> Job:
    return Job(**dict(row.items()))


def _dead_letter(row: Mapping[str, Any]) -> DeadLetter:
    return DeadLetter(**dict(row.items()))


async def _init_connection(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=json_text, decoder=orjson.loads, schema="pg_catalog")


class PostgresStore(StoreCommon):
    """Every method borrows a pooled connection for one statement or one transaction."""

    def __init__(
        self, pool: asyncpg.Pool, clock: Clock, upsert_method: UpsertMethod = "copy", write_parallelism: int = 2
    ) -> None:
        self._pool = pool
        self._clock = clock
        self.upsert_method: UpsertMethod = upsert_method
        self.write_parallelism = max(1, write_parallelism)

    def _now(self) -> datetime:
        return utc_from_epoch(self._clock.wall())

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        try:
            async with self._pool.acquire() as conn:
                yield conn
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"PostgreSQL is unreachable: {type(exc).__name__}: {exc}") from exc

    async def migrate(self) -> list[int]:
        migrations = load_migrations("postgres")
        applied_now: list[int] = []
        async with self._connection() as conn:
            # A session lock, held across the per-migration transactions; released even on error.
            await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
            try:
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
                    "name text NOT NULL, checksum text NOT NULL, applied_at timestamptz NOT NULL)"
                )
                rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
                pending = check_applied({r["version"]: r["checksum"] for r in rows}, migrations)
                for migration in pending:
                    async with conn.transaction():
                        await conn.execute(migration.sql)
                        await conn.execute(
                            "INSERT INTO schema_migrations VALUES ($1, $2, $3, $4)",
                            migration.version,
                            migration.name,
                            migration.checksum,
                            self._now(),
                        )
                    applied_now.append(migration.version)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
        return applied_now

    async def ping(self) -> None:
        async with self._connection() as conn:
            await conn.fetchval("SELECT 1")

    # leads -------------------------------------------------------------------------------------

    async def upsert_leads(self, rows: Sequence[Listing]) -> int:
        batch = prepare_leads(rows)
        if not batch:
            return 0
        values = [lead_values(row) for row in batch]
        # Sorted by key, every writer (of this daemon or another) takes row locks in the same order,
        # so concurrent upserts of overlapping batches wait for each other instead of deadlocking.
        values.sort(key=_PLACE_ID_OF)
        now = self._now()
        parts = self.write_parallelism if len(values) >= _PARALLEL_MIN_ROWS else 1
        if parts == 1:
            await self._upsert_part(values, now)
        else:
            # The conflict check costs one backend a core: disjoint slices on separate connections use
            # the others. Each slice commits alone; a failed one cancels the rest, and the writer
            # retries the whole batch, which is idempotent. The task group's ExceptionGroup is
            # unwrapped: the database breaker counts StoreUnavailable, and would take a group for a
            # data error (one it excludes, and aiobreaker counts an excluded error as a success).
            try:
                async with asyncio.TaskGroup() as group:
                    for i in range(parts):
                        group.create_task(self._upsert_part(values[i::parts], now))
            except ExceptionGroup as exc:
                raise first_error(exc) from exc
        return len(batch)

    async def _upsert_part(self, values: list[tuple[Any, ...]], now: datetime) -> None:
        async with self._connection() as conn, conn.transaction():
            if self.upsert_method == "copy":
                await conn.execute(_STAGE_SQL)
                await conn.copy_records_to_table("leads_stage", records=values, columns=LISTING_FIELDS)
                await conn.execute(_FROM_STAGE_SQL, now)
            else:
                columns = [list(col) for col in zip(*values, strict=True)]
                await conn.execute(_UNNEST_SQL, *columns, now)

    async def upsert_pagespeed(self, results: Sequence[PageSpeedRow]) -> int:
        batch = prepare_pagespeed(results, self._now())
        if not batch:
            return 0
        args = [
            [dict(r.field_data) if c == "field_data" and r.field_data is not None else getattr(r, c) for c in _PS_NAMES]
            for r in batch
        ]
        async with self._connection() as conn:
            try:
                await conn.executemany(_PS_SQL, args)
            except asyncpg.ForeignKeyViolationError as exc:
                raise ValueError(f"PageSpeed results for leads not stored yet: {exc.detail}") from exc
        return len(batch)

    async def upsert_sites(self, rows: Sequence[tuple[str | None, SiteReport]]) -> int:
        """Site reports (the last of each site wins) and which lead links each; idempotent."""
        latest = {report.site: report for _, report in rows}
        links = sorted({(place_id, report.site) for place_id, report in rows if place_id is not None})
        if not latest:
            return 0
        now = self._now()
        args = [[site_values(report, now)[c] for c in SITE_FIELDS] for report in latest.values()]
        async with self._connection() as conn, conn.transaction():
            await conn.executemany(_SITE_SQL, args)
            if links:
                await conn.executemany(
                    "INSERT INTO lead_sites (place_id, site) VALUES ($1, $2) "
                    "ON CONFLICT (place_id) DO UPDATE SET site = EXCLUDED.site",
                    links,
                )
        return len(latest)

    async def upsert_job_leads(self, job_id: str, rows: Sequence[JobLead | tuple[Any, ...]]) -> int:
        batch = prepare_job_leads(rows)
        if not batch:
            return 0
        async with self._connection() as conn:
            try:
                await conn.execute(
                    "INSERT INTO job_leads AS j (job_id, place_id, rank, qualified, reasons) "
                    "SELECT $1, s.place_id, s.rank, s.qualified, s.reasons::jsonb "
                    "FROM unnest($2::text[], $3::int4[], $4::bool[], $5::text[]) "
                    "AS s(place_id, rank, qualified, reasons) "
                    "ON CONFLICT (job_id, place_id) DO UPDATE SET rank = COALESCE(EXCLUDED.rank, j.rank), "
                    "qualified = COALESCE(EXCLUDED.qualified, j.qualified), "
                    "reasons = COALESCE(EXCLUDED.reasons, j.reasons)",
                    job_id,
                    [r.place_id for r in batch],
                    [r.rank for r in batch],
                    [r.qualified for r in batch],
                    [None if r.reasons is None else json_text(r.reasons) for r in batch],
                )
            except asyncpg.ForeignKeyViolationError as exc:
                raise ValueError(f"job leads refer to an unknown job or lead: {exc.detail}") from exc
        return len(batch)

    async def set_lead_status(self, job_id: str, rows: Sequence[tuple[str, str | None]]) -> int:
        if not rows:
            return 0
        latest = dict(rows)  # the last word per lead wins
        async with self._connection() as conn:
            result = await conn.execute(
                "UPDATE job_leads AS j SET status = CASE WHEN s.error IS NULL THEN 'ok' ELSE 'failed' END, "
                "error = s.error FROM unnest($2::text[], $3::text[]) AS s(place_id, error) "
                "WHERE j.job_id = $1 AND j.place_id = s.place_id "
                "AND (j.status, j.error) IS DISTINCT FROM "
                "(CASE WHEN s.error IS NULL THEN 'ok' ELSE 'failed' END, s.error)",
                job_id,
                list(latest),
                list(latest.values()),
            )
        return int(result.split()[-1])

    # jobs --------------------------------------------------------------------------------------

    async def create_batch(
        self,
        job_id: str,
        spec: Mapping[str, Any],
        children: Sequence[tuple[str, Mapping[str, Any]]],
        parent_id: str | None = None,
    ) -> bool:
        check_job_id(job_id)
        now = self._now()
        async with self._connection() as conn, conn.transaction():
            try:
                status = await conn.execute(
                    "INSERT INTO jobs (id, parent_id, spec, created_at, priority) VALUES ($1, $2, $3, $4, $5) "
                    "ON CONFLICT (id) DO NOTHING",
                    job_id,
                    parent_id,
                    dict(spec),
                    now,
                    priority_of(spec),
                )
            except asyncpg.ForeignKeyViolationError:
                raise ValueError(f"parent job {parent_id!r} does not exist") from None
            if status.endswith(" 0"):
                return False
            if children:
                await conn.executemany(
                    "INSERT INTO jobs (id, parent_id, spec, created_at, priority) VALUES ($1, $2, $3, $4, $5)",
                    [(child_id, job_id, dict(child), now, priority_of(child)) for child_id, child in children],
                )
        return True

    async def get_job(self, job_id: str) -> Job | None:
        async with self._connection() as conn:
            row = await conn.fetchrow(f"SELECT {_JOB_COLS} FROM jobs WHERE id = $1", job_id)
        return None if row is None else _job(row)

    async def list_jobs(
        self, status: JobStatus | None = None, limit: int = 100, parent_id: str | None = None
    ) -> list[Job]:
        async with self._connection() as conn:
            rows = await conn.fetch(
                f"SELECT {_JOB_COLS} FROM jobs WHERE ($1::text IS NULL OR status = $1) "
                "AND ($2::text IS NULL OR parent_id = $2) ORDER BY created_at DESC, seq DESC LIMIT $3",
                status,
                parent_id,
                limit,
            )
        return [_job(r) for r in rows]

    async def count_jobs(self, status: JobStatus) -> int:
        async with self._connection() as conn:
            count = await conn.fetchval(f"SELECT count(*) FROM jobs j WHERE j.status = $1 AND {_LEAF}", status)
        return int(count or 0)

    async def lease_next_job(self, owner: str, ttl_s: float, max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> Job | None:
        async with self._connection() as conn, conn.transaction():
            failed = await conn.fetch(_FAIL_EXHAUSTED_SQL, max_attempts, owner)
            row = await conn.fetchrow(_LEASE_SQL, owner, float(ttl_s), max_attempts)
        await self._refresh_parents_of(failed)
        return None if row is None else _job(row)

    async def fail_exhausted_jobs(
        self, max_attempts: int = DEFAULT_MAX_ATTEMPTS, owner: str | None = None
    ) -> list[Job]:
        async with self._connection() as conn:
            failed = await conn.fetch(_FAIL_EXHAUSTED_SQL, max_attempts, owner)
        await self._refresh_parents_of(failed)
        return [_job(r) for r in failed]

    async def _refresh_parents_of(self, jobs: Sequence[Mapping[str, Any]]) -> None:
        for parent_id in sorted({r["parent_id"] for r in jobs if r["parent_id"] is not None}):
            await self.refresh_parent(parent_id)

    async def renew_lease(self, job_id: str, owner: str, ttl_s: float) -> bool:
        async with self._connection() as conn:
            status = await conn.execute(
                "UPDATE jobs SET lease_expires_at = clock_timestamp() + make_interval(secs => $3) "
                "WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
                job_id,
                owner,
                float(ttl_s),
            )
        return not status.endswith(" 0")

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
        counters = dict(zip(JOB_COUNTERS, (found, qualified, enriched, written, failed), strict=True))
        sets = [f"{name} = COALESCE(${i + 3}, {name})" for i, name in enumerate(JOB_COUNTERS)]
        sets.append("progress = COALESCE($8, progress)")
        sets.append("error = COALESCE($9, error)")
        terminal = ", ".join(f"'{s}'" for s in sorted(TERMINAL_STATUSES))
        sets.append(f"status = CASE WHEN status IN ({terminal}) THEN status ELSE COALESCE($10, status) END")
        async with self._connection() as conn:
            result = await conn.execute(
                f"UPDATE jobs SET {', '.join(sets)} WHERE id = $1 AND lease_owner = $2",
                job_id,
                owner,
                *counters.values(),
                None if progress is None else dict(progress),
                error,
                status,
            )
        return not result.endswith(" 0")

    async def finish_job(self, job_id: str, owner: str, status: JobStatus, error: str | None = None) -> bool:
        if status not in TERMINAL_STATUSES:
            raise ValueError(f"finish_job needs a final status, got {status!r}")
        async with self._connection() as conn:
            result = await conn.execute(
                "UPDATE jobs SET status = CASE WHEN status = 'cancelled' THEN status ELSE $3 END, "
                "error = COALESCE($4, error), finished_at = COALESCE(finished_at, $5), "
                "lease_owner = NULL, lease_expires_at = NULL WHERE id = $1 AND lease_owner = $2",
                job_id,
                owner,
                status,
                error,
                self._now(),
            )
        return not result.endswith(" 0")

    async def cancel_job(self, job_id: str) -> bool:
        async with self._connection() as conn:
            rows = await conn.fetch(
                "UPDATE jobs SET status = 'cancelled', finished_at = $2 "
                "WHERE (id = $1 OR parent_id = $1) AND status IN ('queued', 'running') RETURNING id",
                job_id,
                self._now(),
            )
        return any(r["id"] == job_id for r in rows)

    async def release_lease(self, job_id: str, owner: str, *, wait_s: float = 0.0) -> bool:
        async with self._connection() as conn:
            result = await conn.execute(
                # A hand-back is not a death: the lease it ends does not count against max_attempts.
                "UPDATE jobs SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL, "
                "attempts = GREATEST(attempts - 1, 0), "
                "not_before = CASE WHEN $3::float8 > 0 THEN clock_timestamp() + make_interval(secs => $3::float8) END "
                "WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
                job_id,
                owner,
                float(wait_s),
            )
        return not result.endswith(" 0")

    async def requeue_job(self, job_id: str) -> bool:
        async with self._connection() as conn:
            result = await conn.execute(REQUEUE_SQL.format(p="$1"), job_id)
        return not result.endswith(" 0")

    async def refresh_parent(self, parent_id: str) -> Job | None:
        sums = ", ".join(f"COALESCE(SUM({c}), 0)::int AS {c}" for c in JOB_COUNTERS)
        async with self._connection() as conn, conn.transaction():
            parent = await conn.fetchrow("SELECT status FROM jobs WHERE id = $1 FOR UPDATE", parent_id)
            if parent is None:
                return None
            children = await conn.fetch("SELECT status FROM jobs WHERE parent_id = $1", parent_id)
            totals = await conn.fetchrow(
                f"SELECT {sums}, MIN(started_at) AS started FROM jobs WHERE parent_id = $1", parent_id
            )
            status = aggregate_status([r["status"] for r in children])
            if parent["status"] == "cancelled":
                status = "cancelled"
            sets = ", ".join(f"{c} = ${i + 3}" for i, c in enumerate(JOB_COUNTERS))
            row = await conn.fetchrow(
                f"UPDATE jobs SET status = $2, {sets}, "
                f"started_at = COALESCE(started_at, $8), "
                f"finished_at = CASE WHEN $9 THEN COALESCE(finished_at, $10) ELSE NULL END "
                f"WHERE id = $1 RETURNING {_JOB_COLS}",
                parent_id,
                status,
                *(totals[c] for c in JOB_COUNTERS),
                totals["started"],
                status in TERMINAL_STATUSES,
                self._now(),
            )
        return _job(row)

    async def job_place_ids(self, job_id: str) -> set[str]:
        async with self._connection() as conn:
            rows = await conn.fetch("SELECT place_id FROM job_leads WHERE job_id = $1", job_id)
        return {r["place_id"] for r in rows}

    async def lead_rows_for_export(
        self, job_id: str | None = None, qualified_only: bool = False
    ) -> list[dict[str, Any]]:
        async with self._connection() as conn:
            if job_id is not None:
                leads = await conn.fetch(
                    "SELECT l.*, jl.job_id, jl.rank, jl.qualified, jl.reasons FROM job_leads jl "
                    "JOIN leads l USING (place_id) WHERE jl.job_id = $1 AND (NOT $2 OR jl.qualified) "
                    "ORDER BY jl.rank NULLS LAST, l.place_id",
                    job_id,
                    qualified_only,
                )
                tests = await conn.fetch(
                    "SELECT p.* FROM pagespeed_results p JOIN job_leads jl USING (place_id) WHERE jl.job_id = $1",
                    job_id,
                )
                sites = await conn.fetch(
                    "SELECT ls.place_id, s.* FROM lead_sites ls JOIN sites s USING (site) "
                    "JOIN job_leads jl USING (place_id) WHERE jl.job_id = $1",
                    job_id,
                )
            else:
                leads = await conn.fetch(
                    "SELECT l.* FROM leads l WHERE NOT $1 OR EXISTS "
                    "(SELECT 1 FROM job_leads jl WHERE jl.place_id = l.place_id AND jl.qualified) "
                    "ORDER BY l.first_seen_at, l.place_id",
                    qualified_only,
                )
                tests = await conn.fetch("SELECT * FROM pagespeed_results")
                sites = await conn.fetch("SELECT ls.place_id, s.* FROM lead_sites ls JOIN sites s USING (site)")
        return export_rows(leads, tests, with_job=job_id is not None, sites=[dict(s) for s in sites])

    # dead letters ------------------------------------------------------------------------------

    async def add_dead_letter(
        self, kind: DeadLetterKind, payload: str | Mapping[str, Any], reason: str, attempts: int = 1
    ) -> int:
        check_dead_letter_kind(kind)
        async with self._connection() as conn:
            new_id = await conn.fetchval(
                "INSERT INTO dead_letters (kind, payload, reason, attempts, created_at) "
                "VALUES ($1, $2, $3, $4, $5) RETURNING id",
                kind,
                dead_letter_text(payload),
                dead_letter_text(reason),
                attempts,
                self._now(),
            )
        if not isinstance(new_id, int):
            raise StoreError("the database returned no id for a new dead letter")
        return new_id

    async def list_dead_letters(
        self, kind: DeadLetterKind | None = None, include_replayed: bool = False, limit: int = 100
    ) -> list[DeadLetter]:
        async with self._connection() as conn:
            rows = await conn.fetch(
                f"SELECT {_DL_COLS} FROM dead_letters WHERE ($1::text IS NULL OR kind = $1) "
                "AND ($2 OR replayed_at IS NULL) ORDER BY created_at, id LIMIT $3",
                kind,
                include_replayed,
                limit,
            )
        return [_dead_letter(r) for r in rows]

    async def get_dead_letter(self, dead_letter_id: int) -> DeadLetter | None:
        async with self._connection() as conn:
            row = await conn.fetchrow(f"SELECT {_DL_COLS} FROM dead_letters WHERE id = $1", dead_letter_id)
        return None if row is None else _dead_letter(row)

    async def mark_replayed(self, dead_letter_id: int) -> bool:
        async with self._connection() as conn:
            result = await conn.execute(
                "UPDATE dead_letters SET replayed_at = $2 WHERE id = $1 AND replayed_at IS NULL",
                dead_letter_id,
                self._now(),
            )
        return not result.endswith(" 0")

    async def bump_dead_letter(self, dead_letter_id: int, reason: str) -> bool:
        async with self._connection() as conn:
            result = await conn.execute(
                "UPDATE dead_letters SET attempts = attempts + 1, reason = $2, replayed_at = NULL WHERE id = $1",
                dead_letter_id,
                dead_letter_text(reason),
            )
        return not result.endswith(" 0")


@asynccontextmanager
async def open_postgres(
    url: str,
    *,
    pool_min: int = 1,
    pool_max: int = 8,
    connect_timeout: float = 5.0,
    command_timeout: float = 30.0,
    clock: Clock | None = None,
    upsert_method: UpsertMethod = "copy",
    write_parallelism: int = 2,
) -> AsyncIterator[PostgresStore]:
    """A pool opened eagerly (a bad DSN or a dead server shows here) and closed gracefully."""
    try:
        pool = await asyncpg.create_pool(
            url,
            min_size=pool_min,
            max_size=pool_max,
            timeout=connect_timeout,
            command_timeout=command_timeout,
            init=_init_connection,
        )
    except _UNAVAILABLE as exc:
        raise StoreUnavailable(f"PostgreSQL is unreachable: {type(exc).__name__}: {exc}") from exc
    try:
        yield PostgresStore(pool, clock or MonotonicClock(), upsert_method, write_parallelism)
    finally:
        await pool.close()
