"""A stored job's lifecycle: the one module that changes a job's status and announces it.

Leasing, renewal, finish, fail, cancel (queued or running), requeue, hand-back and the attempts
count all go through :class:`JobLifecycle`, and so do the ``job.finished`` and ``job.progress``
events: a test (tests/test_lifecycle.py) reads the tree and holds every other module to it. Its
callers are the coordinator and the driver (a daemon's runs), the pipeline's cancel (the jobs
API and the console), and the CLI (``control.py``), which runs with no daemon at all: whoever
changes a status is the one place that says so, so a queued job cancelled from the CLI announces
its end like one cancelled through a daemon.

A daemon's lifecycle has an ``owner`` (its lease holder name); the CLI's has none and only cancels
and requeues. Calls that must land (a finish, a hand-back) wait out a database outage through
:func:`~leadlawk_daemon.jobs.outage.call_through_outage` and give up only when the coordinator
stops; the others raise :class:`~leadlawk_daemon.store.base.StoreUnavailable` to their caller,
which knows whether to retry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from actors.clock import Clock, MonotonicClock
from leadlawk_daemon.jobs.outage import call_through_outage
from leadlawk_daemon.store.base import JOB_COUNTERS, Job, JobStatus, Store

if TYPE_CHECKING:
    # Types only: the CLI loads this module without starting Redis or a metrics registry.
    from leadlawk_daemon.intake.events import EventSink
    from leadlawk_daemon.metrics import Metrics

__all__ = ["JobLifecycle"]

log = logging.getLogger("leadlawk.jobs")


def _never() -> bool:
    return False


class JobLifecycle:
    def __init__(
        self,
        store: Store,
        events: EventSink,
        metrics: Metrics | None = None,
        *,
        owner: str | None = None,
        clock: Clock | None = None,
        stopping: Callable[[], bool] = _never,
    ) -> None:
        self.store = store
        self.events = events
        self.metrics = metrics
        self._owner = owner
        self.clock = clock or MonotonicClock()
        self.stopping = stopping

    @property
    def owner(self) -> str:
        if self._owner is None:
            raise RuntimeError("this lifecycle holds no leases (it has no owner)")
        return self._owner

    # -- leases -----------------------------------------------------------------------------------

    async def lease_next(self, ttl_s: float, max_attempts: int) -> Job | None:
        """Fail (and announce) the jobs whose holders died too often, then lease the next job.

        Raises ``StoreUnavailable``: the caller leases again at its next poll."""
        for poisoned in await self.store.fail_exhausted_jobs(max_attempts, self.owner):
            log.error("job failed: its holders died too often", extra={"job_id": poisoned.id, "error": poisoned.error})
            self._announce_finished(poisoned.id, "failed", {}, poisoned.error)
        return await self.store.lease_next_job(self.owner, ttl_s, max_attempts)

    async def renew(self, job_id: str, ttl_s: float) -> bool:
        """Extend this owner's lease; False when it is lost or the job was cancelled. Raises
        ``StoreUnavailable``: the lease keeper counts the failures against the lease's time."""
        return await self.store.renew_lease(job_id, self.owner, ttl_s)

    async def hand_back(self, job_id: str, *, wait_s: float = 0.0) -> bool | None:
        """Back to the queue, progress kept, no attempt counted (shutdown, a driver that failed)."""
        return await call_through_outage(
            self.clock, self.stopping, self.store.release_lease, job_id, self.owner, wait_s=wait_s
        )

    async def hand_back_lapsed(self, job_id: str) -> bool:
        """A lease that lapsed here in an outage, handed back at once; raises ``StoreUnavailable``."""
        return await self.store.release_lease(job_id, self.owner)

    async def requeue_waiting(
        self, job_id: str, wait_s: float, why: str | None, counters: Mapping[str, int], **fields: Any
    ) -> bool | None:
        """An outage outlasted ``jobs.max_wait``: back to the queue, not leased for ``wait_s``, and
        announced as progress (the job goes on later; it did not finish)."""
        released = await self.hand_back(job_id, wait_s=wait_s)
        self.announce_progress(job_id, counters, requeued=why, **fields)
        return released

    # -- progress ---------------------------------------------------------------------------------

    async def save(self, job_id: str, counters: Mapping[str, int], progress: Mapping[str, Any]) -> bool:
        """Counters and progress onto the owner's job row (status untouched); raises ``StoreUnavailable``."""
        return await self.store.update_job(
            job_id,
            self.owner,
            found=counters["found"],
            qualified=counters["qualified"],
            enriched=counters["enriched"],
            written=counters["written"],
            failed=counters["failed"],
            progress=progress,
        )

    def announce_progress(self, job_id: str, counters: Mapping[str, int], **fields: Any) -> None:
        self.events.publish("job.progress", job_id=job_id, counters=dict(counters), **fields)

    # -- ends -------------------------------------------------------------------------------------

    async def finish(
        self,
        job_id: str,
        status: JobStatus,
        error: str | None,
        counters: Mapping[str, int],
        *,
        parent_id: str | None = None,
        count_qualified: bool = True,
        **fields: Any,
    ) -> bool:
        """End this owner's run and announce it (and its batch parent, once that is done too).
        ``count_qualified``: its qualified leads go to the leads metric (a run that ended, not a
        job failed for a driver that kept crashing).

        False, and nothing announced, when the store refuses: another daemon holds the job now (our
        lease lapsed unseen), so its end is that daemon's to say."""
        finished = await call_through_outage(
            self.clock, self.stopping, self.store.finish_job, job_id, self.owner, status, error
        )
        if not finished:
            return False
        if self.metrics is not None and count_qualified and "qualified" in counters:
            self.metrics.leads.labels(stage="qualified").inc(counters["qualified"])
        self._announce_finished(job_id, status, counters, error, **fields)
        if parent_id is not None:
            parent = await call_through_outage(self.clock, self.stopping, self.store.refresh_parent, parent_id)
            if parent is not None and parent.finished:
                totals = {name: getattr(parent, name) for name in counters if name in JOB_COUNTERS}
                self._announce_finished(parent.id, parent.status, totals, parent.error)
        return True

    async def fail(self, job_id: str, error: str, counters: Mapping[str, int] | None = None) -> bool:
        """A cause retrying cannot fix (an invalid stored spec, a driver that fails every time)."""
        return await self.finish(job_id, "failed", error, counters or {}, count_qualified=False)

    async def cancel(self, job_id: str) -> bool:
        """Cancel a queued or running job (a batch: with its children); False if unknown or finished.

        A running job's end is announced by the run that holds it, when it stops (its driver sees
        the cancel at its next renewal, or at once in this daemon). A queued one has no run: its
        end is announced here."""
        before = await self.store.get_job(job_id)
        cancelled = await self.store.cancel_job(job_id)
        if cancelled and before is not None and before.status == "queued":
            self._announce_finished(job_id, "cancelled", {}, None)
        return cancelled

    async def requeue(self, job_id: str) -> bool:
        """A finished job back to the queue (a dead letter replayed); False if it cannot be."""
        return await self.store.requeue_job(job_id)

    def _announce_finished(
        self, job_id: str, status: str, counters: Mapping[str, int], error: str | None, **fields: Any
    ) -> None:
        if self.metrics is not None:
            self.metrics.jobs.labels(status=status).inc()
        self.events.publish(
            "job.finished", job_id=job_id, status=status, counters=dict(counters), error=error, **fields
        )
