"""The job coordinator: leases jobs, gives each one a driver, hands them back at stop.

A supervised child (not an actor): ``run`` leases jobs through the job lifecycle
(:mod:`leadlawk_daemon.jobs.lifecycle`, the one writer of a stored job's status) up to
``max_concurrent_jobs`` at once, woken by a submission and by a periodic poll (which is how the
orphaned leases of a dead daemon are picked up). Each leased job gets a
:class:`~leadlawk_daemon.jobs.state.JobState` and a :class:`~leadlawk_daemon.jobs.driver.JobDriver`,
the one owner of that job's truth (see there). A job leased ``jobs.max_attempts`` times, each time
ending with its holder dying, is failed instead (a poison job must not kill every daemon for ever),
and announced by the lifecycle.

Stopping the coordinator (shutdown, or a restart of a sibling) stops its runs with reason
``shutdown``: their counters are saved and their leases released, so the next start (or another
daemon) resumes them.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import MutableMapping
from typing import Literal

from actors.racing import first_of
from leadlawk_daemon.jobs.driver import DriverDeps, JobDriver
from leadlawk_daemon.jobs.state import JobState
from leadlawk_daemon.jobspec import JobSpecError, parse_job_spec
from leadlawk_daemon.logs import redact
from leadlawk_daemon.qualify import Filters
from leadlawk_daemon.store.base import StoreUnavailable
from supervisors.backoff import Backoff
from supervisors.spec import Started

__all__ = ["Coordinator"]

log = logging.getLogger("leadlawk.jobs")

# A job whose driver failed waits 2 s after its first crash, doubling to at most 60 s, before it is
# leased again.
_CRASH_BACKOFF = Backoff(1.0, 60.0)
# A stored spec is re-validated on lease; this bound only guards against an absurd row.
_MAX_STORED_SPEC = 1 << 20


class Coordinator:
    def __init__(
        self,
        deps: DriverDeps,
        *,
        max_concurrent_jobs: int,
        max_attempts: int,
        poll_interval: float,
        runs: MutableMapping[str, JobState],
        retired: MutableMapping[str, JobState],
        wake: asyncio.Event,
        min_reviews_when_hidden: Literal["reject", "accept"] = "reject",
    ) -> None:
        self.deps = deps
        self.lifecycle = deps.lifecycle()
        self.min_reviews_when_hidden = min_reviews_when_hidden
        self.max_concurrent_jobs = max_concurrent_jobs
        self.max_attempts = max_attempts
        self.poll_interval = poll_interval
        self.runs = runs
        # Runs that ended with rows still on their way to the store: a resumed run waits for them.
        self.retired = retired
        self.wake = wake
        self._stopping = False
        self._stop = asyncio.Event()
        # Jobs whose lease lapsed here during a database outage: handed back once it returns, so
        # that an outage is not counted as this daemon dying.
        self._lapsed: set[str] = set()
        self._drivers: dict[str, asyncio.Task[None]] = {}
        # Driver failures per job in this daemon (a bug the job triggers): bounded by max_attempts.
        self._crashes: dict[str, int] = {}

    @property
    def stopping(self) -> bool:
        return self._stopping

    def request_stop(self, deadline: float | None = None) -> None:
        self._stopping = True
        self._stop.set()
        for run in list(self.runs.values()):
            run.stop("shutdown")

    async def run(self, started: Started) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                started()
                while not self._stopping:
                    self.wake.clear()
                    self._prune()
                    await self._hand_back_lapsed()
                    await self._fill(group)
                    if self._stopping:
                        break
                    await first_of(self.deps.clock.sleep(self.poll_interval), self.wake.wait(), self._stop.wait())
                for run in list(self.runs.values()):
                    run.stop("shutdown")
        finally:
            for run in list(self.runs.values()):
                run.stop("shutdown")

    def _prune(self) -> None:
        """Forget retired runs whose rows are all written: nothing is left to wait for."""
        for job_id, run in list(self.retired.items()):
            if not run.rows_in_flight:
                del self.retired[job_id]

    async def _after_crash(self, state: JobState) -> None:
        """A driver failed (a bug): hand the job back after a backoff, and fail it once its driver has
        failed ``jobs.max_attempts`` times here, so a job that breaks the driver cannot loop for ever."""
        crashes = self._crashes[state.job_id] = self._crashes.get(state.job_id, 0) + 1
        if crashes >= self.max_attempts:
            error = f"the job's driver failed {crashes} times (jobs.max_attempts = {self.max_attempts}): {state.error}"
            await self.lifecycle.fail(state.job_id, error, state.counters())
            del self._crashes[state.job_id]
            return
        backoff = _CRASH_BACKOFF.ceiling(crashes)
        await self.lifecycle.hand_back(state.job_id, wait_s=backoff)

    async def _hand_back_lapsed(self) -> None:
        for job_id in sorted(self._lapsed):
            if job_id in self.runs:
                self._lapsed.discard(job_id)  # leased again since, and running here: not ours to release
                continue
            try:
                await self.lifecycle.hand_back_lapsed(job_id)
            except StoreUnavailable:
                return
            self._lapsed.discard(job_id)

    async def _fill(self, group: asyncio.TaskGroup) -> None:
        deps = self.deps
        while len(self.runs) < self.max_concurrent_jobs and not self._stopping:
            try:
                # The lease runs from when the database took it, which is before its answer arrives.
                asked_at = deps.clock.monotonic()
                job = await self.lifecycle.lease_next(deps.timing.lease_ttl, self.max_attempts)
            except StoreUnavailable as exc:
                log.warning("cannot lease jobs: database unavailable", extra={"error": redact(str(exc))})
                return
            if job is None:
                return
            try:
                # Its area was judged when it was admitted; a maximum lowered since holds new jobs only.
                spec = parse_job_spec(job.spec, _MAX_STORED_SPEC, max_area_km2=math.inf)
            except JobSpecError as exc:
                await self.lifecycle.fail(job.id, f"stored spec is invalid: {exc}")
                continue
            self._lapsed.discard(job.id)
            state = JobState(
                job.id, spec, Filters.from_spec(job.spec, self.min_reviews_when_hidden), parent_id=job.parent_id
            )
            self.runs[job.id] = state
            driver = JobDriver(state, job, deps, retired=self.retired.pop(job.id, None), leased_at=asked_at)
            # A run of the same job may still be winding down here (it stopped before its lease could
            # lapse, and the lease came back to us): the new one starts when the old one has ended.
            previous = self._drivers.get(job.id)
            self._drivers[job.id] = group.create_task(self._drive(driver, previous), name=f"job/{job.id}")

    async def _drive(self, driver: JobDriver, previous: asyncio.Task[None] | None) -> None:
        state = driver.state
        try:
            if previous is not None and not previous.done():
                await asyncio.wait([previous])
            await driver.run()
            if state.stop_reason == "crashed":
                await self._after_crash(state)
        finally:
            if self.runs.get(state.job_id) is state:
                del self.runs[state.job_id]
            if self._drivers.get(state.job_id) is asyncio.current_task():
                del self._drivers[state.job_id]
            if state.rows_in_flight:
                self.retired[state.job_id] = state
            if driver.lapsed:
                self._lapsed.add(state.job_id)
            self.wake.set()
