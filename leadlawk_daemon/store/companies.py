"""Each lead's company in the store: the grouping of :mod:`leadlawk_daemon.companies`, persisted.

:meth:`CompanyGroups.regroup_companies` reads every lead's website, phone and address with the
company it had, groups them again (off the event loop) and writes only what changed, in one
transaction that also reads: two daemons regrouping at once take turns (PostgreSQL: a transaction
advisory lock; SQLite: its one writer), so neither writes a grouping made from a stale read.
"""

from __future__ import annotations

import asyncio
from typing import Any

from leadlawk_daemon.companies import Grouping, Member, group_companies
from leadlawk_daemon.store.common import StoreCommon

__all__ = ["COMPANY_EXPORT_COLUMNS", "GROUPING_LOCK_KEY", "CompanyGroups"]

# What ``leadlawk export`` adds to each lead: its company, and how many branches it has.
COMPANY_EXPORT_COLUMNS: tuple[str, ...] = ("company_id", "company_size")

_READ = (
    "SELECT l.place_id, l.website, l.phone_e164, l.address, c.company_id, c.company_size, c.grouped_by "
    "FROM leads l LEFT JOIN lead_companies c USING (place_id)"
)
_UPSERT = (
    "INSERT INTO lead_companies (place_id, company_id, company_size, grouped_by, grouped_at) "
    "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (place_id) DO UPDATE SET company_id = EXCLUDED.company_id, "
    "company_size = EXCLUDED.company_size, grouped_by = EXCLUDED.grouped_by, grouped_at = EXCLUDED.grouped_at"
)
_ALIAS = (
    "INSERT INTO company_aliases (alias, company_id, merged_at) VALUES ($1, $2, $3) "
    "ON CONFLICT (alias) DO UPDATE SET company_id = EXCLUDED.company_id, merged_at = EXCLUDED.merged_at"
)
# An alias of an id that is itself merged now points at its heir: an old id never leads to a dead one.
_FOLLOW = "UPDATE company_aliases SET company_id = $2 WHERE company_id = $1"
# Any fixed number: the one lock every regrouping takes (PostgreSQL only).
GROUPING_LOCK_KEY = 2424242424
_LOCK = f"SELECT pg_advisory_xact_lock({GROUPING_LOCK_KEY})"


class CompanyGroups(StoreCommon):
    async def regroup_companies(self) -> int:
        """Group every stored lead into companies again; returns how many leads' rows changed.
        Idempotent: a second call with no new lead changes nothing."""
        async with self.database.writing() as session:
            if self.database.dialect.name == "postgres":
                await session.fetch(_LOCK)
            rows = await session.fetch(_READ)
            members = [Member(r["place_id"], r["website"], r["phone_e164"], r["address"]) for r in rows]
            previous = {r["place_id"]: r["company_id"] for r in rows if r["company_id"] is not None}
            grouping: Grouping = await asyncio.to_thread(group_companies, members, previous)
            stored = {r["place_id"]: (r["company_id"], r["company_size"], r["grouped_by"]) for r in rows}
            now = self._now()
            changed = [
                (place_id, a.company_id, a.company_size, a.grouped_by, now)
                for place_id, a in sorted(grouping.assignments.items())
                if stored.get(place_id) != (a.company_id, a.company_size, a.grouped_by)
            ]
            if changed:
                await session.execute_many(_UPSERT, changed)
            for alias, heir in sorted(grouping.merged.items()):
                await session.execute(_FOLLOW, alias, heir)
                await session.execute(_ALIAS, alias, heir, now)
        return len(changed)

    async def company_sizes(self, job_id: str) -> dict[str, int]:
        """The company size of each lead of a job that is grouped (place id → branches found)."""
        async with self.database.reading() as session:
            rows = await session.fetch(
                "SELECT jl.place_id, c.company_size FROM job_leads jl JOIN lead_companies c USING (place_id) "
                "WHERE jl.job_id = $1",
                job_id,
            )
        return {r["place_id"]: int(r["company_size"]) for r in rows}

    async def company_alias(self, company_id: str) -> str | None:
        """The company an id that was merged away now belongs to; ``None`` when it was not merged."""
        async with self.database.reading() as session:
            rows: list[dict[str, Any]] = await session.fetch(
                "SELECT company_id FROM company_aliases WHERE alias = $1", company_id
            )
        return rows[0]["company_id"] if rows else None
