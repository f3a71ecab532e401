"""A lead's facts in the store, with the SQL that writes and reads them: its listing, its PageSpeed
results, its site, its place in each job's results, and the flat rows of an export."""

from __future__ import annotations

import asyncio
import operator
from collections.abc import Sequence
from typing import Any

from leadlawk_daemon.listing import LISTING_FIELDS, Listing
from leadlawk_daemon.pagespeed.result import PageSpeedResult
from leadlawk_daemon.sites.report import SiteReport
from leadlawk_daemon.store.base import JobLead, first_error
from leadlawk_daemon.store.batch import lead_values, prepare_job_leads, prepare_leads, prepare_pagespeed
from leadlawk_daemon.store.common import StoreCommon
from leadlawk_daemon.store.dialect import Dialect
from leadlawk_daemon.store.export import export_rows
from leadlawk_daemon.store.session import RowRefused
from leadlawk_daemon.store.sites import SITE_FIELDS, site_values

__all__ = ["LeadFacts"]

_PLACE_ID_OF = operator.itemgetter(LISTING_FIELDS.index("place_id"))
# Below this, one transaction is cheaper than the round trips of several.
_PARALLEL_MIN_ROWS = 1000
_LEAD_INSERT = f"INSERT INTO leads AS l ({', '.join(LISTING_FIELDS)}, first_seen_at, last_seen_at)"


# The address parts move as one group (docs/addresses.md): Google's own (address_source 'google')
# replace whatever was there, whole, and are never replaced by, nor mixed with, a parse of another
# page's address line.
_ADDRESS_GROUP = frozenset({"street", "locality", "region", "postal_code", "address_source"})


def _lead_column_update(c: str) -> str:
    if c in _ADDRESS_GROUP:
        return (
            f"{c} = CASE WHEN EXCLUDED.address_source = 'google' THEN EXCLUDED.{c} "
            f"WHEN l.address_source = 'google' THEN l.{c} ELSE COALESCE(EXCLUDED.{c}, l.{c}) END"
        )
    return f"{c} = COALESCE(EXCLUDED.{c}, l.{c})"


def _lead_on_conflict(d: Dialect) -> str:
    # A known value is never replaced by an unknown one; first_seen_at is kept.
    return (
        "ON CONFLICT (place_id) DO UPDATE SET "
        + ", ".join(_lead_column_update(c) for c in LISTING_FIELDS if c != "place_id")
        + f", last_seen_at = {d.greatest}(l.last_seen_at, EXCLUDED.last_seen_at)"
    )


def _values(names: Sequence[str]) -> str:
    return ", ".join(f"${i + 1}" for i in range(len(names)))


_PAGESPEED_COLUMNS = (
    "place_id", "strategy", "performance", "accessibility", "best_practices", "seo", "fcp_ms", "lcp_ms",
    "tbt_ms", "speed_index_ms", "tti_ms", "cls", "final_url", "error", "field_data", "tested_at",
)  # fmt: skip
_PAGESPEED_SQL = (
    f"INSERT INTO pagespeed_results AS p ({', '.join(_PAGESPEED_COLUMNS)}) VALUES ({_values(_PAGESPEED_COLUMNS)}) "
    "ON CONFLICT (place_id, strategy) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in _PAGESPEED_COLUMNS[2:])
    # An older result never replaces a newer one.
    + " WHERE EXCLUDED.tested_at >= p.tested_at"
)
_SITE_SQL = (
    f"INSERT INTO sites ({', '.join(SITE_FIELDS)}) VALUES ({_values(SITE_FIELDS)}) "
    "ON CONFLICT (site) DO UPDATE SET " + ", ".join(f"{c} = EXCLUDED.{c}" for c in SITE_FIELDS if c != "site")
)
_LEAD_SITE_SQL = (
    "INSERT INTO lead_sites (place_id, site) VALUES ($1, $2) ON CONFLICT (place_id) DO UPDATE SET site = EXCLUDED.site"
)
_JOB_LEAD_SQL = (
    "INSERT INTO job_leads AS j (job_id, place_id, rank, qualified, reasons) VALUES ($1, $2, $3, $4, $5) "
    "ON CONFLICT (job_id, place_id) DO UPDATE SET rank = COALESCE(EXCLUDED.rank, j.rank), "
    "qualified = COALESCE(EXCLUDED.qualified, j.qualified), reasons = COALESCE(EXCLUDED.reasons, j.reasons)"
)
# A row already saying so is left unwritten.
_LEAD_STATUS_SQL = (
    "UPDATE job_leads SET status = CASE WHEN CAST($1 AS text) IS NULL THEN 'ok' ELSE 'failed' END, error = $1 "
    "WHERE job_id = $2 AND place_id = $3 "
    "AND (status <> CASE WHEN CAST($1 AS text) IS NULL THEN 'ok' ELSE 'failed' END OR error IS DISTINCT FROM $1)"
)

_JOB_EXPORT_LEADS = (
    "SELECT l.*, jl.job_id, jl.rank, jl.qualified, jl.reasons, c.company_id, c.company_size FROM job_leads jl "
    "JOIN leads l USING (place_id) LEFT JOIN lead_companies c USING (place_id) "
    "WHERE jl.job_id = $1 AND (NOT $2 OR jl.qualified) "
    "ORDER BY jl.rank NULLS LAST, l.place_id"
)
_JOB_EXPORT_TESTS = "SELECT p.* FROM pagespeed_results p JOIN job_leads jl USING (place_id) WHERE jl.job_id = $1"
_SITES = "SELECT ls.place_id, s.* FROM lead_sites ls JOIN sites s USING (site)"
_EXPORT_LEADS = (
    "SELECT l.*, c.company_id, c.company_size FROM leads l LEFT JOIN lead_companies c USING (place_id) "
    "WHERE NOT $1 OR EXISTS "
    "(SELECT 1 FROM job_leads jl WHERE jl.place_id = l.place_id AND jl.qualified) "
    "ORDER BY l.first_seen_at, l.place_id"
)


class LeadFacts(StoreCommon):
    async def upsert_leads(self, rows: Sequence[Listing]) -> int:
        batch = prepare_leads(rows)
        if not batch:
            return 0
        values = [lead_values(row) for row in batch]
        # Sorted by key, every writer (of this daemon or another) takes row locks in the same order,
        # so concurrent upserts of overlapping batches wait for each other instead of deadlocking.
        values.sort(key=_PLACE_ID_OF)
        now = self._now()
        on_conflict = _lead_on_conflict(self.database.dialect)
        parts = self.database.write_parallelism if len(values) >= _PARALLEL_MIN_ROWS else 1
        if parts == 1:
            await self.database.load_leads(_LEAD_INSERT, on_conflict, values, now)
            return len(batch)
        # The conflict check costs one backend a core: disjoint slices on separate connections use
        # the others. Each slice commits alone; a failed one cancels the rest, and the writer
        # retries the whole batch, which is idempotent. The task group's ExceptionGroup is
        # unwrapped: the database breaker counts StoreUnavailable, and would take a group for a
        # data error (one it excludes, and aiobreaker counts an excluded error as a success).
        try:
            async with asyncio.TaskGroup() as group:
                for i in range(parts):
                    group.create_task(self.database.load_leads(_LEAD_INSERT, on_conflict, values[i::parts], now))
        except ExceptionGroup as exc:
            raise first_error(exc) from exc
        return len(batch)

    async def upsert_pagespeed(self, results: Sequence[PageSpeedResult]) -> int:
        batch = prepare_pagespeed(results)
        if not batch:
            return 0
        args = []
        for result in batch:
            row = result.to_row()
            args.append([row[c] for c in _PAGESPEED_COLUMNS])
        await self._write_rows(_PAGESPEED_SQL, args, "PageSpeed results for leads not stored yet")
        return len(batch)

    async def upsert_sites(self, rows: Sequence[tuple[str | None, SiteReport]]) -> int:
        """Site reports (the last of each site wins) and which lead links each; idempotent."""
        latest = {report.site: report for _, report in rows}
        links = sorted({(place_id, report.site) for place_id, report in rows if place_id is not None})
        if not latest:
            return 0
        now = self._now()
        args = [[site_values(report, now)[c] for c in SITE_FIELDS] for report in latest.values()]
        async with self.database.writing() as session:
            await session.execute_many(_SITE_SQL, args)
            if links:
                await session.execute_many(_LEAD_SITE_SQL, links)
        return len(latest)

    async def upsert_job_leads(self, job_id: str, rows: Sequence[JobLead | tuple[Any, ...]]) -> int:
        batch = prepare_job_leads(rows)
        if not batch:
            return 0
        args = [(job_id, r.place_id, r.rank, r.qualified, r.reasons) for r in batch]
        await self._write_rows(_JOB_LEAD_SQL, args, "job leads refer to an unknown job or lead")
        return len(batch)

    async def _write_rows(self, sql: str, args: Sequence[Sequence[Any]], refused: str) -> None:
        """One statement per row, in one transaction; a row the database refuses (its lead or job
        is not stored) is a ``ValueError`` beginning with ``refused``, and nothing is written."""
        try:
            async with self.database.writing() as session:
                await session.execute_many(sql, args)
        except RowRefused as exc:
            raise ValueError(f"{refused}: {exc}") from exc

    async def set_lead_status(self, job_id: str, rows: Sequence[tuple[str, str | None]]) -> int:
        if not rows:
            return 0
        latest = dict(rows)  # the last word per lead wins
        async with self.database.writing() as session:
            await session.execute_many(_LEAD_STATUS_SQL, [(error, job_id, p) for p, error in latest.items()])
        return len(latest)

    async def job_place_ids(self, job_id: str) -> set[str]:
        async with self.database.reading() as session:
            rows = await session.fetch("SELECT place_id FROM job_leads WHERE job_id = $1", job_id)
        return {r["place_id"] for r in rows}

    async def lead_rows_for_export(
        self, job_id: str | None = None, qualified_only: bool = False
    ) -> list[dict[str, Any]]:
        async with self.database.reading() as session:
            if job_id is not None:
                leads = await session.fetch(_JOB_EXPORT_LEADS, job_id, qualified_only)
                tests = await session.fetch(_JOB_EXPORT_TESTS, job_id)
                sites = await session.fetch(f"{_SITES} JOIN job_leads jl USING (place_id) WHERE jl.job_id = $1", job_id)
            else:
                leads = await session.fetch(_EXPORT_LEADS, qualified_only)
                tests = await session.fetch("SELECT * FROM pagespeed_results")
                sites = await session.fetch(_SITES)
        return export_rows(leads, tests, with_job=job_id is not None, sites=sites)
