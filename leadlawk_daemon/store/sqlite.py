"""The :class:`~leadlawk_daemon.store.base.Store` on SQLite: the embedded default, for one machine.

One aiosqlite connection (its own thread) in WAL mode, used by one operation at a time: SQLite
has one writer anyway, and a single connection keeps transactions from interleaving. Every write
is ``BEGIN IMMEDIATE``, which serialises writers across processes sharing the file (with
``busy_timeout``), so leases are as exclusive here as on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import aiosqlite
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
    StoreUnavailable,
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
from leadlawk_daemon.store.migrations import check_applied, load_migrations, split_statements
from leadlawk_daemon.store.sites import JSON_FIELDS, SITE_FIELDS, site_values

__all__ = ["SqliteStore", "open_sqlite", "sqlite_path"]

log = logging.getLogger("leadlawk.store")

_UNAVAILABLE_HINTS = ("locked", "busy", "unable to open", "disk i/o", "readonly", "no such file")
_LEAD_COLS = ", ".join(LISTING_FIELDS)
_LEAD_SQL = (
    f"INSERT INTO leads ({_LEAD_COLS}, first_seen_at, last_seen_at) VALUES ("
    + ", ".join("?" for _ in range(len(LISTING_FIELDS) + 2))
    + ") ON CONFLICT (place_id) DO UPDATE SET "
    + ", ".join(f"{c} = COALESCE(excluded.{c}, {c})" for c in LISTING_FIELDS if c != "place_id")
    + ", last_seen_at = MAX(last_seen_at, excluded.last_seen_at)"
)
_PS_NAMES = [
    "place_id", "strategy", "performance", "accessibility", "best_practices", "seo", "fcp_ms", "lcp_ms",
    "tbt_ms", "speed_index_ms", "tti_ms", "cls", "final_url", "error", "field_data", "tested_at",
]  # fmt: skip
_PS_SQL = (
    f"INSERT INTO pagespeed_results ({', '.join(_PS_NAMES)}) VALUES ({', '.join('?' for _ in _PS_NAMES)}) "
    "ON CONFLICT (place_id, strategy) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _PS_NAMES[2:])
    + " WHERE excluded.tested_at >= tested_at"
)
_JOB_COLS = (
    "id, parent_id, spec, status, found, qualified, enriched, written, failed, error, created_at, "
    "started_at, finished_at, lease_owner, lease_expires_at, attempts, progress"
)
_DL_COLS = "id, kind, payload, reason, attempts, created_at, replayed_at"
_TERMINAL_SQL = ", ".join(f"'{s}'" for s in sorted(TERMINAL_STATUSES))
_TIMES = frozenset(
    {"created_at", "started_at", "finished_at", "lease_expires_at", "replayed_at", "first_seen_at",
     "last_seen_at", "tested_at"}
)  # fmt: skip
_JSONS = frozenset({"spec", "progress", "hours", "reasons", "field_data"})

# Leases on the database's clock, in _ts's fixed-width form (SQLite's %f has milliseconds): what a
# lease compares with is the time of the machine holding the file, never a daemon's injected clock.
_DB_NOW = "(strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000+00:00')"
_SITE_SQL = (
    f"INSERT INTO sites ({', '.join(SITE_FIELDS)}) VALUES ({', '.join('?' for _ in SITE_FIELDS)}) "
    "ON CONFLICT (site) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in SITE_FIELDS if c != "site")
)


def _db_later(param: str) -> str:
    return f"(strftime('%Y-%m-%dT%H:%M:%f', 'now', printf('%+.3f seconds', {param})) || '000+00:00')"


_LEAF = "NOT EXISTS (SELECT 1 FROM jobs c WHERE c.parent_id = j.id)"
_EXPIRED = f"j.status = 'running' AND j.lease_expires_at < {_DB_NOW}"
_FAIL_EXHAUSTED_SQL = (
    "UPDATE jobs SET status = 'failed', lease_owner = NULL, lease_expires_at = NULL, "
    f"finished_at = COALESCE(finished_at, {_DB_NOW}), "
    "error = 'the daemon died ' || attempts || ' times while running this job (jobs.max_attempts = ' "
    "|| ?1 || ')' "
    f"WHERE id IN (SELECT j.id FROM jobs j WHERE {_EXPIRED} AND j.attempts >= ?1 AND {_LEAF} "
    # A lease that lapsed while its holder lives (it stopped in time, its store was slow) is no death.
    "AND (?2 IS NULL OR j.lease_owner IS NOT ?2)) "
    f"RETURNING {_JOB_COLS}"
)
_LEASE_SQL = (
    f"UPDATE jobs SET status = 'running', lease_owner = ?1, lease_expires_at = {_db_later('?2')}, "
    # Taking back a lease of our own that lapsed while we lived counts no attempt: nobody died.
    "attempts = attempts + CASE WHEN status = 'running' AND lease_owner = ?1 THEN 0 ELSE 1 END, "
    f"started_at = COALESCE(started_at, {_DB_NOW}) "
    "WHERE id = (SELECT j.id FROM jobs j "
    f"  WHERE ((j.status = 'queued' AND (j.not_before IS NULL OR j.not_before <= {_DB_NOW})) "
    f"    OR ({_EXPIRED} AND (j.attempts < ?3 OR j.lease_owner = ?1))) AND {_LEAF} "
    "  ORDER BY j.priority DESC, j.created_at, j.rowid LIMIT 1) "
    f"RETURNING {_JOB_COLS}"
)


def _ts(value: datetime) -> str:
    # Fixed width, always UTC: text order is time order, so SQL can compare timestamps as text.
    return value.astimezone(utc_from_epoch(0).tzinfo).isoformat(timespec="microseconds")


def _decoded(row: sqlite3.Row) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in row.keys():  # noqa: SIM118 - sqlite3.Row is not iterable by key
        value = row[key]
        if value is not None and key in _TIMES:
            value = datetime.fromisoformat(value)
        elif value is not None and key in _JSONS:
            value = orjson.loads(value)
        elif key == "qualified" and value is not None and "job_id" in row.keys():  # noqa: SIM118
            value = bool(value)
        out[key] = value
    return out


async def _fetch(conn: aiosqlite.Connection, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
    return list(await conn.execute_fetchall(sql, args))


def sqlite_path(url: str) -> str:
    """``sqlite:///./leadlawk.db`` → ``./leadlawk.db``; ``sqlite:////var/x.db`` → ``/var/x.db``."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise ValueError(f"not a SQLite URL (use sqlite:///path/to/file.db): {url!r}")
    return url[len(prefix) :]


class SqliteStore(StoreCommon):
    def __init__(self, conn: aiosqlite.Connection, clock: Clock) -> None:
        self._conn = conn
        self._clock = clock
        self._lock = asyncio.Lock()
        self._unwinding: asyncio.Future[None] | None = None

    def _now(self) -> str:
        return _ts(utc_from_epoch(self._clock.wall()))

    @asynccontextmanager
    async def _use(self, write: bool) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            try:
                await self._clean_connection()
                if write:
                    await self._begin()
                try:
                    yield self._conn
                except BaseException:
                    if write:
                        await self._conn.rollback()
                    raise
                if write:
                    await self._conn.commit()
            except sqlite3.OperationalError as exc:
                if any(hint in str(exc).lower() for hint in _UNAVAILABLE_HINTS):
                    raise StoreUnavailable(f"SQLite database unavailable: {exc}") from exc
                raise

    async def _begin(self) -> None:
        """``BEGIN IMMEDIATE``, safe to cancel.

        It runs in the connection's thread and may wait there up to ``busy_timeout`` for another
        writer. Cancelling our await does not stop it: left alone, it would open a transaction
        (and hold the file's write lock) after we had let the connection go. So a cancelled BEGIN
        leaves a task that waits for it and rolls it back, and the next user waits for that task.
        """
        begin = asyncio.ensure_future(self._conn.execute("BEGIN IMMEDIATE"))
        try:
            await asyncio.shield(begin)
        except asyncio.CancelledError:
            self._unwinding = asyncio.ensure_future(self._undo_begin(begin))
            raise

    async def _undo_begin(self, begin: asyncio.Future[Any]) -> None:
        try:
            await begin
        except sqlite3.Error:
            return  # BEGIN itself failed (busy): no transaction was opened
        with contextlib.suppress(sqlite3.Error):
            await self._conn.rollback()

    async def _clean_connection(self) -> None:
        """Before any use: finish undoing a cancelled BEGIN, and roll back a connection found inside
        a transaction (whatever left it there), so no write ever fails with "cannot start a
        transaction within a transaction" and no stale transaction holds the write lock."""
        if self._unwinding is not None:
            await self._unwinding
            self._unwinding = None
        if self._conn.in_transaction:
            log.warning("SQLite connection found inside a transaction: rolled back")
            await self._conn.rollback()

    async def aclose(self) -> None:
        """Let a cancelled BEGIN finish unwinding before the connection closes."""
        if self._unwinding is not None:
            with contextlib.suppress(Exception):
                await self._unwinding
            self._unwinding = None

    async def _rows(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        async with self._use(write=False) as conn:
            rows = await _fetch(conn, sql, args)
        return [_decoded(r) for r in rows]

    async def _write(self, sql: str, *args: Any) -> int:
        async with self._use(write=True) as conn:
            cursor = await conn.execute(sql, args)
            return cursor.rowcount

    async def migrate(self) -> list[int]:
        migrations = load_migrations("sqlite")
        applied_now: list[int] = []
        # One IMMEDIATE transaction for the lot: a second process waits, then finds nothing to do.
        async with self._use(write=True) as conn:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                "name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            rows = await _fetch(conn, "SELECT version, checksum FROM schema_migrations")
            for migration in check_applied({r[0]: r[1] for r in rows}, migrations):
                for statement in split_statements(migration.sql):
                    await conn.execute(statement)
                await conn.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?, ?)",
                    (migration.version, migration.name, migration.checksum, self._now()),
                )
                applied_now.append(migration.version)
        return applied_now

    async def ping(self) -> None:
        await self._rows("SELECT 1 AS ok")

    # leads -------------------------------------------------------------------------------------

    async def upsert_leads(self, rows: Sequence[Listing]) -> int:
        batch = prepare_leads(rows)
        if not batch:
            return 0
        now = self._now()
        async with self._use(write=True) as conn:
            await conn.executemany(_LEAD_SQL, [[*lead_values(r), now, now] for r in batch])
        return len(batch)

    async def upsert_pagespeed(self, results: Sequence[PageSpeedRow]) -> int:
        batch = prepare_pagespeed(results, utc_from_epoch(self._clock.wall()))
        if not batch:
            return 0
        args = []
        for r in batch:
            values = [getattr(r, c) for c in _PS_NAMES]
            values[-2] = None if r.field_data is None else json_text(dict(r.field_data))
            values[-1] = _ts(values[-1])
            args.append(values)
        try:
            async with self._use(write=True) as conn:
                await conn.executemany(_PS_SQL, args)
        except sqlite3.IntegrityError as exc:
            raise ValueError(f"PageSpeed results for leads not stored yet: {exc}") from exc
        return len(batch)

    async def upsert_sites(self, rows: Sequence[tuple[str | None, SiteReport]]) -> int:
        """Site reports (the last of each site wins) and which lead links each; idempotent."""
        latest = {report.site: report for _, report in rows}
        links = sorted({(place_id, report.site) for place_id, report in rows if place_id is not None})
        if not latest:
            return 0
        now = utc_from_epoch(self._clock.wall())
        args = []
        for report in latest.values():
            values = site_values(report, now)
            for name in JSON_FIELDS:
                values[name] = json_text(values[name])
            values["last_modified"] = values["last_modified"].isoformat() if values["last_modified"] else None
            values["checked_at"] = _ts(values["checked_at"])
            args.append([values[c] for c in SITE_FIELDS])
        async with self._use(write=True) as conn:
            await conn.executemany(_SITE_SQL, args)
            if links:
                await conn.executemany(
                    "INSERT INTO lead_sites (place_id, site) VALUES (?, ?) "
                    "ON CONFLICT (place_id) DO UPDATE SET site = excluded.site",
                    links,
                )
        return len(latest)

    async def upsert_job_leads(self, job_id: str, rows: Sequence[JobLead | tuple[Any, ...]]) -> int:
        batch = prepare_job_leads(rows)
        if not batch:
            return 0
        args = [
            (job_id, r.place_id, r.rank, r.qualified, None if r.reasons is None else json_text(r.reasons))
            for r in batch
        ]
        try:
            async with self._use(write=True) as conn:
                await conn.executemany(
                    "INSERT INTO job_leads (job_id, place_id, rank, qualified, reasons) "
                    "VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (job_id, place_id) DO UPDATE SET rank = COALESCE(excluded.rank, rank), "
                    "qualified = COALESCE(excluded.qualified, qualified), "
                    "reasons = COALESCE(excluded.reasons, reasons)",
                    args,
                )
        except sqlite3.IntegrityError as exc:
            raise ValueError(f"job leads refer to an unknown job or lead: {exc}") from exc
        return len(batch)

    async def set_lead_status(self, job_id: str, rows: Sequence[tuple[str, str | None]]) -> int:
        if not rows:
            return 0
        latest = dict(rows)  # the last word per lead wins
        async with self._use(write=True) as conn:
            await conn.executemany(
                "UPDATE job_leads SET status = CASE WHEN ? IS NULL THEN 'ok' ELSE 'failed' END, error = ? "
                "WHERE job_id = ? AND place_id = ?",
                [(error, error, job_id, place_id) for place_id, error in latest.items()],
            )
        return len(latest)

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
        try:
            async with self._use(write=True) as conn:
                cursor = await conn.execute(
                    "INSERT INTO jobs (id, parent_id, spec, created_at, priority) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (id) DO NOTHING",
                    (job_id, parent_id, json_text(dict(spec)), now, priority_of(spec)),
                )
                if cursor.rowcount == 0:
                    return False
                await conn.executemany(
                    "INSERT INTO jobs (id, parent_id, spec, created_at, priority) VALUES (?, ?, ?, ?, ?)",
                    [
                        (child_id, job_id, json_text(dict(child)), now, priority_of(child))
                        for child_id, child in children
                    ],
                )
        except sqlite3.IntegrityError as exc:
            raise ValueError(f"job {job_id!r} cannot be created: {exc}") from exc
        return True

    async def get_job(self, job_id: str) -> Job | None:
        rows = await self._rows(f"SELECT {_JOB_COLS} FROM jobs WHERE id = ?", job_id)
        return Job(**rows[0]) if rows else None

    async def list_jobs(
        self, status: JobStatus | None = None, limit: int = 100, parent_id: str | None = None
    ) -> list[Job]:
        rows = await self._rows(
            f"SELECT {_JOB_COLS} FROM jobs WHERE (?1 IS NULL OR status = ?1) "
            "AND (?2 IS NULL OR parent_id = ?2) "
            "ORDER BY created_at DESC, rowid DESC LIMIT ?3",
            status,
            parent_id,
            limit,
        )
        return [Job(**r) for r in rows]

    async def count_jobs(self, status: JobStatus) -> int:
        rows = await self._rows(f"SELECT count(*) AS n FROM jobs j WHERE j.status = ? AND {_LEAF}", status)
        return int(rows[0]["n"])

    async def lease_next_job(self, owner: str, ttl_s: float, max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> Job | None:
        async with self._use(write=True) as conn:
            failed = await _fetch(conn, _FAIL_EXHAUSTED_SQL, (max_attempts, owner))
            rows = await _fetch(conn, _LEASE_SQL, (owner, float(ttl_s), max_attempts))
        await self._refresh_parents_of([Job(**_decoded(r)) for r in failed])
        return Job(**_decoded(rows[0])) if rows else None

    async def fail_exhausted_jobs(
        self, max_attempts: int = DEFAULT_MAX_ATTEMPTS, owner: str | None = None
    ) -> list[Job]:
        async with self._use(write=True) as conn:
            failed = [Job(**_decoded(r)) for r in await _fetch(conn, _FAIL_EXHAUSTED_SQL, (max_attempts, owner))]
        await self._refresh_parents_of(failed)
        return failed

    async def _refresh_parents_of(self, jobs: Sequence[Job]) -> None:
        for parent_id in sorted({j.parent_id for j in jobs if j.parent_id is not None}):
            await self.refresh_parent(parent_id)

    async def renew_lease(self, job_id: str, owner: str, ttl_s: float) -> bool:
        changed = await self._write(
            f"UPDATE jobs SET lease_expires_at = {_db_later('?4')} WHERE id = ?1 AND lease_owner = ?2 AND status = ?3",
            job_id,
            owner,
            "running",
            float(ttl_s),
        )
        return changed > 0

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
        sets = [f"{name} = COALESCE(?{i + 3}, {name})" for i, name in enumerate(JOB_COUNTERS)]
        sets.append("progress = COALESCE(?8, progress)")
        sets.append("error = COALESCE(?9, error)")
        sets.append(f"status = CASE WHEN status IN ({_TERMINAL_SQL}) THEN status ELSE COALESCE(?10, status) END")
        changed = await self._write(
            f"UPDATE jobs SET {', '.join(sets)} WHERE id = ?1 AND lease_owner = ?2",
            job_id,
            owner,
            found,
            qualified,
            enriched,
            written,
            failed,
            None if progress is None else json_text(dict(progress)),
            error,
            status,
        )
        return changed > 0

    async def finish_job(self, job_id: str, owner: str, status: JobStatus, error: str | None = None) -> bool:
        if status not in TERMINAL_STATUSES:
            raise ValueError(f"finish_job needs a final status, got {status!r}")
        changed = await self._write(
            "UPDATE jobs SET status = CASE WHEN status = 'cancelled' THEN status ELSE ?3 END, "
            "error = COALESCE(?4, error), finished_at = COALESCE(finished_at, ?5), "
            "lease_owner = NULL, lease_expires_at = NULL WHERE id = ?1 AND lease_owner = ?2",
            job_id,
            owner,
            status,
            error,
            self._now(),
        )
        return changed > 0

    async def cancel_job(self, job_id: str) -> bool:
        async with self._use(write=True) as conn:
            rows = await _fetch(
                conn,
                "UPDATE jobs SET status = 'cancelled', finished_at = ?2 "
                "WHERE (id = ?1 OR parent_id = ?1) AND status IN ('queued', 'running') RETURNING id",
                (job_id, self._now()),
            )
        return any(r[0] == job_id for r in rows)

    async def release_lease(self, job_id: str, owner: str, *, wait_s: float = 0.0) -> bool:
        changed = await self._write(
            # A hand-back is not a death: the lease it ends does not count against max_attempts.
            "UPDATE jobs SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL, "
            f"attempts = MAX(attempts - 1, 0), not_before = CASE WHEN ?3 > 0 THEN {_db_later('?3')} END "
            "WHERE id = ?1 AND lease_owner = ?2 AND status = 'running'",
            job_id,
            owner,
            float(wait_s),
        )
        return changed > 0

    async def requeue_job(self, job_id: str) -> bool:
        return await self._write(REQUEUE_SQL.format(p="?"), job_id) > 0

    async def refresh_parent(self, parent_id: str) -> Job | None:
        sums = ", ".join(f"COALESCE(SUM({c}), 0) AS {c}" for c in JOB_COUNTERS)
        async with self._use(write=True) as conn:
            parent = await _fetch(conn, "SELECT status FROM jobs WHERE id = ?", (parent_id,))
            if not parent:
                return None
            children = await _fetch(conn, "SELECT status FROM jobs WHERE parent_id = ?", (parent_id,))
            totals = (
                await _fetch(
                    conn,
                    f"SELECT {sums}, MIN(started_at) AS started FROM jobs WHERE parent_id = ?",
                    (parent_id,),
                )
            )[0]
            status = aggregate_status([r[0] for r in children])
            if parent[0][0] == "cancelled":
                status = "cancelled"
            sets = ", ".join(f"{c} = ?{i + 3}" for i, c in enumerate(JOB_COUNTERS))
            rows = await _fetch(
                conn,
                f"UPDATE jobs SET status = ?2, {sets}, started_at = COALESCE(started_at, ?8), "
                f"finished_at = CASE WHEN ?9 THEN COALESCE(finished_at, ?10) ELSE NULL END "
                f"WHERE id = ?1 RETURNING {_JOB_COLS}",
                (
                    parent_id,
                    status,
                    *(totals[c] for c in JOB_COUNTERS),
                    totals["started"],
                    status in TERMINAL_STATUSES,
                    self._now(),
                ),
            )
        return Job(**_decoded(rows[0]))

    async def job_place_ids(self, job_id: str) -> set[str]:
        rows = await self._rows("SELECT place_id FROM job_leads WHERE job_id = ?", job_id)
        return {r["place_id"] for r in rows}

    async def lead_rows_for_export(
        self, job_id: str | None = None, qualified_only: bool = False
    ) -> list[dict[str, Any]]:
        if job_id is not None:
            leads = await self._rows(
                "SELECT l.*, jl.job_id, jl.rank, jl.qualified, jl.reasons FROM job_leads jl "
                "JOIN leads l USING (place_id) WHERE jl.job_id = ?1 AND (NOT ?2 OR jl.qualified) "
                "ORDER BY jl.rank NULLS LAST, l.place_id",
                job_id,
                qualified_only,
            )
            tests = await self._rows(
                "SELECT p.* FROM pagespeed_results p JOIN job_leads jl USING (place_id) WHERE jl.job_id = ?",
                job_id,
            )
            sites = await self._rows(
                "SELECT ls.place_id, s.* FROM lead_sites ls JOIN sites s USING (site) "
                "JOIN job_leads jl USING (place_id) WHERE jl.job_id = ?",
                job_id,
            )
        else:
            leads = await self._rows(
                "SELECT l.* FROM leads l WHERE NOT ?1 OR EXISTS "
                "(SELECT 1 FROM job_leads jl WHERE jl.place_id = l.place_id AND jl.qualified) "
                "ORDER BY l.first_seen_at, l.place_id",
                qualified_only,
            )
            tests = await self._rows("SELECT * FROM pagespeed_results")
            sites = await self._rows("SELECT ls.place_id, s.* FROM lead_sites ls JOIN sites s USING (site)")
        return export_rows(leads, tests, with_job=job_id is not None, sites=sites)

    # dead letters ------------------------------------------------------------------------------

    async def add_dead_letter(
        self, kind: DeadLetterKind, payload: str | Mapping[str, Any], reason: str, attempts: int = 1
    ) -> int:
        check_dead_letter_kind(kind)
        async with self._use(write=True) as conn:
            cursor = await conn.execute(
                "INSERT INTO dead_letters (kind, payload, reason, attempts, created_at) VALUES (?, ?, ?, ?, ?)",
                (kind, dead_letter_text(payload), dead_letter_text(reason), attempts, self._now()),
            )
            new_id = cursor.lastrowid
        assert new_id is not None  # an INSERT into a rowid table always sets it
        return new_id

    async def list_dead_letters(
        self, kind: DeadLetterKind | None = None, include_replayed: bool = False, limit: int = 100
    ) -> list[DeadLetter]:
        rows = await self._rows(
            f"SELECT {_DL_COLS} FROM dead_letters WHERE (?1 IS NULL OR kind = ?1) "
            "AND (?2 OR replayed_at IS NULL) ORDER BY created_at, id LIMIT ?3",
            kind,
            include_replayed,
            limit,
        )
        return [DeadLetter(**r) for r in rows]

    async def get_dead_letter(self, dead_letter_id: int) -> DeadLetter | None:
        rows = await self._rows(f"SELECT {_DL_COLS} FROM dead_letters WHERE id = ?", dead_letter_id)
        return DeadLetter(**rows[0]) if rows else None

    async def mark_replayed(self, dead_letter_id: int) -> bool:
        changed = await self._write(
            "UPDATE dead_letters SET replayed_at = ? WHERE id = ? AND replayed_at IS NULL",
            self._now(),
            dead_letter_id,
        )
        return changed > 0

    async def bump_dead_letter(self, dead_letter_id: int, reason: str) -> bool:
        changed = await self._write(
            "UPDATE dead_letters SET attempts = attempts + 1, reason = ?, replayed_at = NULL WHERE id = ?",
            dead_letter_text(reason),
            dead_letter_id,
        )
        return changed > 0


@asynccontextmanager
async def open_sqlite(
    url: str, *, busy_timeout: float = 30.0, clock: Clock | None = None
) -> AsyncIterator[SqliteStore]:
    path = sqlite_path(url)
    if path != ":memory:" and not Path(path).parent.is_dir():
        raise ValueError(f"the SQLite database's folder does not exist: {Path(path).parent}")
    try:
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves rather than sqlite3's deferred BEGIN.
        conn = await aiosqlite.connect(path, isolation_level=None, timeout=busy_timeout)
    except sqlite3.OperationalError as exc:
        raise StoreUnavailable(f"SQLite database {path} cannot be opened: {exc}") from exc
    try:
        conn.row_factory = sqlite3.Row
        await conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute("PRAGMA synchronous = NORMAL")
        await conn.execute("PRAGMA foreign_keys = ON")
        store = SqliteStore(conn, clock or MonotonicClock())
        try:
            yield store
        finally:
            await store.aclose()
    finally:
        await conn.close()
