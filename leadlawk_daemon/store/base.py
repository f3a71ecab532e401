"""What the store offers: the :class:`Store` protocol and the records it speaks in.

One implementation (:mod:`.sql_store`) runs on PostgreSQL (:mod:`.postgres`) and on the embedded
SQLite default (:mod:`.sqlite`) with the same behaviour, so the writer, the job lifecycle and the
CLI never know which database they hold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple, Protocol, get_args

from leadlawk_daemon.listing import Listing
from leadlawk_daemon.pagespeed.result import PageSpeedResult
from leadlawk_daemon.sites.report import SiteReport

__all__ = [
    "DEAD_LETTER_KINDS",
    "DEFAULT_MAX_ATTEMPTS",
    "JOB_COUNTERS",
    "JOB_STATUSES",
    "STRATEGIES",
    "TERMINAL_STATUSES",
    "DeadLetter",
    "DeadLetterKind",
    "Job",
    "JobLead",
    "JobStatus",
    "MigrationError",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "Strategy",
    "exhausted_error",
    "first_error",
    "utc_from_epoch",
]

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled", "partial"]
JOB_STATUSES: tuple[JobStatus, ...] = get_args(JobStatus)
TERMINAL_STATUSES: frozenset[JobStatus] = frozenset({"succeeded", "failed", "cancelled", "partial"})
JOB_COUNTERS: tuple[str, ...] = ("found", "qualified", "enriched", "written", "failed")

# "delivery": a digest a destination refused (docs/deliveries.md), replayed by sending it again.
DeadLetterKind = Literal["message", "job", "lead", "delivery"]
DEAD_LETTER_KINDS: tuple[DeadLetterKind, ...] = get_args(DeadLetterKind)

Strategy = Literal["mobile", "desktop"]
STRATEGIES: tuple[Strategy, ...] = get_args(Strategy)


# ``jobs.max_attempts``'s default: leases of one job that may end with their holder dying.
DEFAULT_MAX_ATTEMPTS = 3


class StoreError(Exception):
    """A storage operation failed for a reason other than the database being unreachable."""


class StoreUnavailable(StoreError):
    """The database cannot be reached (refused, reset, timed out): worth retrying later.

    The writer's circuit breaker counts these; any other :class:`StoreError` is about the data.
    """


class MigrationError(StoreError):
    """The schema cannot be brought up to date (a broken or edited migration file)."""


def utc_from_epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def exhausted_error(attempts: int, max_attempts: int) -> str:
    """The ``error`` of a job failed because its holders kept dying (the lifecycle's SQL builds the
    same text in the database; this is its reference, for tests and callers)."""
    return f"the daemon died {attempts} times while running this job (jobs.max_attempts = {max_attempts})"


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one error a caller of a split operation should see: the database being unreachable
    first (so a breaker counting :class:`StoreUnavailable` sees the outage), then a timeout, then
    whatever came first (a ``ValueError`` for refused rows stays a ``ValueError``)."""
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(group)
    for kind in (StoreUnavailable, TimeoutError):
        for exc in leaves:
            if isinstance(exc, kind):
                return exc
    return leaves[0] if leaves else group


@dataclass(frozen=True, slots=True)
class Job:
    """One row of ``jobs``: a submitted spec and where its run stands."""

    id: str
    spec: dict[str, Any]
    status: JobStatus
    created_at: datetime
    parent_id: str | None = None
    found: int = 0
    qualified: int = 0
    enriched: int = 0
    written: int = 0
    failed: int = 0
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    attempts: int = 0
    progress: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data for ``GET /jobs/{id}``, ``leadlawk status`` and events."""

        def iso(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "id": self.id,
            "parent_id": self.parent_id,
            "spec": self.spec,
            "status": self.status,
            "counters": {name: getattr(self, name) for name in JOB_COUNTERS},
            "error": self.error,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "lease_owner": self.lease_owner,
            "lease_expires_at": iso(self.lease_expires_at),
            "attempts": self.attempts,
            "progress": self.progress,
        }


class JobLead(NamedTuple):
    """A lead's place in one job's results; ``None`` means not decided yet (kept as it was)."""

    place_id: str
    rank: int | None = None
    qualified: bool | None = None
    reasons: Sequence[str] | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Something the daemon could not process, kept with why, for ``leadlawk dlq``."""

    id: int
    kind: DeadLetterKind
    payload: str
    reason: str
    attempts: int
    created_at: datetime
    replayed_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "payload": self.payload,
            "reason": self.reason,
            "attempts": self.attempts,
            "created_at": self.created_at.isoformat(),
            "replayed_at": None if self.replayed_at is None else self.replayed_at.isoformat(),
        }


class Store(Protocol):
    """Durable state of the daemon. Every method is safe to call again with the same arguments.

    Unreachable database: :class:`StoreUnavailable`. Rows that cannot be stored: ``ValueError``
    naming them, raised before anything is written.
    """

    async def migrate(self) -> list[int]:
        """Apply pending migrations (serialised across processes); returns the versions applied now."""

    async def ping(self) -> None:
        """One round trip; raises :class:`StoreUnavailable` when the database does not answer."""

    # leads -------------------------------------------------------------------------------------

    async def upsert_leads(self, rows: Sequence[Listing]) -> int:
        """Insert or update by ``place_id``; returns how many distinct businesses were written.

        Within a batch, later values win and earlier ones fill their gaps. A known value is never
        replaced by ``None``. ``first_seen_at`` is kept, ``last_seen_at`` moves forward.
        """

    async def upsert_pagespeed(self, results: Sequence[PageSpeedResult]) -> int:
        """Insert or replace by ``(place_id, strategy)``; an older result never replaces a newer one."""

    async def upsert_sites(self, rows: Sequence[tuple[str | None, SiteReport]]) -> int:
        """Site reports, one row per site (the last wins), and which lead (place id) links each."""

    async def upsert_job_leads(self, job_id: str, rows: Sequence[JobLead | tuple[Any, ...]]) -> int:
        """Record leads in a job's results; ``None`` fields keep what is stored."""

    async def set_lead_status(self, job_id: str, rows: Sequence[tuple[str, str | None]]) -> int:
        """Record a lead's own failure on its ``job_leads`` row: ``(place_id, error)`` sets ``status``
        to ``failed`` with that error; ``(place_id, None)`` sets it back to ``ok``. Rows that do not
        exist are left alone. Returns how many leads were named (the last word on each counts)."""

    # jobs --------------------------------------------------------------------------------------

    async def create_job(self, job_id: str, spec: Mapping[str, Any], parent_id: str | None = None) -> bool:
        """Persist a queued job; ``False`` when the id exists already (it is not run again)."""

    async def create_batch(
        self,
        job_id: str,
        spec: Mapping[str, Any],
        children: Sequence[tuple[str, Mapping[str, Any]]],
        parent_id: str | None = None,
    ) -> bool:
        """A batch parent and its children in one transaction; ``False`` (nothing written) if the
        parent id exists. A job with children is never leased: it only aggregates them."""

    async def get_job(self, job_id: str) -> Job | None: ...

    async def list_jobs(
        self, status: JobStatus | None = None, limit: int = 100, parent_id: str | None = None
    ) -> list[Job]:
        """Newest first."""

    async def count_jobs(self, status: JobStatus) -> int:
        """How many leaf jobs (batch parents excluded) have ``status``: one indexed count, for the
        admission's ``queue_size``."""
        ...

    async def lease_next_job(self, owner: str, ttl_s: float, max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> Job | None:
        """Atomically take the oldest queued job, or a running one whose lease has expired.

        Lease times are the database's own clock, never the caller's: daemons whose wall clocks
        disagree still agree on who holds a job. A job whose lease a live owner keeps renewing is
        never returned to anyone else. ``attempts`` counts leases that did not end in a
        :meth:`release_lease`; a job whose lease expired after ``max_attempts`` of them (its holder
        died that often) is not leased again but set ``failed`` (see :meth:`fail_exhausted_jobs`).
        """

    async def fail_exhausted_jobs(
        self, max_attempts: int = DEFAULT_MAX_ATTEMPTS, owner: str | None = None
    ) -> list[Job]:
        """Set ``failed`` every running job whose lease expired after ``max_attempts`` leases that
        each ended with the holder dying, ``error`` naming the cause; returns them (their batch
        parents refreshed), so a caller can announce them. :meth:`lease_next_job` does this too.
        A lease held by ``owner`` (the caller, alive) that lapsed is no death and is left alone: the
        caller takes it back with :meth:`lease_next_job` without counting an attempt."""
        ...

    async def renew_lease(self, job_id: str, owner: str, ttl_s: float) -> bool:
        """Extend the lease to ``ttl_s`` from the database's now; ``False`` when ``owner`` no longer
        holds it or the job was cancelled."""

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
        """Set counters (absolute values) and progress; ``False`` when ``owner`` does not hold the job.

        ``status`` applies only while the job is not finished: a cancel is never undone by its owner.
        """

    async def finish_job(self, job_id: str, owner: str, status: JobStatus, error: str | None = None) -> bool:
        """End the owner's run and drop the lease; a cancelled job stays cancelled."""

    async def cancel_job(self, job_id: str) -> bool:
        """Cancel a queued or running job (and its unfinished children); ``False`` if unknown or finished."""

    async def release_lease(self, job_id: str, owner: str, *, wait_s: float = 0.0) -> bool:
        """Hand a running job back to the queue: at shutdown, or when an outage outlasts
        ``jobs.max_wait``. Its counters and progress are kept for whoever resumes it, and the lease
        does not count as an attempt (only a holder dying counts). ``wait_s`` > 0 keeps it from
        being leased again for that long (``jobs.not_before``, on the database's clock), so other
        jobs get its slot meanwhile. ``False`` when ``owner`` no longer holds it."""

    async def requeue_job(self, job_id: str) -> bool:
        """Put a finished job back in the queue (a dead letter replayed): its progress is kept, so
        the run that leases it skips what is stored and redoes only what is missing. ``False`` for
        an unknown, unfinished or batch-parent job."""
        ...

    async def refresh_parent(self, parent_id: str) -> Job | None:
        """Recompute a batch parent from its children: summed counters and an aggregate status."""

    async def job_place_ids(self, job_id: str) -> set[str]:
        """The leads already recorded for a job: what a resumed run need not redo."""

    async def regroup_companies(self) -> int:
        """Group every stored lead into companies again (docs/chains.md); returns how many leads'
        company rows changed. Idempotent; concurrent calls take turns."""
        ...

    async def company_sizes(self, job_id: str) -> dict[str, int]:
        """Each grouped lead of a job: place id → its company's branches found."""
        ...

    async def lead_rows_for_export(
        self, job_id: str | None = None, qualified_only: bool = False
    ) -> list[dict[str, Any]]:
        """Flat rows (see :mod:`.export`): leads with their PageSpeed results and, per job, rank,
        qualified and reasons."""

    # dead letters ------------------------------------------------------------------------------

    async def add_dead_letter(
        self, kind: DeadLetterKind, payload: str | Mapping[str, Any], reason: str, attempts: int = 1
    ) -> int:
        """Keep something that could not be processed (secrets redacted); returns its id."""

    async def list_dead_letters(
        self, kind: DeadLetterKind | None = None, include_replayed: bool = False, limit: int = 100
    ) -> list[DeadLetter]:
        """Oldest first."""

    async def get_dead_letter(self, dead_letter_id: int) -> DeadLetter | None: ...

    async def mark_replayed(self, dead_letter_id: int) -> bool: ...

    async def bump_dead_letter(self, dead_letter_id: int, reason: str) -> bool:
        """A replayed item failed again: back to pending, attempts raised, the new reason kept."""
