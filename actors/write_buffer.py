"""The writer's pending rows: held by the pipeline, outside any writer instance.

A writer that crashes loses nothing, because what it accepted sits here until a flush commits
it; only then are the messages taken out and their jobs' counters moved. A flush writes a
prefix of the buffer (leads, then PageSpeed rows, then each job's ``job_leads``), all idempotent,
so a flush cut short by a crash or an outage is simply written again.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from leadlawk_daemon.jobs.messages import LeadEnriched, LeadFound, WriterMessage
from leadlawk_daemon.jobs.run import JobRun
from leadlawk_daemon.listing import Listing
from leadlawk_daemon.pagespeed.result import PageSpeedResult
from leadlawk_daemon.qualify import Qualification, qualify
from leadlawk_daemon.store.base import JobLead, PageSpeedRow, Store

__all__ = ["Committed", "WriteBuffer"]


@dataclass(frozen=True, slots=True)
class Committed:
    """What one flush made durable, per job: for counters, metrics and ``lead.written`` events."""

    messages: int
    leads: int
    pagespeed_rows: int
    by_job: dict[JobRun, list[str]]


def _verdict(run: JobRun, listing: Listing, results: tuple[PageSpeedResult, ...]) -> Qualification:
    return qualify(listing, results, run.filters)


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

    def place_ids(self, job_id: str) -> set[str]:
        """Leads of ``job_id`` accepted and not yet written: a resumed run need not emit them again."""
        return {
            m.listing.place_id
            for m in self._items
            if isinstance(m, LeadFound) and m.run.job_id == job_id and m.listing.place_id
        }

    async def write_batch(self, store: Store, on_bad: Callable[[WriterMessage, str], None]) -> Committed:
        """Write up to ``batch_size`` of the oldest messages; take them out once committed.

        Rows the store refuses (``ValueError``, raised before it writes anything) are found one
        message at a time and handed to ``on_bad``; the rest is written.
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
                    on_bad(message, str(exc))
                    message.run.unwritten -= 1
                    message.run.poke()
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
        rows: list[PageSpeedRow] = []
        job_leads: dict[JobRun, list[JobLead]] = defaultdict(list)
        stored = _Stored()
        for message in batch:
            run, listing = message.run, message.listing
            place_id = listing.place_id
            if place_id is None:
                raise ValueError("a listing without a place_id cannot be stored")
            if isinstance(message, LeadFound):
                leads.append(listing)
                verdict = _verdict(run, listing, run.tested.get(place_id, ()))
                job_leads[run].append(JobLead(place_id, message.rank, verdict.qualified, verdict.reasons))
            else:
                rows.extend(PageSpeedRow(**r.to_row()) for r in message.results)
                verdict = _verdict(run, listing, message.results)
                job_leads[run].append(JobLead(place_id, None, verdict.qualified, verdict.reasons))
            stored.verdicts.append((message, place_id, verdict))
        stored.leads = await store.upsert_leads(leads) if leads else 0
        stored.pagespeed_rows = await store.upsert_pagespeed(rows) if rows else 0
        for run, job_rows in job_leads.items():
            await store.upsert_job_leads(run.job_id, job_rows)
        return stored


@dataclass
class _Stored:
    """Messages whose rows are durable, not yet acknowledged to their runs."""

    verdicts: list[tuple[WriterMessage, str, Qualification]] = field(default_factory=list)
    leads: int = 0
    pagespeed_rows: int = 0

    def extend(self, other: _Stored) -> None:
        self.verdicts.extend(other.verdicts)
        self.leads += other.leads
        self.pagespeed_rows += other.pagespeed_rows

    def acknowledge(self, messages: int) -> Committed:
        """Move the runs' counters; called once, after the commit."""
        by_job: dict[JobRun, list[str]] = defaultdict(list)
        for message, place_id, verdict in self.verdicts:
            run = message.run
            if isinstance(message, LeadFound):
                run.written.add(place_id)
                by_job[run].append(place_id)
            elif isinstance(message, LeadEnriched):
                run.tested[place_id] = message.results
                run.enriched.add(place_id)
            run.qualified[place_id] = verdict.qualified
            run.unwritten -= 1
            run.poke()
        return Committed(messages, self.leads, self.pagespeed_rows, dict(by_job))
