"""The writer's pending rows: held by the pipeline, outside any writer instance.

A writer that crashes loses nothing, because what it accepted sits here until a flush commits
it; only then are the messages taken out and their jobs told (:class:`RowsCommitted`). A flush
writes a prefix of the buffer (leads, then PageSpeed rows, then each job's ``job_leads``, then
lead failures), all idempotent, so a flush cut short by a crash or an outage is written again.
Rows the store refuses are found one message at a time and reported as that lead's failure.

It writes facts, never verdicts: a lead's verdict is its job owner's, computed once all of the
lead's facts are durable (``leadlawk_daemon.jobs.verdicts``), whatever order they came in.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field

from leadlawk_daemon.listing import Listing
from leadlawk_daemon.messages import (
    JobHandle,
    LeadFailed,
    RowsCommitted,
    WriteEnrichment,
    WriteLead,
    WriteLeadStatus,
    WriterMessage,
    WriteSite,
)
from leadlawk_daemon.pagespeed.result import PageSpeedResult
from leadlawk_daemon.sites.report import SiteReport
from leadlawk_daemon.store.base import JobLead, Store

__all__ = ["Committed", "WriteBuffer"]


@dataclass(frozen=True, slots=True)
class Committed:
    """What one flush made durable, per job: for metrics and ``lead.written`` events."""

    messages: int
    leads: int
    pagespeed_rows: int
    by_job: dict[str, list[str]]


class WriteBuffer:
    def __init__(self, max_pending: int, batch_size: int) -> None:
        if max_pending < 1 or batch_size < 1:
            raise ValueError(f"write buffer: max_pending and batch_size must be positive ({max_pending}, {batch_size})")
        self.max_pending = max_pending
        self.batch_size = batch_size
        self._items: list[WriterMessage] = []
        self.nonempty = asyncio.Event()
        self.full_batch = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        # Flushes are serialised: the timer's and the final one at stop never overlap.
        self.lock = asyncio.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def add(self, message: WriterMessage) -> None:
        self._items.append(message)
        self.nonempty.set()
        if len(self._items) >= self.batch_size:
            self.full_batch.set()
        if len(self._items) >= self.max_pending:
            self._room.clear()

    async def wait_for_room(self) -> None:
        while len(self._items) >= self.max_pending:
            self._room.clear()
            await self._room.wait()

    async def write_batch(self, store: Store) -> Committed:
        """Write up to ``batch_size`` of the oldest messages; take them out once committed.

        Rows the store refuses (``ValueError``, raised before it writes anything) are found one
        message at a time and reported to their jobs as that lead's failure; the rest is written.
        """
        batch = self._items[: self.batch_size]
        try:
            stored = await self._store(store, batch)
        except ValueError:
            stored = _Stored()
            for message in batch:
                try:
                    stored.extend(await self._store(store, [message]))
                except ValueError as exc:
                    _refused(message, str(exc))
        del self._items[: len(batch)]
        self._after_removal()
        return stored.acknowledge(len(batch))

    def _after_removal(self) -> None:
        if not self._items:
            self.nonempty.clear()
        if len(self._items) < self.batch_size:
            self.full_batch.clear()
        if len(self._items) < self.max_pending:
            self._room.set()

    @staticmethod
    async def _store(store: Store, batch: list[WriterMessage]) -> _Stored:
        leads: list[Listing] = []
        rows: list[PageSpeedResult] = []
        sites: list[tuple[str | None, SiteReport]] = []
        job_leads: dict[str, list[JobLead]] = defaultdict(list)
        failures: dict[str, list[tuple[str, str | None]]] = defaultdict(list)
        stored = _Stored()
        for message in batch:
            job = message.job
            if isinstance(message, WriteLeadStatus):
                failures[job.job_id].append((message.place_id, message.error))
                stored.statuses.append(message)
                continue
            listing = message.listing
            place_id = listing.place_id
            if place_id is None:
                raise ValueError("a listing without a place_id cannot be stored")
            if isinstance(message, WriteLead):
                leads.append(listing)
                # Its place in the job; the verdict (None: kept as stored) is the owner's to write.
                job_leads[job.job_id].append(JobLead(place_id, message.rank))
            elif isinstance(message, WriteSite):
                sites.append((place_id, message.report))
            else:
                rows.extend(message.results)
                # Enriched after all (a replay, say): the lead's earlier failure is lifted.
                failures[job.job_id].append((place_id, None))
            stored.facts.append((message, place_id))
        stored.leads = await store.upsert_leads(leads) if leads else 0
        stored.pagespeed_rows = await store.upsert_pagespeed(rows) if rows else 0
        if sites:
            await store.upsert_sites(sites)
        for job_id, job_rows in job_leads.items():
            await store.upsert_job_leads(job_id, job_rows)
        for job_id, marks in failures.items():
            await store.set_lead_status(job_id, marks)
        return stored


def _refused(message: WriterMessage, reason: str) -> None:
    if isinstance(message, WriteLeadStatus):
        # The row to mark is gone (its job was deleted, say): nothing is left to record it on.
        message.job.report(RowsCommitted((), (), (message.place_id,)))
        return
    place_id = message.listing.place_id or "(no place id)"
    message.job.report(LeadFailed(place_id, "store", reason, message.to_dict()))


@dataclass
class _Stored:
    """Messages whose rows are durable, not yet acknowledged to their jobs."""

    facts: list[tuple[WriteLead | WriteEnrichment | WriteSite, str]] = field(default_factory=list)
    statuses: list[WriteLeadStatus] = field(default_factory=list)
    leads: int = 0
    pagespeed_rows: int = 0

    def extend(self, other: _Stored) -> None:
        self.facts.extend(other.facts)
        self.statuses.extend(other.statuses)
        self.leads += other.leads
        self.pagespeed_rows += other.pagespeed_rows

    def acknowledge(self, messages: int) -> Committed:
        """Tell each job what became durable; called once, after the commit."""
        jobs: dict[str, JobHandle] = {}
        leads: dict[str, list[str]] = defaultdict(list)
        enrichments: dict[str, list[tuple[str, tuple[PageSpeedResult, ...]]]] = defaultdict(list)
        statuses: dict[str, list[str]] = defaultdict(list)
        sites: dict[str, list[str]] = defaultdict(list)
        for message, place_id in self.facts:
            job_id = message.job.job_id
            jobs.setdefault(job_id, message.job)
            if isinstance(message, WriteLead):
                leads[job_id].append(place_id)
            elif isinstance(message, WriteSite):
                sites[job_id].append(place_id)
            else:
                enrichments[job_id].append((place_id, message.results))
        for status in self.statuses:
            jobs.setdefault(status.job.job_id, status.job)
            statuses[status.job.job_id].append(status.place_id)
        for job_id, job in jobs.items():
            job.report(
                RowsCommitted(
                    tuple(leads[job_id]),
                    tuple(enrichments[job_id]),
                    tuple(statuses[job_id]),
                    tuple(sites[job_id]),
                )
            )
        return Committed(messages, self.leads, self.pagespeed_rows, {k: v for k, v in leads.items() if v})
