"""The firing loop: a supervised child of every daemon that fires due schedules, exactly once.

Every daemon runs one; none is a leader. Each pass reads the schedule clock (the database's),
creates the jobs of ``queued`` fires whose previous job has finished, then claims due schedules
in batches (``FOR UPDATE SKIP LOCKED``: daemons share a busy minute rather than queue behind one
another) and writes each one's fire (:mod:`.plan` decides, :mod:`.fire` writes). It then sleeps
until the earliest next due time, at most ``poll_interval``; a schedule added through this
daemon's HTTP API wakes it at once.

Exactly once does not rest on the claims: a fire's transaction moves ``next_due_at`` on by
compare-and-set, and the keys on ``schedule_fires`` and ``jobs`` refuse a second row. A claim only
keeps daemons from doing the same work twice; one killed holding claims loses them after
``claim_ttl`` on the database's clock.

The database down is an outage: the pass raises ``StoreUnavailable``, the loop waits with backoff
and jitter (``supervisors/backoff.py``) and tries again; due times that pass meanwhile are handled
by ``catch_up`` when it is back. Nothing fails.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from actors.clock import Clock, MonotonicClock
from leadlawk_daemon.logs import redact
from leadlawk_daemon.schedules.clock import DatabaseTime, ScheduleClock
from leadlawk_daemon.schedules.cron import CronError, CronRule
from leadlawk_daemon.schedules.fire import AdmissionFactory, FireBatch, write_fire
from leadlawk_daemon.schedules.plan import Busy, plan_fires
from leadlawk_daemon.schedules.schedule import Fire, Schedule
from leadlawk_daemon.store.base import StoreUnavailable
from leadlawk_daemon.store.schedules import FireDecision
from leadlawk_daemon.store.sql_store import SqlStore
from supervisors.backoff import Backoff, Jitter
from supervisors.spec import Started

if TYPE_CHECKING:
    from leadlawk_daemon.metrics import Metrics

__all__ = ["OUTAGE_RETRY", "FiringLimits", "ScheduleFiring", "busy_of"]

log = logging.getLogger("leadlawk.schedules")

# The database down: try again after 0.5 s, doubling to 10 s, full jitter (daemons that lost it
# together do not all come back in the same instant).
OUTAGE_RETRY = Backoff(0.5, 10.0, jitter=Jitter.FULL)
# A due schedule another daemon holds a claim on is looked at again this soon.
_CLAIMED_ELSEWHERE = 0.25


@dataclass(frozen=True, slots=True)
class FiringLimits:
    """``schedules.*`` of the configuration."""

    poll_interval: float = 5.0
    batch: int = 500
    parallel: int = 8
    claim_ttl: float = 30.0
    grace: float = 60.0
    """Schedule-clock seconds a fire may be late and still count as on time (``catch_up: none``)."""


def busy_of(previous: tuple[str, str | None] | None) -> Busy:
    """Where a schedule's previous fire stands, from its outcome and its job's status."""
    if previous is None:
        return Busy.IDLE
    outcome, status = previous
    if status is None:
        return Busy.WAITING if outcome == "queued" else Busy.IDLE
    return Busy.RUNNING if status in ("queued", "running") else Busy.IDLE


class ScheduleFiring:
    def __init__(
        self,
        store: Callable[[], SqlStore | None],
        admission: AdmissionFactory,
        *,
        owner: str,
        limits: FiringLimits | None = None,
        clock: Clock | None = None,
        schedule_clock: Callable[[SqlStore], ScheduleClock] = DatabaseTime,
        metrics: Metrics | None = None,
        on_job: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._admission = admission
        self.owner = owner
        self.limits = limits or FiringLimits()
        self._clock = clock or MonotonicClock()
        self._schedule_clock = schedule_clock
        self._metrics = metrics
        self._on_job = on_job
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._time: tuple[SqlStore, ScheduleClock] | None = None
        self._earliest: datetime | None = None
        self._pass_started: tuple[datetime, float, ScheduleClock] | None = None
        self.passes = 0

    def wake(self) -> None:
        """Look for due schedules now (one was added or resumed)."""
        self._wake.set()

    def request_stop(self, deadline: float | None = None) -> None:
        self._stop.set()
        self._wake.set()

    async def run(self, started: Started) -> None:
        started()
        outage = OUTAGE_RETRY.sequence()
        down_since: float | None = None
        while not self._stop.is_set():
            try:
                pause = await self.run_pass()
            except StoreUnavailable as exc:
                if down_since is None:
                    down_since = self._clock.monotonic()
                    log.warning("schedules paused: the database is unreachable", extra={"error": redact(str(exc))})
                pause = outage.next()
                self._show_overdue_unseen()
            else:
                if down_since is not None:
                    log.info("schedules resumed", extra={"paused_s": round(self._clock.monotonic() - down_since, 1)})
                    down_since = None
                outage.reset()
            await self._sleep(pause)

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        if self._stop.is_set():
            return
        waiter = asyncio.ensure_future(self._wake.wait())
        try:
            sleeper = asyncio.ensure_future(self._clock.sleep(seconds))
            try:
                await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
        finally:
            waiter.cancel()

    def _now_source(self, store: SqlStore) -> ScheduleClock:
        if self._time is None or self._time[0] is not store:
            self._time = (store, self._schedule_clock(store))
        return self._time[1]

    async def run_pass(self) -> float:
        """Fire what is due; the real seconds until the next look."""
        self.passes += 1
        store = self._store()
        if store is None:
            return self.limits.poll_interval
        time = self._now_source(store)
        now = await time.now()
        self._pass_started = (now, self._clock.monotonic(), time)
        await self._release_waiting(store)
        while not self._stop.is_set():
            claimed = await store.claim_due(self.owner, now, self.limits.batch, self.limits.claim_ttl)
            if claimed:
                await self._fire_all(store, claimed)
            if len(claimed) < self.limits.batch:
                break
            now = await time.now()
        earliest = self._earliest = await store.earliest_due()
        now = await time.now()
        if self._metrics is not None:
            overdue = 0.0 if earliest is None else max(0.0, (now - earliest).total_seconds())
            self._metrics.schedule_overdue.set(overdue)
        if earliest is None:
            return self.limits.poll_interval
        if earliest <= now:
            return _CLAIMED_ELSEWHERE
        return min(self.limits.poll_interval, time.real_seconds((earliest - now).total_seconds()))

    def _show_overdue_unseen(self) -> None:
        """The database is down: how overdue the earliest schedule seen is, by this host's clock
        (the alert "schedule did not fire" must not go quiet because nobody can look)."""
        if self._metrics is not None and self._earliest is not None:
            self._metrics.schedule_overdue.set(max(0.0, self._clock.wall() - self._earliest.timestamp()))

    async def _fire_all(self, store: SqlStore, schedules: list[Schedule]) -> None:
        previous = await store.previous_fires([s.id for s in schedules])
        # ``parallel`` groups, each written in one transaction once all its fires are decided.
        groups = [schedules[n :: self.limits.parallel] for n in range(min(self.limits.parallel, len(schedules)))]
        # An outage raised by one fire ends the pass (the TaskGroup cancels the others); their
        # claims lapse and the next pass takes them up again.
        try:
            async with asyncio.TaskGroup() as tasks:
                for group in groups:
                    batch = FireBatch(store.record_fire_batch, len(group))
                    for schedule in group:
                        tasks.create_task(self._fire(batch, schedule, busy_of(previous.get(schedule.id))))
        except* StoreUnavailable as outage:
            raise outage.exceptions[0] from None

    async def _fire(self, batch: FireBatch, schedule: Schedule, busy: Busy) -> None:
        try:
            rule = CronRule.parse(schedule.cron, schedule.tz)
        except CronError as exc:
            # A zone gone from this machine's tz database: nothing to fire by. Paused, so that no
            # daemon claims it on every pass, and said; a PUT with a zone it knows resumes it.
            log.error("schedule cannot be evaluated: paused", extra={"schedule_id": schedule.id, "error": str(exc)})
            await batch.leave()
            store = self._store()
            if store is not None:
                await store.set_paused(schedule.id, True, None, self._written_at())
            return
        # Decided at, and stamped with, the schedule clock's now as this fire is written (the pass's
        # now plus the time the pass took so far): a fire late past the grace is judged late.
        now = self._written_at()
        plan = plan_fires(
            schedule.id,
            rule,
            schedule.next_due_at,
            now,
            catch_up=schedule.catch_up,
            overlap=schedule.overlap,
            grace=timedelta(seconds=self.limits.grace),
            busy=busy,
        )
        fires = [Fire(schedule.id, p.due_at, p.outcome, now, p.job_id) for p in plan.fires]
        job_fire = next((f for f in fires if f.outcome == "fired"), None)
        decision = FireDecision(schedule.id, schedule.next_due_at, plan.next_due_at, fires)
        if job_fire is None:
            written = await batch.write(decision)
        else:
            outcome = await write_fire(batch, self._admission, schedule, decision, job_fire)
            written = outcome != "duplicate"
            if outcome == "accepted":
                self._on_job()
        if not written:
            return
        if plan.missed_uncounted:
            log.warning("schedule missed more due times than are recorded", extra={"schedule_id": schedule.id})
        self._count(fires)

    async def _release_waiting(self, store: SqlStore) -> None:
        for waiting in await store.waiting_fires(self.limits.batch):
            admitted = await self._admission(store).admit(
                waiting.schedule.job_spec(waiting.job_id),
                "schedule",
                schedule_id=waiting.schedule.id,
                due_at=waiting.due_at.isoformat(),
            )
            if admitted.outcome == "accepted":
                self._on_job()

    def _written_at(self) -> datetime:
        """The schedule clock's now, from the pass's start and this host's elapsed time (no round trip)."""
        assert self._pass_started is not None
        started, at, time = self._pass_started
        return started + timedelta(seconds=time.schedule_seconds(self._clock.monotonic() - at))

    def _count(self, fires: list[Fire]) -> None:
        if self._metrics is None:
            return
        for fire in fires:
            self._metrics.schedule_fires.labels(outcome=fire.outcome).inc()
            if fire.outcome in ("fired", "queued"):
                self._metrics.schedule_fire_lag.observe(max(0.0, (fire.fired_at - fire.due_at).total_seconds()))
