"""Durable intake from the Redis stream ``{prefix}:jobs:stream`` (field ``job``), by consumer group.

An entry is acknowledged (and deleted: the database holds the job from then on) only after its
job is persisted or its rejection dead-lettered, so a daemon that dies at any point leaves the
entry pending in the group. Pending entries idle longer than ``claim_idle`` belonged to a dead
daemon and are reclaimed (XAUTOCLAIM). An entry whose persistence keeps failing is delivered
again, with backoff, and after ``max_deliveries`` deliveries it is dead-lettered and acked.

Backpressure: the loop awaits ``on_job`` (which may wait on a bounded queue) before it reads
again, so a full pipeline stops the reading, not the memory. A job the admission refuses because
the queue is full (``resilience.bulkhead.queue_size``) is not lost and not dead-lettered: its
entry stays pending, the intake waits until the queue has room, then delivers it again. Those
refusals do not count against ``max_deliveries``.

An entry without an ``id`` gets one derived from its content and its entry id, so a redelivery
(a crash between persisting and acknowledging) finds its job already there. An entry may carry
``source`` = ``pubsub``: a pub/sub message handed over to this durable path.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
import socket
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from actors.clock import Clock, MonotonicClock
from leadlawk_daemon.intake.admission import Admission, QueueFull, Source, payload_text
from leadlawk_daemon.intake.reconnect import REDIS_ERRORS, Reconnect
from leadlawk_daemon.intake.service import Service
from leadlawk_daemon.jobspec import JobSpec
from leadlawk_daemon.logs import redact
from leadlawk_daemon.resilience.retry import RetryPolicy
from supervisors.backoff import Backoff

__all__ = ["FIELD", "SOURCE_FIELD", "OnJob", "StreamIntake", "consumer_name", "stream_key"]

log = logging.getLogger("leadlawk.intake")

OnJob = Callable[[JobSpec], Awaitable[None]]
FIELD = b"job"
SOURCE_FIELD = b"source"
_SOURCES: dict[bytes, Source] = {b"pubsub": "pubsub"}


def stream_key(prefix: str) -> str:
    return f"{prefix}:jobs:stream"


def consumer_name() -> str:
    """Unique per daemon process: a restarted daemon must not mistake a dead one's entries for its own."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"


class StreamIntake(Service):
    name = "stream-intake"

    def __init__(
        self,
        redis: aioredis.Redis,
        prefix: str,
        admission: Admission,
        on_job: OnJob,
        *,
        group: str = "leadlawk",
        consumer: str | None = None,
        max_deliveries: int = 5,
        claim_idle: float = 60.0,
        reconnect_max_delay: float = 30.0,
        retry_base_delay: float = 1.0,
        block: float = 1.0,
        batch: int = 10,
        clock: Clock | None = None,
    ) -> None:
        if redis.connection_pool.connection_kwargs.get("decode_responses"):
            # A non-UTF-8 entry would then fail inside redis-py on every read, forever.
            raise ValueError("stream intake needs a Redis client with decode_responses=False")
        super().__init__()
        self.stream = stream_key(prefix)
        self.group = group
        self.consumer = consumer or consumer_name()
        self._redis = redis
        self._admission = admission
        self._on_job = on_job
        self._max_deliveries = max_deliveries
        self._claim_idle_ms = max(1, int(claim_idle * 1000))
        self._claim_every = claim_idle / 2
        self._block_ms = max(1, int(block * 1000))
        self._batch = batch
        self._clock = clock or MonotonicClock()
        self._link = Reconnect(self.name, clock=self._clock, max_delay=reconnect_max_delay)
        self._retry = RetryPolicy(base_delay=retry_base_delay, max_delay=reconnect_max_delay)
        self._retries = 0
        self._rng = random.Random()
        self._claim_cursor = "0-0"
        self._next_claim = float("-inf")
        # Our own pending entries are read first: those that failed, and any claimed.
        self._own_pending = True
        # Deliveries of an entry that were refused for a full queue, by entry id: not its fault.
        self._refused: dict[bytes, int] = {}

    @property
    def connected(self) -> bool:
        return self._link.connected

    async def run(self, started: Callable[[], None]) -> None:
        announced = False
        while self._running():
            try:
                await self._ensure_group()
                self._link.up()
                if not announced:
                    announced = True
                    started()
                await self._serve()
            except REDIS_ERRORS as exc:
                if not announced:
                    announced = True
                    started()
                await self._link.down(exc)

    async def _ensure_group(self) -> None:
        try:
            # From "0": entries added before any daemon ever ran are jobs too.
            await self._redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _serve(self) -> None:
        while self._running():
            if self._own_pending:
                entries = await self._read("0", block=None)
                if not entries:
                    self._own_pending = False
                    continue
                redelivered = True
            elif self._claim_cursor != "0-0" or self._clock.monotonic() >= self._next_claim:
                entries = await self._claim()
                redelivered = True
            else:
                entries = await self._read(">", block=self._block_ms)
                redelivered = False
            for entry_id, fields in entries:
                deliveries = await self._deliveries(entry_id) if redelivered else 1
                outcome = await self._handle(entry_id, fields, deliveries - self._refused.get(entry_id, 0))
                if outcome == "full":
                    # Refused for a full queue: everything read stays pending (not lost, not a dead
                    # letter); wait until the queue has room, then read our pending entries again.
                    waiting = [left for left, _ in entries[entries.index((entry_id, fields)) :]]
                    for left in waiting:
                        self._refused[left] = self._refused.get(left, 0) + 1
                    self._own_pending = True
                    await self._wait_for_room(waiting)
                    break
                self._refused.pop(entry_id, None)
                if outcome == "retry":
                    # The store failed: everything read stays pending; retry it after a backoff.
                    self._own_pending = True
                    delay = self._retry.delay(self._retries, self._rng)
                    self._retries += 1
                    await self._clock.sleep(delay)
                    break
                self._retries = 0

    async def _wait_for_room(self, waiting: list[bytes]) -> None:
        """Until the queue has room: look at growing intervals (up to claim_idle / 2), and keep the
        waiting entries ours. XCLAIM ... JUSTID resets their idle time without counting a
        delivery, so no other daemon reclaims them meanwhile and spends their deliveries."""
        if len(self._refused) > 10 * self._batch + 1000:
            self._refused = {k: v for k, v in self._refused.items() if k in waiting}
        looks = Backoff(0.25, max(0.25, self._claim_every)).sequence()
        while self._running():
            try:
                if await self._admission.has_room():
                    return
            except REDIS_ERRORS:
                raise
            except Exception as exc:  # the store cannot count: no room known; wait as for a full queue
                log.debug("queue room unknown", extra={"error": redact(f"{type(exc).__name__}: {exc}")})
            ids: list[int | bytes | str | memoryview] = list(waiting)
            await self._redis.xclaim(self.stream, self.group, self.consumer, 0, ids, justid=True)
            await looks.wait(self._clock)

    async def _read(self, start: str, block: int | None) -> list[tuple[bytes, dict[bytes, bytes] | None]]:
        reply = await self._redis.xreadgroup(
            self.group, self.consumer, {self.stream: start}, count=self._batch, block=block
        )
        if not reply:
            return []
        # RESP2 answers [[stream, entries]], RESP3 {stream: [entries]}.
        entries: Any = next(iter(reply.values())) if isinstance(reply, dict) else reply[0][1]
        if isinstance(reply, dict) and entries and isinstance(entries[0], list) and len(entries) == 1:
            entries = entries[0]
        return [(entry[0], entry[1]) for entry in entries]

    async def _claim(self) -> list[tuple[bytes, dict[bytes, bytes] | None]]:
        reply = await self._redis.xautoclaim(
            self.stream,
            self.group,
            self.consumer,
            min_idle_time=self._claim_idle_ms,
            start_id=self._claim_cursor,
            count=self._batch,
        )
        cursor, claimed = reply[0], reply[1]
        self._claim_cursor = cursor.decode() if isinstance(cursor, bytes) else str(cursor)
        if self._claim_cursor == "0-0":
            self._next_claim = self._clock.monotonic() + self._claim_every
        if claimed:
            log.info("reclaimed pending stream entries", extra={"count": len(claimed), "consumer": self.consumer})
        return [(entry[0], entry[1]) for entry in claimed]

    async def _deliveries(self, entry_id: bytes) -> int:
        rows = await self._redis.xpending_range(self.stream, self.group, min=entry_id, max=entry_id, count=1)
        return int(rows[0]["times_delivered"]) if rows else 1

    async def _handle(
        self, entry_id: bytes, fields: dict[bytes, bytes] | None, deliveries: int
    ) -> Literal["done", "retry", "full"]:
        """Process one entry: ``done`` (acked), ``retry`` (the store failed: deliver it again after a
        backoff) or ``full`` (the queue had no room: deliver it again once it has)."""
        ident = entry_id.decode()
        if not fields:
            # Deleted from the stream while pending (trimmed by hand, say): nothing left to run.
            await self._ack(entry_id)
            return "done"
        raw = fields.get(FIELD)
        source = _SOURCES.get(fields.get(SOURCE_FIELD, b""), "stream")
        try:
            if raw is None:
                names = ", ".join(sorted(k.decode("utf-8", "replace") for k in fields))
                payload = " ".join(f"{k.decode('utf-8', 'replace')}={payload_text(v, 1024)}" for k, v in fields.items())
                await self._admission.reject(
                    payload, [f"stream entry has no 'job' field (fields: {names})"], source, entry=ident
                )
                await self._ack(entry_id)
                return "done"
            if deliveries > self._max_deliveries:
                await self._give_up(entry_id, raw, deliveries, "the daemon handling it stopped each time")
                return "done"
            admitted = await self._admission.admit(raw, source, attempts=deliveries, delivery=ident, entry=ident)
        except asyncio.CancelledError:
            raise
        except REDIS_ERRORS:
            raise
        except QueueFull as exc:
            log.info("job refused, queue full; its entry stays pending", extra={"entry": ident, "reason": str(exc)})
            return "full"
        except Exception as exc:
            log.warning(
                "stream entry not persisted; it stays pending",
                extra={
                    "entry": ident,
                    "deliveries": deliveries,
                    "error": redact(f"{type(exc).__name__}: {exc}"),
                },
            )
            if raw is not None and deliveries >= self._max_deliveries:
                try:
                    await self._give_up(entry_id, raw, deliveries, f"{type(exc).__name__}: {exc}")
                except Exception:  # the dead letters live in the same store: it is still down
                    return "retry"
                return "done"
            return "retry"
        await self._ack(entry_id)
        if admitted.outcome == "accepted" and admitted.spec is not None:
            await self._on_job(admitted.spec)
        return "done"

    async def _give_up(self, entry_id: bytes, raw: bytes, deliveries: int, why: str) -> None:
        reason = f"not persisted after {deliveries} deliveries: {why}"
        await self._admission.reject(raw, [reason], "stream", attempts=deliveries, entry=entry_id.decode())
        await self._ack(entry_id)

    async def _ack(self, entry_id: bytes) -> None:
        async def ack_and_delete() -> None:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.xack(self.stream, self.group, entry_id)
                pipe.xdel(self.stream, entry_id)
                await pipe.execute()

        # Shielded: once persisted, a cancel must not leave it half-acknowledged (it would merely
        # be redelivered and found a duplicate, but that costs a claim_idle wait).
        await asyncio.shield(ack_and_delete())
