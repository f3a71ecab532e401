"""The writer actor: batched, idempotent upserts of leads, job leads and PageSpeed rows.

``handle`` only puts a message into the pipeline's :class:`WriteBuffer` (waiting while it holds
``max_pending`` messages: that wait fills the writer's mailbox, which pauses the scraper and the
enricher upstream). A flusher task writes the buffer when ``batch_size`` messages wait or
``flush_interval`` has passed, through the database breaker. While the database is unreachable
the breaker opens, nothing is taken out of the buffer, and the flusher tries again after a short
backoff; the breaker's reset timeout and the backoff are capped so that writing resumes within
``resume_within`` seconds of the database's return.

After each committed flush the jobs' owners are told what became durable, and one ``lead.written`` event per job and
flush is published with the count and the place ids (not one per lead: a flush can hold 500).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass

from actors.actor import Actor, ActorCell
from actors.racing import first_of
from actors.write_buffer import Committed, WriteBuffer
from leadlawk_daemon.events import EventSink
from leadlawk_daemon.logs import redact
from leadlawk_daemon.messages import WriterMessage
from leadlawk_daemon.metrics import Metrics
from leadlawk_daemon.resilience.breaker import BreakerOpenError, CircuitBreaker
from leadlawk_daemon.store.base import Store, StoreUnavailable
from supervisors.backoff import Backoff, Jitter

__all__ = ["Writer", "WriterDeps"]

log = logging.getLogger("leadlawk.writer")


@dataclass(frozen=True, slots=True)
class WriterDeps:
    """What every writer instance shares with the pipeline, and what outlives the instance."""

    store: Store
    buffer: WriteBuffer
    breaker: CircuitBreaker
    flush_interval: float
    retry_base: float
    retry_cap: float
    metrics: Metrics
    events: EventSink


class Writer(Actor[WriterMessage]):
    drain_on_stop = True

    def __init__(self, cell: ActorCell[WriterMessage], deps: WriterDeps) -> None:
        super().__init__(cell)
        self.deps = deps
        self._flusher: asyncio.Task[None] | None = None
        self._final_deadline: float | None = None
        self._rng = random.Random()

    async def on_start(self) -> None:
        self._flusher = asyncio.get_running_loop().create_task(self._flush_loop(), name=f"{self.name}/flusher")

    async def handle(self, message: WriterMessage) -> None:
        await self.deps.buffer.wait_for_room()
        self.deps.buffer.add(message)

    def request_stop(self, deadline: float | None = None) -> None:
        self._final_deadline = deadline
        super().request_stop(deadline)

    async def on_stop(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            try:
                await self._flusher
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("writer flusher failed")
        if self._final_deadline is None:
            return  # a crash or a restart: the buffer stays for the next instance
        # A graceful stop: write what is left while the deadline allows; what cannot be written
        # is redone by whoever resumes the job (its leads are not in job_leads yet).
        while len(self.deps.buffer) and self.clock.monotonic() < self._final_deadline:
            try:
                await self.flush_once()
            except (StoreUnavailable, BreakerOpenError, TimeoutError) as exc:
                remaining = self._final_deadline - self.clock.monotonic()
                if remaining <= 0.05:
                    log.error(
                        "writer stopped with rows unwritten",
                        extra={"pending": len(self.deps.buffer), "error": redact(str(exc))},
                    )
                    return
                await self.clock.sleep(min(self.deps.retry_cap, remaining / 2))

    # -- flushing ------------------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        buffer, clock = self.deps.buffer, self.clock
        backoff = Backoff(self.deps.retry_base, self.deps.retry_cap, jitter=Jitter.EQUAL)
        failures = 0
        while True:
            if not len(buffer):
                await buffer.nonempty.wait()
            if len(buffer) < buffer.batch_size:
                # Give a batch its time to fill, unless it fills first.
                await first_of(clock.sleep(self.deps.flush_interval), buffer.full_batch.wait())
            try:
                # One batch at a time: a full one goes at once, a partial one after the interval.
                await self.flush_once()
                failures = 0
            except Exception as exc:  # the rows stay in the buffer whatever went wrong
                if not isinstance(exc, StoreUnavailable | BreakerOpenError | TimeoutError):
                    log.exception("writer flush failed unexpectedly; rows kept and retried")
                failures += 1
                delay = backoff.delay(failures, self._rng)
                hint = getattr(exc, "retry_after", 0.0)
                if isinstance(exc, BreakerOpenError):
                    delay = min(self.deps.retry_cap, max(delay, hint))
                if failures == 1 or failures % 20 == 0:
                    log.warning(
                        "database unavailable; rows kept",
                        extra={"pending": len(buffer), "retry_in_s": round(delay, 3), "error": redact(str(exc))},
                    )
                await clock.sleep(delay)

    async def flush_once(self) -> Committed:
        deps = self.deps
        async with deps.buffer.lock:
            started = time.monotonic()
            committed = await deps.breaker.call(deps.buffer.write_batch, deps.store)
        deps.metrics.stage_duration.labels(stage="write").observe(time.monotonic() - started)
        self._announce(committed)
        return committed

    def _announce(self, committed: Committed) -> None:
        metrics = self.deps.metrics
        for job_id, place_ids in committed.by_job.items():
            metrics.leads.labels(stage="written").inc(len(place_ids))
            self.deps.events.publish("lead.written", job_id=job_id, count=len(place_ids), place_ids=place_ids)
