"""The actor base: one mailbox, N workers, a watchdog, and restart-safe bookkeeping.

An actor instance lives from one supervisor start to the next; its :class:`ActorCell` (the
mailbox, the stats, the chaos switches) outlives every instance. When a handler raises, the
message goes back to the front of the mailbox with its failure counted and the actor fails,
so its supervisor starts a fresh instance that receives the message again. After
``max_attempts`` failed handlings the message goes to the dead-letter sink with the error.
Messages in hand when the actor is stopped or cancelled are put back, not counted as failures.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable
from typing import ClassVar, Generic, TypeVar

from actors.clock import Clock, MonotonicClock
from actors.dead_letters import DeadLetter, DeadLetterSink, MemoryDeadLetters, describe
from actors.fair_mailbox import FairMailbox
from actors.limits import ActorLimits
from actors.mailbox import Envelope, Mailbox, MailboxFull
from actors.racing import reap
from actors.stats import ActorStats
from supervisors.spec import ChildSpec, Restart, Started

__all__ = ["Actor", "ActorCell", "ChaosCrash", "HandlerHung"]

log = logging.getLogger("leadlawk.actor")
M = TypeVar("M")
# How long a handler cut by the watchdog may take to unwind before the actor is restarted.
_UNWIND_TIMEOUT = 1.0


def _as_is(text: str) -> str:
    return text


class ChaosCrash(Exception):
    """Raised on purpose through the chaos hooks, to rehearse recovery."""


class HandlerHung(Exception):
    """A handler ran past ``handle_timeout``: the actor is restarted and the message counted failed."""


class ActorCell(Generic[M]):
    """The supervisor's side of an actor: what survives its restarts."""

    def __init__(
        self,
        name: str,
        factory: Callable[[ActorCell[M]], Actor[M]],
        settings: ActorLimits,
        *,
        clock: Clock | None = None,
        dead_letters: DeadLetterSink | None = None,
        put_timeout: float = 300.0,
        dead_letter_kind: str = "message",
        on_give_up: Callable[[M, str, int], bool] | None = None,
        lane_of: Callable[[M], Hashable] | None = None,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        # Masks a crash's text before it reaches the dead letters and the give-up hook: what is a
        # secret is the product's knowledge (leadlawk_daemon.logs.redact), not the runtime's.
        self.redact: Callable[[str], str] = redact or _as_is
        self.clock: Clock = clock or MonotonicClock()
        # With ``lane_of`` (a message's job), one lane per job served round-robin (actors/fair_mailbox.py).
        self.mailbox: Mailbox[M] = (
            Mailbox(name, settings.mailbox_capacity, put_timeout, self.clock)
            if lane_of is None
            else FairMailbox(name, settings.mailbox_capacity, lane_of, put_timeout, self.clock)
        )
        self.stats = ActorStats(name)
        self.dead_letters: DeadLetterSink = dead_letters or MemoryDeadLetters()
        self.dead_letter_kind = dead_letter_kind
        # Called when a message failed its last attempt, with the reason and the attempts; True
        # means the owner of that message took it over (and keeps its dead letter itself).
        self.on_give_up = on_give_up
        self.current: Actor[M] | None = None
        self._factory = factory
        self._spawned = 0
        self.chaos_crash = False
        self.chaos_hang: float | None = None
        self.chaos_signal = asyncio.Event()

    def spawn(self) -> Actor[M]:
        actor = self._factory(self)
        self._spawned += 1
        if self._spawned > 1:
            self.stats.restarts += 1
        self.current = actor
        return actor

    def child_spec(
        self, restart: Restart = Restart.PERMANENT, shutdown_timeout: float = 5.0, start_timeout: float = 60.0
    ) -> ChildSpec:
        return ChildSpec(self.name, self.spawn, restart, shutdown_timeout, start_timeout)

    async def tell(self, message: M, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Send ``message``, waiting while the mailbox is full (backpressure)."""
        if self.mailbox.offer(message):
            return  # the common case, without another coroutine
        try:
            await self.mailbox.put(message, timeout)
        except MailboxFull:
            self.stats.rejected += 1
            raise

    # Chaos hooks: off unless the daemon's configuration enables the HTTP endpoints.
    def inject_crash(self) -> None:
        """Raise while handling the next message, or at once if the actor is idle."""
        self.chaos_crash = True
        self.chaos_signal.set()

    def inject_hang(self, seconds: float) -> None:
        """Block the next message for ``seconds`` (cut short by the handler timeout)."""
        self.chaos_hang = seconds


class Actor(Generic[M]):
    """Subclasses implement :meth:`handle`, and :meth:`on_start` / :meth:`on_stop` for resources."""

    # An actor whose mailbox must be emptied before it stops (the writer) sets this.
    drain_on_stop: ClassVar[bool] = False

    def __init__(self, cell: ActorCell[M]) -> None:
        self.cell = cell
        self.name = cell.name
        self.mailbox = cell.mailbox
        self.clock = cell.clock
        self.settings = cell.settings
        self._stopping = False
        self._stop_signal = asyncio.Event()
        self._in_hand: list[Envelope[M] | None] = [None] * self.settings.concurrency
        self._hung: set[int] = set()
        self._hung_settled = asyncio.Event()
        self._idle_workers: dict[int, asyncio.Task[None]] = {}

    async def on_start(self) -> None:
        """Acquire resources; the actor counts as ready when this returns."""

    async def handle(self, message: M) -> None:
        raise NotImplementedError

    async def on_stop(self) -> None:
        """Release resources; runs however the actor ends."""

    def request_stop(self, deadline: float | None = None) -> None:
        self._stopping = True
        self._stop_signal.set()
        if not self.drain_on_stop or self.mailbox.waiting == 0:
            for task in list(self._idle_workers.values()):
                task.cancel("actor stopping")

    async def run(self, started: Started) -> None:
        await self.on_start()
        try:
            started()
            try:
                async with asyncio.TaskGroup() as group:
                    workers = [
                        group.create_task(self._work(slot), name=f"{self.name}/worker-{slot}")
                        for slot in range(self.settings.concurrency)
                    ]
                    group.create_task(self._watch(workers), name=f"{self.name}/watchdog")
            except BaseExceptionGroup as failed:
                # One cause is enough for the supervisor; the others were cancellations it caused.
                causes = [e for e in failed.exceptions if not isinstance(e, asyncio.CancelledError)]
                first = causes[0] if causes else None
                if first is None:
                    raise
                raise first from failed
        finally:
            await self.on_stop()

    async def _work(self, slot: int) -> None:
        mailbox, stats, cell = self.mailbox, self.cell.stats, self.cell
        # Bound once: every message goes through each of these.
        now, handle, take, done = self.clock.monotonic, self.handle, mailbox.get_nowait, mailbox.done
        in_hand = self._in_hand
        me = asyncio.current_task()
        assert me is not None
        while True:
            if self._stopping and (not self.drain_on_stop or mailbox.waiting == 0):
                return
            envelope = take()
            if envelope is None:
                self._idle_workers[slot] = me
                try:
                    envelope = await mailbox.get()
                except asyncio.CancelledError:
                    if self._stopping:
                        return
                    raise
                finally:
                    self._idle_workers.pop(slot, None)
            in_hand[slot] = envelope
            started_at = envelope.taken_at = now()
            try:
                if cell.chaos_crash or cell.chaos_hang is not None:
                    await self._chaos()
                await handle(envelope.message)
            except asyncio.CancelledError as exc:
                in_hand[slot] = None
                if slot in self._hung and me.cancelling() == 1:
                    # The watchdog cut this one message: it fails alone; the worker and its
                    # siblings (other messages in flight) go on.
                    me.uncancel()
                    self._settle_failure(slot, envelope, exc)
                    self._hung_settled.set()
                    continue
                self._settle_failure(slot, envelope, exc)
                raise
            except BaseException as exc:
                in_hand[slot] = None
                self._settle_failure(slot, envelope, exc)
                raise
            in_hand[slot] = None
            done(envelope)
            stats.handled(now() - started_at)

    def _settle_failure(self, slot: int, envelope: Envelope[M], exc: BaseException) -> None:
        """Put the message back, or dead-letter it on its last attempt. Synchronous on purpose:
        this runs while the task unwinds, possibly under cancellation."""
        if isinstance(exc, asyncio.CancelledError) and slot not in self._hung:
            self.mailbox.redeliver(envelope)
            return
        if slot in self._hung:
            exc = HandlerHung(f"handler of {self.name} exceeded {self.settings.handle_timeout:g}s")
        self._hung.discard(slot)
        envelope.failures += 1
        envelope.last_error = self.cell.redact(f"{type(exc).__name__}: {exc}")
        self.cell.stats.failed += 1
        if envelope.failures >= self.settings.max_attempts:
            self.mailbox.done(envelope)
            self.cell.stats.dead_lettered += 1
            give_up = self.cell.on_give_up
            if give_up is not None and give_up(envelope.message, envelope.last_error, envelope.failures):
                log.error(
                    "message given up; its owner keeps it",
                    extra={"actor": self.name, "attempts": envelope.failures, "reason": envelope.last_error},
                )
                return
            self.cell.dead_letters.dead_letter(
                DeadLetter(
                    kind=self.cell.dead_letter_kind,
                    payload=describe(envelope.message),
                    reason=envelope.last_error,
                    attempts=envelope.failures,
                    source=self.name,
                )
            )
            log.error(
                "message dead-lettered",
                extra={"actor": self.name, "attempts": envelope.failures, "reason": envelope.last_error},
            )
        else:
            self.mailbox.redeliver(envelope)
            log.warning(
                "handler failed; message will be redelivered",
                extra={"actor": self.name, "attempts": envelope.failures, "reason": envelope.last_error},
            )

    async def _chaos(self) -> None:
        cell = self.cell
        if cell.chaos_hang is not None:
            seconds, cell.chaos_hang = cell.chaos_hang, None
            await self.clock.sleep(seconds)
        if cell.chaos_crash:
            cell.chaos_crash = False
            raise ChaosCrash(f"chaos: {self.name} crashed on request")

    async def _hung_unwound(self, slots: list[int]) -> bool:
        """Wait (real time, bounded) until the cut handlers have settled their messages."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _UNWIND_TIMEOUT
        while any(slot in self._hung for slot in slots):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self._hung_settled.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._hung_settled.wait()
            except TimeoutError:
                return not any(slot in self._hung for slot in slots)
        return True

    async def _watch(self, workers: list[asyncio.Task[None]]) -> None:
        """Cut hung handlers, fire chaos crashes on an idle actor, and end with the workers."""
        timeout = self.settings.handle_timeout
        interval = max(0.05, min(1.0, timeout / 10))
        cell = self.cell
        while not all(w.done() for w in workers):
            if cell.chaos_crash and all(e is None for e in self._in_hand):
                cell.chaos_crash = False
                cell.chaos_signal.clear()
                raise ChaosCrash(f"chaos: {self.name} crashed on request (idle)")
            now = self.clock.monotonic()
            cut: list[int] = []
            for slot, envelope in enumerate(self._in_hand):
                if envelope is not None and now - envelope.taken_at > timeout and slot not in self._hung:
                    self._hung.add(slot)
                    cut.append(slot)
                    workers[slot].cancel("handler hung")
            if cut and not await self._hung_unwound(cut):
                # A handler that does not even unwind when cancelled cannot be trusted with the next
                # message: only then is the whole actor restarted.
                raise HandlerHung(f"handler of {self.name} exceeded {timeout:g}s and ignored its cancellation")
            cell.chaos_signal.clear()
            waiters = [
                asyncio.ensure_future(self.clock.sleep(interval)),
                asyncio.ensure_future(cell.chaos_signal.wait()),
                asyncio.ensure_future(self._stop_signal.wait()),
            ]
            try:
                await asyncio.wait([*waiters, *workers], return_when=asyncio.FIRST_COMPLETED)
            finally:
                await reap(*waiters)
            if self._stopping and all(w.done() for w in workers):
                return
