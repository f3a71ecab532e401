"""One leased job, driven to its end: the single owner of that job's state while it runs here.

A :class:`JobDriver` holds its job's :class:`~leadlawk_daemon.jobs.state.JobState` (which actors
see as a handle and report facts to) and is the only code that finishes the job. It

* resumes: the leads the store already holds are not scraped again; those lacking a PageSpeed
  result are enriched again;
* keeps the lease on a task of its own (:meth:`_keep_lease`), each renewal cut well under
  ``lease_ttl``; when renewals fail for so long that the lease could lapse, the run stops before
  it does (``lease_lost``), so one job never runs in two daemons at once;
* feeds the enricher from the job's queue as its mailbox has room, sends lead failures to the
  writer, saves counters and announces ``job.progress`` every ``progress_interval``;
* writes the verdicts of leads whose facts are all durable (:mod:`.verdicts`), after the commits
  that made them so;
* watches outages: while a dependency the job still needs is down (its breaker not closed; the
  daily PageSpeed quota spent) the job is *waiting*: its progress says ``waiting_on``, the time does
  not count against ``max_runtime_s``, and after ``jobs.max_wait`` the job hands its slot back
  (``requeued``) and returns to the queue with its progress kept;
* finishes: ``succeeded`` when the scrape is done and every enrichment and row is settled;
  ``failed`` only for a cause retrying cannot fix (the spec's ``max_runtime_s``, an unreadable
  search), with the cause in ``error``; ``cancelled`` on cancel. Whatever the end, the leads already
  found are written first. A daemon whose finish is refused (it lost the lease) publishes
  nothing for the job.

Every status change and announcement goes through the job's :class:`~.lifecycle.JobLifecycle`;
the driver reads and changes its :class:`JobState` through its methods.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from actors.actor import ActorCell
from actors.clock import Clock
from actors.dead_letters import DeadLetter
from actors.mailbox import Mailbox
from actors.racing import first_of
from leadlawk_daemon.events import EventSink
from leadlawk_daemon.jobs.lifecycle import JobLifecycle
from leadlawk_daemon.jobs.outage import call_through_outage
from leadlawk_daemon.jobs.state import JobState
from leadlawk_daemon.jobs.verdicts import write_verdicts
from leadlawk_daemon.logs import redact
from leadlawk_daemon.messages import EnrichLead, ReadSite, ScrapeJob, WriterMessage
from leadlawk_daemon.metrics import Metrics
from leadlawk_daemon.qualify import HIDDEN_REVIEW_COUNT
from leadlawk_daemon.store.base import Job, JobStatus, Store, StoreUnavailable

__all__ = ["DriverDeps", "JobDriver", "Timing"]

log = logging.getLogger("leadlawk.jobs")
T = TypeVar("T")
M = TypeVar("M")

# Outages are read from breaker states, which change without telling jobs: look this often.
_OUTAGE_POLL = 1.0


@dataclass(frozen=True, slots=True)
class Timing:
    lease_ttl: float
    renew_every: float
    renew_timeout: float
    progress_interval: float
    cancel_grace: float
    max_wait: float
    # A job handed back after a long outage is not leased again for this long.
    requeue_after: float

    @property
    def lease_margin(self) -> float:
        """Stop this long before a lease that could not be renewed lapses."""
        return max(1.0, self.lease_ttl / 10)


@dataclass(frozen=True, slots=True)
class DriverDeps:
    """Everything a job's driver talks to, explicitly."""

    store: Store
    clock: Clock
    events: EventSink
    metrics: Metrics
    owner: str
    scraper: ActorCell[ScrapeJob]
    enricher: ActorCell[EnrichLead]
    writer: ActorCell[WriterMessage]
    # Dependencies down right now (breakers not closed), and whether the daily PageSpeed quota is spent.
    outages: Callable[[], frozenset[str]]
    daily_quota_spent: Callable[[], bool]
    dead_letter: Callable[[DeadLetter], None]
    timing: Timing
    # True once the coordinator stops: store calls are abandoned instead of retried for ever.
    stopping: Callable[[], bool]
    # The site actor, when site enrichment is on (sites.enabled): leads' websites are read.
    site: ActorCell[ReadSite] | None = None
    # The Google Maps exits and their states, with more than one (docs/egress-pool.md); None with one.
    egress: Callable[[], list[dict[str, Any]] | None] | None = None

    def lifecycle(self) -> JobLifecycle:
        """This daemon's view of the stored lifecycle: every status change and its announcement."""
        return JobLifecycle(
            self.store, self.events, self.metrics, owner=self.owner, clock=self.clock, stopping=self.stopping
        )


def _fill(mailbox: Mailbox[M], take: Callable[[], M | None], state: JobState) -> None:
    """Queued work into ``mailbox`` while it has room for this job and the job runs (``take`` counts
    it as sent). A fair mailbox gives each job its share of the room (actors/fair_mailbox.py)."""
    while mailbox.has_room(state.job_id) and state.active:
        message = take()
        if message is None:
            return
        mailbox.put_nowait(message)


class JobDriver:
    def __init__(
        self,
        state: JobState,
        job: Job,
        deps: DriverDeps,
        retired: JobState | None = None,
        leased_at: float | None = None,
    ) -> None:
        self.state = state
        self.job = job
        self.deps = deps
        self.lifecycle = deps.lifecycle()
        # When the lease was asked for (on the clock): it is valid lease_ttl from then, at most.
        self._leased_at = leased_at
        self._retired = retired
        # The lease lapsed during a database outage: the coordinator hands it back once it can.
        self.lapsed = False
        self._waiting_since: float | None = None
        self._paused = 0.0
        self._waiting_on: list[str] = []
        state.attach(deps.dead_letter, read_sites=deps.site is not None)

    # -- the run --------------------------------------------------------------------------------

    async def run(self) -> None:
        state, deps = self.state, self.deps
        try:
            try:
                async with asyncio.TaskGroup() as group:
                    lease = group.create_task(self._keep_lease(), name=f"job/{state.job_id}/lease")
                    try:
                        await self._resume()
                        log.info(
                            "job started",
                            extra={"job_id": state.job_id, "attempt": self.job.attempts, "known": len(state.found)},
                        )
                        deps.events.publish(
                            "job.started", job_id=state.job_id, attempt=self.job.attempts, resumed_with=len(state.found)
                        )
                        if state.active:
                            await deps.scraper.tell(state.scrape_message())
                            await self._watch()
                    finally:
                        lease.cancel()
            except Exception as exc:
                # A bug in the driver: the run stops at once (nothing runs here without an owner); the
                # coordinator hands the job back after a backoff, and fails it after jobs.max_attempts.
                log.exception("job driver failed", extra={"job_id": state.job_id})
                state.stop("crashed", f"driver failed: {type(exc).__name__}: {redact(str(exc))}")
            await self._finish()
        finally:
            # However the driver ends, its job's scrape and enrichments end with it.
            state.stop("shutdown")

    async def _resume(self) -> None:
        state, deps = self.state, self.deps
        retired = self._retired
        if retired is not None and retired.rows_in_flight:
            # Rows of this job from a run handed back a moment ago are written first, so that the
            # store tells the whole story.
            await _wait_until(lambda: not retired.rows_in_flight, retired.changed, deps.timing.cancel_grace)
        if state.spec.coverage == "area":
            # The cells its last run finished (their leads durable) are not searched again.
            state.resume_plan(dict(self.job.progress or {}))
        known = await self._call(deps.store.job_place_ids, state.job_id)
        if not known:
            return
        rows = await self._call(deps.store.lead_rows_for_export, state.job_id)
        state.resume_from(list(rows or []))
        log.info(
            "job resumed",
            extra={"job_id": state.job_id, "known": len(state.found), "to_enrich": state.enrichments_outstanding()},
        )

    async def _watch(self) -> None:
        state, deps, clock = self.state, self.deps, self.deps.clock
        timing = deps.timing
        started = clock.monotonic()
        next_progress = started + timing.progress_interval
        while state.active and not state.complete:
            await self._feed()
            await self._judge()
            now = clock.monotonic()
            self._observe_outages(now)
            if not state.active:
                break
            budget = state.spec.max_runtime_s - self._active_seconds(started, now)
            if budget <= 0:
                state.stop("max_runtime", f"max_runtime_s {state.spec.max_runtime_s:g} exceeded")
                break
            if now >= next_progress or state.plan_to_save():
                # An area job's plan is saved as soon as a cell's leads are durable: a crash then
                # repeats no finished cell.
                next_progress = now + timing.progress_interval
                await self.progress()
            state.changed.clear()
            if state.complete or not state.active:
                break
            wake_at = min(next_progress, now + _OUTAGE_POLL, now + budget)
            await first_of(clock.sleep(max(0.0, wake_at - clock.monotonic())), state.changed.wait())

    def _active_seconds(self, started: float, now: float) -> float:
        paused = self._paused + (now - self._waiting_since if self._waiting_since is not None else 0.0)
        return now - started - paused

    def _observe_outages(self, now: float) -> None:
        """Which dependencies this job waits on now; hand the job back after ``max_wait`` of it."""
        state, deps = self.state, self.deps
        down = deps.outages()
        needs: list[str] = []
        if not state.scrape_done:
            needs.append("google_maps")
        if state.needs_enrichment:
            needs.append("pagespeed")
        if state.needs_site:
            needs.append("sites")  # our egress to websites (many sites unreachable at once)
            needs.append("dns")  # the DNS servers the site emails are judged by (docs/email-verdicts.md)
        if not state.all_written:
            needs.append("database")
        waiting = [name for name in needs if name in down]
        if state.waits_for_enrichment() and deps.daily_quota_spent():
            waiting.append("pagespeed_daily_quota")
        if waiting != self._waiting_on:
            if waiting:
                log.warning("job waiting on an outage", extra={"job_id": state.job_id, "waiting_on": waiting})
            elif self._waiting_on:
                log.info("job no longer waiting", extra={"job_id": state.job_id})
            self._waiting_on = waiting
        if waiting and self._waiting_since is None:
            self._waiting_since = now
        elif not waiting and self._waiting_since is not None:
            self._paused += now - self._waiting_since
            self._waiting_since = None
        if self._waiting_since is not None and now - self._waiting_since >= deps.timing.max_wait:
            state.stop(
                "requeued",
                f"waited {now - self._waiting_since:.0f}s on {', '.join(waiting)} (jobs.max_wait): back in the queue",
            )

    async def _feed(self) -> None:
        """Lead failures to the writer; queued leads to the enricher while its mailbox has room."""
        state, deps = self.state, self.deps
        while (status := state.next_status()) is not None:
            await deps.writer.tell(status)
            state.status_sent()
        if deps.site is not None:
            _fill(deps.site.mailbox, state.next_site_read, state)
        if not deps.daily_quota_spent():
            _fill(deps.enricher.mailbox, state.next_enrichment, state)

    # -- the lease --------------------------------------------------------------------------------

    async def _keep_lease(self) -> None:
        state, deps, clock = self.state, self.deps, self.deps.clock
        timing = deps.timing
        # The database stamped the lease after it was asked for and before its answer came back:
        # counting from the asking is the safe side, whatever the round trip took.
        leased_at = self._leased_at if self._leased_at is not None else clock.monotonic()
        valid_until = leased_at + timing.lease_ttl
        failures = 0
        while True:
            now = clock.monotonic()
            stop_at = valid_until - timing.lease_margin
            await clock.sleep(max(0.0, min(now + timing.renew_every, stop_at) - now))
            if clock.monotonic() >= stop_at:
                self.lapsed = True
                state.stop(
                    "lease_lost",
                    f"lease not renewed for {timing.lease_ttl - timing.lease_margin:.0f}s; stopped before it lapses",
                )
                return
            sent = clock.monotonic()
            try:
                async with asyncio.timeout(timing.renew_timeout):
                    renewed = await self.lifecycle.renew(state.job_id, timing.lease_ttl)
            except (StoreUnavailable, TimeoutError) as exc:
                failures += 1
                if failures == 1 or failures % 10 == 0:
                    log.warning(
                        "lease renewal failed; retrying",
                        extra={"job_id": state.job_id, "error": redact(str(exc)) or type(exc).__name__},
                    )
                continue
            failures = 0
            if renewed:
                valid_until = sent + timing.lease_ttl
                continue
            current = await self._call(deps.store.get_job, state.job_id)
            if current is not None and current.status == "cancelled":
                state.stop("cancelled")
            else:
                state.stop("lease_lost", "the job's lease is held by another daemon")
            return

    # -- progress and the end ---------------------------------------------------------------------

    def progress_fields(self) -> dict[str, Any]:
        state = self.state
        fields: dict[str, Any] = {
            "limit": state.spec.limit,
            "enrichments_outstanding": state.enrichments_outstanding(),
            "unwritten": state.unwritten_count(),
            "waiting_on": list(self._waiting_on),
            "paused_s": round(self._paused, 1),
        }
        if state.malformed:
            fields["malformed"] = state.malformed
        if state.maps_view is not None:
            fields["maps_view"] = state.maps_view
        exits = self.deps.egress() if self.deps.egress is not None else None
        if exits:
            fields["egress"] = exits
        hidden = state.hidden_review_counts()
        if hidden:
            # Leads whose min_reviews could not be applied, and why (collect and submit print it).
            fields["filters_not_applied"] = {"count": hidden, "reason": HIDDEN_REVIEW_COUNT}
        if state.outcome is not None:
            fields["end_reason"] = state.outcome.end_reason
            fields["feed_exhausted"] = state.outcome.feed_exhausted
        if state.addresses_skipped:
            # Results that were an address or a locality, not a business: not leads (docs/addresses.md).
            fields["addresses_skipped"] = len(state.addresses_skipped)
        if state.spec.coverage == "area":
            fields["area"] = dict(state.area_progress)
        return fields

    async def progress(self) -> None:
        state = self.state
        extra = self.progress_fields()
        # An outage only delays the save to the next tick; the event goes out regardless.
        with contextlib.suppress(StoreUnavailable):
            await self._save(extra)
        self.lifecycle.announce_progress(state.job_id, state.counters(), **extra)

    async def _save(self, progress: dict[str, Any]) -> bool:
        state = self.state
        plan = state.take_plan()
        if plan is not None:
            # Stored, never published: an event carries the counters only.
            progress = {**progress, "area_plan": plan}
        try:
            return await self.lifecycle.save(state.job_id, state.counters(), progress)
        except BaseException:
            state.plan_not_saved(plan)
            raise

    async def _finish(self) -> None:
        state, deps = self.state, self.deps
        reason = state.stop_reason
        if reason in ("lease_lost", "crashed"):
            log.warning("job stopped here; left to its lease", extra={"job_id": state.job_id, "error": state.error})
            return
        if reason != "shutdown":
            # Whatever the end, what was found is written before the counters are final. (At
            # shutdown the writer flushes on its own way out, and the next start resumes the rest.)
            await self._drain_outbox()
            await _wait_until(lambda: state.all_written, state.changed, deps.timing.cancel_grace)
        if reason in ("shutdown", "requeued"):
            await self._judge()  # best effort: the run that resumes the job judges whatever is left
        else:
            # The job ends: facts still awaited will not come, and every durable lead is judged on
            # what is stored of it (a replay judges it again if it adds a fact).
            await self._group_companies()
            final = state.verdicts.due(final=True)
            if await self._call(write_verdicts, deps.store, state.job_id, final) is not None:
                state.verdicts_written(final)
        counters = state.counters()
        extra = self.progress_fields()
        await self._call(self._save, extra)
        if reason in ("shutdown", "requeued"):
            if reason == "requeued":
                released = await self.lifecycle.requeue_waiting(
                    state.job_id, deps.timing.requeue_after, state.error, counters, **extra
                )
            else:
                released = await self.lifecycle.hand_back(state.job_id)
            log.info(
                "job handed back",
                extra={
                    "job_id": state.job_id, "reason": reason, "error": state.error, "released": released, **counters
                },
            )
            return
        status: JobStatus = "succeeded" if reason is None else "cancelled" if reason == "cancelled" else "failed"
        if not await self.lifecycle.finish(
            state.job_id, status, state.error, counters, parent_id=state.parent_id, **extra
        ):
            # Another daemon holds the job now (our lease lapsed unseen): its end is that daemon's to say.
            log.warning("job finished elsewhere; not announced here", extra={"job_id": state.job_id})
            return
        log.info("job finished", extra={"job_id": state.job_id, "status": status, "error": state.error, **counters})

    async def _group_companies(self) -> None:
        """Every stored lead's company, now that this job's leads are written (docs/chains.md); the
        chain filters judge this job's leads by it. A database outage waits like any other write."""
        state, deps = self.state, self.deps
        try:
            grouped = await self._call(deps.store.regroup_companies)
        except Exception:
            # A bug in the grouping is no lead's fault and no outage: the job ends as it would have,
            # and a lead the chain filters ask about keeps the reason that it is not grouped.
            log.exception("companies not grouped", extra={"job_id": state.job_id})
            return
        if grouped is None or not state.verdicts.filters_chains:
            return
        sizes = await self._call(deps.store.company_sizes, state.job_id)
        if sizes is not None:
            state.verdicts.companies_grouped(sizes)

    async def _drain_outbox(self) -> None:
        state = self.state
        while (status := state.next_status()) is not None:
            try:
                async with asyncio.timeout(self.deps.timing.cancel_grace):
                    await self.deps.writer.tell(status)
            except TimeoutError:
                return
            state.status_sent()

    async def _judge(self) -> None:
        """Write the verdicts of the leads whose facts are all durable; an outage leaves them due."""
        state = self.state
        due = state.verdicts.due()
        if not due:
            return
        try:
            await write_verdicts(self.deps.store, state.job_id, due)
        except StoreUnavailable as exc:
            log.info("verdicts not written yet", extra={"job_id": state.job_id, "error": redact(str(exc))})
            return
        state.verdicts_written(due)

    async def _call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T | None:
        return await call_through_outage(self.deps.clock, self.deps.stopping, fn, *args, **kwargs)


async def _wait_until(
    condition: Callable[[], bool], changed: asyncio.Event, timeout: float  # noqa: ASYNC109
) -> bool:
    """Wait until ``condition()`` holds, re-checking whenever ``changed`` is set; False after ``timeout``."""
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                changed.clear()
                await changed.wait()
    except TimeoutError:
        return condition()
    return True

