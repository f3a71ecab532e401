"""The deliveries service: a supervised child of the pipeline that makes finished jobs' digests and sends them.

Three owned loops, under one task group:

* **make**: every ``job.finished`` this daemon announces is handed (through a bounded queue) to
  :meth:`DeliveryService.make`, which writes the job's delivery rows and its schedule's ledger rows
  in one transaction. A full queue drops the event: the sweep finds the job.
* **sweep** (the outbox): at start and every ``deliveries.sweep_interval``, finished jobs naming
  destinations with no delivery yet get theirs; a crash between a job's end and its digest, or a
  job another daemon finished and died before digesting, loses nothing.
* **send**: due deliveries are claimed (one daemon sends each) and sent, ``deliveries.concurrency``
  at once, each destination through its own breaker, which is registered as a dependency, so it
  shows on ``/health/ready`` (a note: a destination down never makes the daemon unready, and no
  job waits on it), in the console and in ``leadlawk_circuit_breaker_state``.

The failure model (docs/deliveries.md): a destination down is an outage, retried with backoff and
full jitter (``supervisors/backoff.py``) for as long as it lasts; the job is not touched. A refusal
is the delivery's own failure: status ``dead`` and a dead letter of kind ``delivery``, replayed by
``leadlawk deliveries replay ID`` or ``leadlawk dlq replay``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from actors.clock import Clock
from actors.racing import first_of
from leadlawk_daemon.deliveries.destinations import Sender, build_sender
from leadlawk_daemon.deliveries.digest import Digest, digest_rows, job_summary
from leadlawk_daemon.deliveries.errors import DeliveryRejected, DestinationDown
from leadlawk_daemon.deliveries.ledger import DELIVERABLE_STATUSES, Delivery, DeliveryLedger, ledger_of
from leadlawk_daemon.dependencies import Dependencies, Dependency
from leadlawk_daemon.event_bus import EventBus, Subscription
from leadlawk_daemon.logs import redact
from leadlawk_daemon.metrics import Metrics
from leadlawk_daemon.resilience.breaker import BreakerOpenError, BreakerState, CircuitBreaker
from leadlawk_daemon.settings import Settings
from leadlawk_daemon.sites.policy import EgressPolicy
from leadlawk_daemon.store.base import Store, StoreError
from supervisors.backoff import Backoff, BackoffSequence, Jitter, RandomSource
from supervisors.spec import Started

__all__ = ["DeliveryService", "destination_breaker"]

log = logging.getLogger("leadlawk.deliveries")

# The store itself down (the database): its loops try again after 0.25 s, doubling to 5 s.
_STORE_RETRY = Backoff(0.25, 5.0)
_QUEUE = 1000
_MAX_WAITING = 10_000  # per destination; past it, a delivery waits out its own retry time


def destination_breaker(name: str) -> str:
    """A destination's name among the dependencies (``/health/ready``, the breaker gauge)."""
    return f"destination:{name}"


def _never_blocks_readiness(breaker: CircuitBreaker) -> str | None:
    return None


class DeliveryService:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        bus: EventBus,
        metrics: Metrics,
        clock: Clock,
        dependencies: Dependencies,
        *,
        secrets: Mapping[str, str] | None = None,
        rng: RandomSource | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.ledger: DeliveryLedger = ledger_of(store, clock)
        self.bus = bus
        self.metrics = metrics
        self.clock = clock
        self.dependencies = dependencies
        self.secrets = os.environ if secrets is None else secrets
        self.policy = EgressPolicy.from_cidrs(settings.sites.allowed_networks)
        self._rng = rng
        self._senders: dict[str, Sender] = {}
        self._breakers: dict[str, CircuitBreaker] = {}
        self._retries: dict[str, BackoffSequence] = {}
        # Per destination, the deliveries this daemon set to retry later, and when: hurried once
        # the destination answers again, so a backlog need not wait out retry_max.
        self._waiting: dict[str, dict[str, datetime]] = {}
        self._finished: asyncio.Queue[str] = asyncio.Queue(maxsize=_QUEUE)
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(settings.deliveries.concurrency)
        d = settings.deliveries
        self._retry = Backoff(d.retry_base, d.retry_max, jitter=Jitter.FULL)
        for name in settings.destinations:
            self._breaker(name)

    # -- the supervised child ------------------------------------------------------------------------

    async def run(self, started: Started) -> None:
        with self.bus.subscribe() as events:
            try:
                started()
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._listen(events), name="deliveries/listen")
                    group.create_task(self._make_loop(), name="deliveries/make")
                    group.create_task(self._sweep_loop(), name="deliveries/sweep")
                    group.create_task(self._send_loop(), name="deliveries/send")
            finally:
                for sender in self._senders.values():
                    with contextlib.suppress(Exception):
                        await sender.aclose()
                self._senders.clear()

    def note(self) -> str | None:
        """``/health/ready``'s ``destinations`` note: which destinations are down (still ready)."""
        down = sorted(name for name, b in self._breakers.items() if b.state is not BreakerState.CLOSED)
        return None if not down else f"destination(s) down, deliveries waiting: {', '.join(down)}"

    def wake(self) -> None:
        self._wake.set()

    # -- making deliveries ---------------------------------------------------------------------------

    async def make(self, job_id: str) -> list[Delivery]:
        """Make ``job_id``'s deliveries if it is finished, deliverable and names destinations."""
        job = await self.store.get_job(job_id)
        if job is None or job.status not in DELIVERABLE_STATUSES or job.finished_at is None:
            return []
        names = job.spec.get("notify")
        if not isinstance(names, list) or not names:
            return []
        schedule = await self.ledger.schedule_of(job_id)
        made = await self.ledger.create(job_id, [str(n) for n in names], job_summary(job), schedule)
        for delivery in made:
            if delivery.status == "delivered":  # nothing new, and the schedule delivers no empty digest
                self.metrics.deliveries.labels(destination=delivery.destination, outcome="skipped").inc()
            log.info(
                "delivery made",
                extra={
                    "delivery_id": delivery.id,
                    "destination": delivery.destination,
                    "job_id": job_id,
                    "leads": len(delivery.leads),
                    "schedule_id": delivery.schedule_id,
                },
            )
        if made:
            self.wake()
        return made

    async def _listen(self, events: Subscription) -> None:
        while True:
            event = await events.get()
            if event.get("type") != "job.finished" or event.get("status") not in DELIVERABLE_STATUSES:
                continue
            with contextlib.suppress(asyncio.QueueFull):  # the sweep finds what is dropped here
                self._finished.put_nowait(str(event.get("job_id")))

    async def _make_loop(self) -> None:
        retries = _STORE_RETRY.sequence(self._rng)
        while True:
            job_id = await self._finished.get()
            while True:
                try:
                    await self.make(job_id)
                    retries.reset()
                    break
                except StoreError as exc:
                    log.warning("delivery not made yet; retrying", extra={"job_id": job_id, "error": repr(exc)})
                    await retries.wait(self.clock)

    async def _sweep_loop(self) -> None:
        retries = _STORE_RETRY.sequence(self._rng)
        while True:
            try:
                for job_id in await self.ledger.unmade():
                    await self.make(job_id)
                retries.reset()
            except StoreError as exc:
                log.warning("deliveries sweep failed; retrying", extra={"error": repr(exc)})
                await retries.wait(self.clock)
                continue
            await self.clock.sleep(self.settings.deliveries.sweep_interval)

    # -- sending -------------------------------------------------------------------------------------

    async def _send_loop(self) -> None:
        retries = _STORE_RETRY.sequence(self._rng)
        d = self.settings.deliveries
        while True:
            self._wake.clear()
            failed: BaseException | None = None
            due: list[Delivery] = []
            try:
                due = await self.ledger.due(limit=d.concurrency * 4)
                if due:
                    async with asyncio.TaskGroup() as group:
                        for delivery in due:
                            group.create_task(self._send_one(delivery), name=f"deliveries/{delivery.id}")
                retries.reset()
            except* StoreError as group:
                failed = group.exceptions[0]
            if failed is not None:
                log.warning("deliveries not sent yet; retrying", extra={"error": repr(failed)})
                await retries.wait(self.clock)
            elif not due:
                await self._idle(d.sweep_interval)

    async def _idle(self, longest: float) -> None:
        """Until the next delivery is due (at most ``longest``), or something new is made."""
        wait = longest
        upcoming = await self.ledger.next_due()
        if upcoming is not None:
            wait = max(0.0, min(longest, upcoming.timestamp() - self.clock.wall()))
        if wait > 0 and not self._wake.is_set():
            await first_of(self.clock.sleep(wait), self._wake.wait())

    async def _send_one(self, delivery: Delivery) -> None:
        async with self._slots:
            if not await self.ledger.claim(delivery.id, self.settings.deliveries.claim_ttl):
                return  # another daemon took it, or it was sent meanwhile
            await self._deliver(delivery)

    async def _deliver(self, delivery: Delivery) -> None:
        name = delivery.destination
        try:
            config = self.settings.destinations.get(name)
            if config is None:
                raise DeliveryRejected(f"no destination named {name!r} is configured")
            sender = self._sender(name, config)
            digest = Digest(delivery, await digest_rows(self.store, delivery))
            await self._breaker(name).call(sender.send, digest)
        except BreakerOpenError:
            await self._later(delivery, f"destination {name} is down (its breaker is open)")
        except (DestinationDown, TimeoutError) as exc:
            await self._later(delivery, str(exc) or type(exc).__name__)
        except DeliveryRejected as exc:
            await self._dead(delivery, str(exc))
        else:
            await self._delivered(delivery)

    def _sender(self, name: str, config: Any) -> Sender:
        sender = self._senders.get(name)
        if sender is None:
            sender = build_sender(
                name, config, self.settings.deliveries, secrets=self.secrets, policy=self.policy, wall=self.clock.wall
            )
            self._senders[name] = sender
        return sender

    def _breaker(self, name: str) -> CircuitBreaker:
        breaker = self._breakers.get(name)
        if breaker is None:
            cb = self.settings.resilience.circuit_breaker
            key = destination_breaker(name)
            breaker = CircuitBreaker(
                key,
                failure_threshold=cb.failure_threshold,
                reset_timeout=cb.reset_timeout,
                call_timeout=None,
                clock=self.clock,
                on_change=self.dependencies.changed,
                exclude=lambda exc: isinstance(exc, DeliveryRejected),  # a refusal is a sign of life
            )
            self.dependencies.add(Dependency(key, breaker, ready=_never_blocks_readiness))
            self._breakers[name] = breaker
        return breaker

    async def _later(self, delivery: Delivery, why: str) -> None:
        name = delivery.destination
        retries = self._retries.setdefault(name, self._retry.sequence(self._rng))
        delay = max(retries.next(), self._breaker(name).seconds_until_trial())
        at = await self.ledger.retry_later(delivery.id, redact(why), delay)
        waiting = self._waiting.setdefault(name, {})
        if at is not None and len(waiting) < _MAX_WAITING:
            waiting[delivery.id] = at
        self.metrics.deliveries.labels(destination=name, outcome="retried").inc()
        log.warning(
            "destination down; delivery waits",
            extra={
                "delivery_id": delivery.id,
                "destination": name,
                "error": redact(why),
                "retry_in_s": round(delay, 2),
            },
        )

    async def _dead(self, delivery: Delivery, why: str) -> None:
        reason = redact(why)
        if await self.ledger.dead(delivery.id, reason):
            await self.store.add_dead_letter(
                "delivery",
                {"delivery_id": delivery.id, "destination": delivery.destination, "job_id": delivery.job_id},
                f"delivery to {delivery.destination}: {reason}",
                delivery.attempts + 1,
            )
            self.metrics.dead_letters.labels(kind="delivery").inc()
        self.metrics.deliveries.labels(destination=delivery.destination, outcome="dead").inc()
        log.error(
            "delivery refused; dead-lettered",
            extra={"delivery_id": delivery.id, "destination": delivery.destination, "error": reason},
        )

    async def _delivered(self, delivery: Delivery) -> None:
        name = delivery.destination
        self._retries.pop(name, None)
        await self.ledger.delivered(delivery.id)
        waiting = self._waiting.pop(name, {})
        waiting.pop(delivery.id, None)
        if waiting and await self.ledger.hurry(waiting):
            self.wake()  # the destination is back: its backlog goes now
        self.metrics.deliveries.labels(destination=name, outcome="delivered").inc()
        if delivery.created_at is not None:
            waited = max(0.0, self.clock.wall() - delivery.created_at.timestamp())
            self.metrics.delivery_latency.labels(destination=name).observe(waited)
        log.info("delivered", extra={"delivery_id": delivery.id, "destination": name, "leads": len(delivery.leads)})
