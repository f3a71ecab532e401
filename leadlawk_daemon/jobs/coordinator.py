"""The job coordinator: leases jobs, drives each one to its end, hands them back at stop.

A supervised child (not an actor): ``run`` leases jobs with ``store.lease_next_job`` up to
``max_concurrent_jobs`` at once, woken by a submission and by a periodic poll (which is how the
orphaned leases of a dead daemon are picked up). Each leased job gets a :class:`JobRun` and a
driver task owned by the coordinator's task group. The driver

* resumes: the leads the store already holds for the job (and those still in the writer's
  buffer) are not emitted again; those lacking a PageSpeed result are enriched again;
* sends one :class:`ScrapeJob` to the scraper;
* renews the lease every ``min(jobs.heartbeat, jobs.cancel_grace / 2)`` (a failed renewal means
  the job was cancelled or taken: the run stops), persists counters and publishes
  ``job.progress`` every ``jobs.progress_interval``, enforces ``max_runtime_s``, and feeds the
  enricher the leads deferred while its mailbox was full or its daily quota spent;
* finishes the job: ``succeeded`` when the scrape is done, every enrichment finished and every row
  written; ``failed`` (with the reason) on ``max_runtime_s`` or an unreadable search;
  ``cancelled`` on cancel. Batch parents are refreshed from their children.

Stopping the coordinator (shutdown, or a restart of a sibling under ``rest_for_one``) stops its
runs with reason ``shutdown``: their counters are saved and their leases released, so the next
start (or another daemon) resumes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from leadlawk_daemon.jobs.messages import EnrichLead, ScrapeJob
from leadlawk_daemon.jobs.run import JobRun
from leadlawk_daemon.jobs.waiting import first_of
from leadlawk_daemon.jobspec import JobSpecError, parse_job_spec
from leadlawk_daemon.listing import LISTING_FIELDS, Listing
from leadlawk_daemon.logs import redact
from leadlawk_daemon.qualify import Filters
from leadlawk_daemon.store.base import Job, JobStatus, StoreUnavailable
from supervisors.spec import Started

if TYPE_CHECKING:
    from leadlawk_daemon.jobs.pipeline import Pipeline

__all__ = ["Coordinator"]

log = logging.getLogger("leadlawk.jobs")
T = TypeVar("T")

# A stored spec is re-validated on lease; this bound only guards against an absurd row.
_MAX_STORED_SPEC = 1 << 20
# Store calls retried through an outage wait at most this long between attempts.
_STORE_RETRY_CAP = 1.0


class Coordinator:
    def __init__(self, pipeline: Pipeline) -> None:
        self.p = pipeline
        self._stopping = False
        self._stop = asyncio.Event()

    def request_stop(self, deadline: float | None = None) -> None:
        self._stopping = True
        self._stop.set()
        for run in list(self.p.runs.values()):
            run.stop("shutdown")

    async def run(self, started: Started) -> None:
        p = self.p
        try:
            async with asyncio.TaskGroup() as group:
                started()
                while not self._stopping:
                    p.wake.clear()
                    await self._fill(group)
                    if self._stopping:
                        break
                    await first_of(p.clock.sleep(p.poll_interval), p.wake.wait(), self._stop.wait())
                for run in list(p.runs.values()):
                    run.stop("shutdown")
        finally:
            for run in list(p.runs.values()):
                run.stop("shutdown")

    async def _fill(self, group: asyncio.TaskGroup) -> None:
        p = self.p
        while len(p.runs) < p.max_concurrent_jobs and not self._stopping:
            try:
                job = await p.store.lease_next_job(p.owner, p.lease_ttl)
            except StoreUnavailable as exc:
                log.warning("cannot lease jobs: database unavailable", extra={"error": redact(str(exc))})
                return
            if job is None:
                return
            try:
                spec = parse_job_spec(job.spec, _MAX_STORED_SPEC)
            except JobSpecError as exc:
                reason = f"stored spec is invalid: {exc}"
                await self._call(p.store.finish_job, job.id, p.owner, "failed", reason)
                p.publish_finished(job.id, "failed", {}, reason)
                continue
            run = JobRun(
                job_id=job.id,
                spec=spec,
                filters=Filters.from_spec(job.spec),
                deadline=p.clock.monotonic() + spec.max_runtime_s,
                parent_id=job.parent_id,
            )
            p.runs[job.id] = run
            group.create_task(self._drive(run, job), name=f"job/{job.id}")

    # -- one job -------------------------------------------------------------------------------

    async def _drive(self, run: JobRun, job: Job) -> None:
        p = self.p
        try:
            await self._resume(run, job)
            log.info("job started", extra={"job_id": run.job_id, "attempt": job.attempts, "known": len(run.found)})
            p.events.publish(
                "job.started", job_id=run.job_id, attempt=job.attempts, resumed_with=len(run.found)
            )
            if run.active:
                await p.scraper.tell(ScrapeJob(run, frozenset(run.found)))
                await self._watch(run)
            await self._finish(run)
        finally:
            p.runs.pop(run.job_id, None)
            if run.unwritten > 0:
                # Its rows are still on their way to the store: whoever resumes the job waits for them.
                p.retired[run.job_id] = run
            p.wake.set()

    async def _resume(self, run: JobRun, job: Job) -> None:
        p = self.p
        # Rows of this job still in the writer's buffer (from a run handed back a moment ago)
        # are written first, so that the store tells the whole story.
        retired = p.retired.pop(run.job_id, None)
        if retired is not None:
            await retired.wait_written(p.cancel_grace)
        known = await self._call(p.store.job_place_ids, run.job_id)
        if known is None or not known:
            return
        rows = await self._call(p.store.lead_rows_for_export, run.job_id)
        for row in rows or []:
            place_id = row["place_id"]
            run.found.add(place_id)
            run.written.add(place_id)
            if row.get("qualified") is not None:
                run.qualified[place_id] = bool(row["qualified"])
            tested = [s for s in run.strategies if row.get(f"{s}_tested_at") is not None]
            if len(tested) == len(run.strategies):
                run.enriched.add(place_id)
            elif run.wants_pagespeed and row.get("website"):
                run.deferred.append(_listing(row))
                run.outstanding += 1
        log.info(
            "job resumed",
            extra={"job_id": run.job_id, "known": len(run.found), "to_enrich": len(run.deferred)},
        )

    async def _watch(self, run: JobRun) -> None:
        p, clock = self.p, self.p.clock
        now = clock.monotonic()
        next_beat = now + p.beat_interval
        next_progress = now + p.progress_interval
        last_renewed = now
        while not run.complete and run.active:
            self._feed_deferred(run)
            now = clock.monotonic()
            if now >= run.deadline:
                run.stop("max_runtime", f"max_runtime_s {run.spec.max_runtime_s:g} exceeded")
                break
            if now >= next_beat:
                next_beat = now + p.beat_interval
                renewed = await self._renew(run, now - last_renewed)
                if renewed:
                    last_renewed = now
            if now >= next_progress:
                next_progress = now + p.progress_interval
                await self.progress(run)
            run.changed.clear()
            if run.complete or not run.active:
                break
            wait = min(next_beat, next_progress, run.deadline) - clock.monotonic()
            await first_of(clock.sleep(max(0.0, wait)), run.changed.wait())

    def _feed_deferred(self, run: JobRun) -> None:
        p = self.p
        mailbox = p.enricher.mailbox
        while run.deferred and not p.pagespeed.daily.exhausted and not mailbox.full():
            mailbox.put_nowait(EnrichLead(run, run.deferred.pop(0)))

    async def _renew(self, run: JobRun, since_renewed: float) -> bool:
        p = self.p
        try:
            if await p.store.renew_lease(run.job_id, p.owner, p.lease_ttl):
                return True
        except StoreUnavailable as exc:
            if since_renewed > p.lease_ttl:
                # Our lease has lapsed during the outage: another daemon may hold the job now.
                run.stop("lease_lost", f"lease not renewed for {since_renewed:.0f}s: {exc}")
            return False
        current = await self._call(p.store.get_job, run.job_id)
        if current is not None and current.status == "cancelled":
            run.stop("cancelled")
        else:
            run.stop("lease_lost", "the job's lease is held by another daemon")
        return False

    async def progress(self, run: JobRun) -> None:
        p = self.p
        counters = run.counters()
        extra = self._progress_fields(run)
        # An outage only delays the save to the next tick; the event goes out regardless.
        with contextlib.suppress(StoreUnavailable):
            await self._save(run, extra)
        p.events.publish("job.progress", job_id=run.job_id, counters=counters, **extra)

    async def _save(self, run: JobRun, progress: dict[str, Any]) -> bool:
        c = run.counters()
        return await self.p.store.update_job(
            run.job_id,
            self.p.owner,
            found=c["found"],
            qualified=c["qualified"],
            enriched=c["enriched"],
            written=c["written"],
            failed=c["failed"],
            progress=progress,
        )

    @staticmethod
    def _progress_fields(run: JobRun) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "limit": run.spec.limit,
            "enrichments_outstanding": run.outstanding,
            "unwritten": run.unwritten,
        }
        if run.outcome is not None:
            fields["end_reason"] = run.outcome.end_reason
            fields["feed_exhausted"] = run.outcome.feed_exhausted
        return fields

    async def _finish(self, run: JobRun) -> None:
        p = self.p
        reason = run.stop_reason
        if reason == "lease_lost":
            log.warning("job lost its lease; left to its new holder", extra={"job_id": run.job_id, "error": run.error})
            return
        if reason == "cancelled":
            # What the scraper and enricher already produced is written before the counters are final.
            await run.wait_written(p.cancel_grace)
        counters = run.counters()
        extra = self._progress_fields(run)
        await self._call(self._save, run, extra)
        if reason == "shutdown":
            await self._call(p.store.release_lease, run.job_id, p.owner)
            log.info("job handed back", extra={"job_id": run.job_id, **counters})
            return
        status: JobStatus = "succeeded" if reason is None else "cancelled" if reason == "cancelled" else "failed"
        await self._call(p.store.finish_job, run.job_id, p.owner, status, run.error)
        p.metrics.leads.labels(stage="qualified").inc(counters["qualified"])
        p.publish_finished(run.job_id, status, counters, run.error, **extra)
        log.info("job finished", extra={"job_id": run.job_id, "status": status, "error": run.error, **counters})
        if run.parent_id is not None:
            parent = await self._call(p.store.refresh_parent, run.parent_id)
            if parent is not None and parent.finished:
                p.publish_finished(
                    parent.id, parent.status, {k: getattr(parent, k) for k in counters}, parent.error
                )

    async def _call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T | None:
        """A store call retried through an outage; None when the coordinator stops first."""
        delay = 0.1
        while True:
            try:
                return await fn(*args, **kwargs)
            except StoreUnavailable as exc:
                if self._stopping:
                    log.warning("store call abandoned at stop", extra={"error": redact(str(exc))})
                    return None
                await self.p.clock.sleep(delay)
                delay = min(_STORE_RETRY_CAP, delay * 2)


def _listing(row: dict[str, Any]) -> Listing:
    values: dict[str, Any] = {name: row.get(name) for name in LISTING_FIELDS}
    hours = values.get("hours")
    if hours is not None:
        values["hours"] = tuple(tuple(pair) for pair in hours)
    return Listing(**values)
