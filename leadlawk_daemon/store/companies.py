"""Each lead's company in the store: the grouping of :mod:`leadlawk_daemon.companies`, persisted.

:meth:`CompanyGroups.regroup_companies` reads every lead's website, phone and address with the
company it had, groups them again (off the event loop) and writes only what changed. No grouping
is written from a stale read: on PostgreSQL the read, the grouping and the write are one
transaction behind an advisory lock, so two daemons regrouping at once take turns (other writers
are not held up: the read is a snapshot). SQLite has one connection that every store call of the
process waits for, so there the grouping runs between a read and a write that checks nothing
changed meanwhile (the leads' count and latest sighting, the groups' count and latest grouping),
and groups again if something did; the third time, it holds the connection for the whole of it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from leadlawk_daemon.companies import Grouping, Member, group_companies
from leadlawk_daemon.store.common import StoreCommon
from leadlawk_daemon.store.session import Session
from leadlawk_daemon.store.single_flight import SingleFlight

__all__ = ["COMPANY_EXPORT_COLUMNS", "GROUPING_LOCK_KEY", "CompanyGroups"]

# What ``leadlawk export`` adds to each lead: its company, and how many branches it has.
COMPANY_EXPORT_COLUMNS: tuple[str, ...] = ("company_id", "company_size")

_READ = (
    "SELECT l.place_id, l.website, l.phone_e164, l.address, l.locality, l.postal_code, "
    "c.company_id, c.company_size, c.grouped_by "
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
_UNALIAS = "DELETE FROM company_aliases WHERE alias = $1"
# An alias of an id that is itself merged now points at its heir: an old id never leads to a dead one.
_FOLLOW = "UPDATE company_aliases SET company_id = $2 WHERE company_id = $1"
# SQLite: what a regroup checks did not change between its read and its write.
_FINGERPRINT = (
    "SELECT (SELECT count(*) FROM leads) AS leads, (SELECT max(last_seen_at) FROM leads) AS seen, "
    "(SELECT count(*) FROM lead_companies) AS grouped, (SELECT max(grouped_at) FROM lead_companies) AS at"
)
_OPTIMISTIC_TRIES = 2
# Any fixed number: the one lock every regrouping takes (PostgreSQL only).
GROUPING_LOCK_KEY = 2424242424
_LOCK = f"SELECT pg_advisory_xact_lock({GROUPING_LOCK_KEY})"


class CompanyGroups(StoreCommon):
    _regroups: SingleFlight[int] | None = None

    async def regroup_companies(self) -> int:
        """Group every stored lead into companies again; returns how many leads' rows changed.
        Idempotent: a second call with no new lead changes nothing. Calls made while a regroup runs
        share the next one (:class:`.SingleFlight`): a batch's children ending together cost two
        regroups of the store, not one each."""
        if self._regroups is None:
            self._regroups = SingleFlight()
        return await self._regroups(self._regroup)

    async def _regroup(self) -> int:
        if self.database.dialect.name == "postgres":
            async with self.database.writing() as session:
                await session.fetch(_LOCK)
                rows = await session.fetch(_READ)
                return await self._write(session, rows, await _grouped(rows))
        for _ in range(_OPTIMISTIC_TRIES):
            async with self.database.reading() as session:
                rows = await session.fetch(_READ)
                seen = await session.fetch(_FINGERPRINT)
            grouping = await _grouped(rows)
            async with self.database.writing() as session:
                if await session.fetch(_FINGERPRINT) == seen:
                    return await self._write(session, rows, grouping)
        async with self.database.writing() as session:
            rows = await session.fetch(_READ)
            return await self._write(session, rows, await _grouped(rows))

    async def _write(self, session: Session, rows: list[dict[str, Any]], grouping: Grouping) -> int:
        """The rows that changed, and the ids merged away, in ``session``'s transaction."""
        stored = {r["place_id"]: (r["company_id"], r["company_size"], r["grouped_by"]) for r in rows}
        now = self._now()
        changed = [
            (place_id, a.company_id, a.company_size, a.grouped_by, now)
            for place_id, a in sorted(grouping.assignments.items())
            if stored.get(place_id) != (a.company_id, a.company_size, a.grouped_by)
        ]
        if changed:
            await session.execute_many(_UPSERT, changed)
            # An id held again (a split re-derived it) is a company, no longer an alias of another.
            revived = sorted({row[1] for row in changed} - {r["company_id"] for r in rows})
            if revived:
                await session.execute_many(_UNALIAS, [(company_id,) for company_id in revived])
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


async def _grouped(rows: list[dict[str, Any]]) -> Grouping:
    """The grouping of the read rows, in a worker thread (CPU-bound: seconds for 100,000 leads)."""
    members = [Member(r["place_id"], r["website"], r["phone_e164"], _place(r)) for r in rows]
    previous = {r["place_id"]: r["company_id"] for r in rows if r["company_id"] is not None}
    return await asyncio.to_thread(group_companies, members, previous)


def _place(row: dict[str, Any]) -> str | None:
    """Where a lead is, to tell one address from another: its street line with its locality and
    postal code (two branches at "100 Main St" in two towns are two places)."""
    parts = [row.get(name) for name in ("address", "locality", "postal_code")]
    return ", ".join(p for p in parts if p) if parts[0] else None
