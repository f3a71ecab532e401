"""An Erlang/OTP supervisor for asyncio children.

Semantics follow OTP's ``supervisor`` behaviour:

* children start in order, each ready before the next; they stop in reverse order, each
  within its own shutdown timeout, after which it is cancelled;
* ``one_for_one``, ``one_for_all`` and ``rest_for_one`` decide which siblings are stopped and
  restarted with a child that must be restarted; ``permanent`` children are always restarted,
  ``transient`` ones only after an abnormal exit, ``temporary`` ones never (and a temporary
  sibling stopped by a group restart is not started again);
* every restart counts towards the restart intensity (``max_restarts`` within ``period``);
  one more and the supervisor stops all its children and fails, so its own parent handles that
  like any child's crash;
* a child that fails to start during a restart counts as another crash of that child.

On top of OTP, restarts wait for an exponential :class:`~supervisors.backoff.RestartBackoff`.
A supervisor is itself a :class:`~supervisors.spec.Child`, so trees nest.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from actors.clock import Clock, MonotonicClock
from actors.racing import reap
from supervisors.backoff import RestartBackoff
from supervisors.events import EventKind, SupervisorEvent, SupervisorListener
from supervisors.intensity import RestartIntensity
from supervisors.spec import Child, ChildSpec, Restart, Started, Strategy

__all__ = ["Supervisor", "SupervisorGaveUp", "SupervisorStartError"]

log = logging.getLogger("leadlawk.supervisor")


class SupervisorGaveUp(Exception):
    """Restart intensity exceeded: the supervisor stopped its children and failed."""


class SupervisorStartError(Exception):
    """A child failed to start while the supervisor itself was starting."""


class _StartFailed(Exception):
    def __init__(self, reason: BaseException) -> None:
        super().__init__(repr(reason))
        self.reason = reason


class _GiveUp(Exception):
    def __init__(self, child: str, reason: BaseException | None) -> None:
        super().__init__(child)
        self.child = child
        self.reason = reason


@dataclass(eq=False, slots=True)
class _ChildState:
    spec: ChildSpec
    task: asyncio.Task[None] | None = None
    instance: Child | None = None
    started_at: float = 0.0
    attempt: int = 0  # consecutive quick restarts, for the backoff
    restarts: int = 0


@dataclass(eq=False, slots=True)
class _PendingRestart:
    ids: list[str]
    cause: str
    due: float
    timer: asyncio.Task[None] | None = None
    ids_set: set[str] = field(default_factory=set)


_Waitables = set[asyncio.Future[None]] | set[asyncio.Task[None]]


class Supervisor:
    def __init__(
        self,
        name: str,
        children: Sequence[ChildSpec],
        *,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        max_restarts: int = 3,
        period: float = 5.0,
        backoff: RestartBackoff | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        listener: SupervisorListener | None = None,
    ) -> None:
        ids = [spec.id for spec in children]
        if len(set(ids)) != len(ids):
            raise ValueError(f"supervisor {name}: child ids must be unique, got {ids}")
        self.name = name
        self.strategy = strategy
        self._children = [_ChildState(spec) for spec in children]
        self._intensity = RestartIntensity(max_restarts, period)
        self._backoff = backoff or RestartBackoff()
        self._clock: Clock = clock or MonotonicClock()
        self._rng = rng or random.Random()
        self._listeners: list[SupervisorListener] = [listener] if listener else []
        self._pending: list[_PendingRestart] = []
        self._abandoned: set[asyncio.Task[None]] = set()
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._stopping = False
        self._stop_deadline: float | None = None
        self.gave_up: SupervisorGaveUp | None = None

    # -- introspection -------------------------------------------------------------------

    def add_listener(self, listener: SupervisorListener) -> None:
        self._listeners.append(listener)

    @property
    def running(self) -> list[str]:
        """Ids of the children running now, in start order."""
        return [c.spec.id for c in self._children if c.task is not None and not c.task.done()]

    def task_of(self, child_id: str) -> asyncio.Task[None] | None:
        state = self._find(child_id)
        return state.task if state else None

    def instance_of(self, child_id: str) -> Child | None:
        state = self._find(child_id)
        return state.instance if state else None

    @property
    def abandoned(self) -> int:
        """Children that ignored cancellation past their timeout and may still be running."""
        return len(self._abandoned)

    async def wait_settled(self) -> None:
        """Return when nothing more happens without time passing: every exit handled, every due
        restart done. Restarts still waiting for their backoff leave the supervisor settled."""
        while True:
            await self._idle.wait()
            if not self._has_work():
                return
            await asyncio.sleep(0)

    # -- lifecycle --------------------------------------------------------------------------

    def request_stop(self, deadline: float | None = None) -> None:
        """Stop every child in reverse order, finishing by ``deadline`` (on this supervisor's clock)."""
        self._stopping = True
        if deadline is not None:
            current = self._stop_deadline
            self._stop_deadline = deadline if current is None else min(deadline, current)
        self._wakeup.set()

    async def run(self, started: Started) -> None:
        try:
            await self._start_initial()
            started()
            await self._main_loop()
        except _GiveUp as give_up:
            error = SupervisorGaveUp(
                f"supervisor {self.name} gave up: more than {self._intensity.max_restarts} restarts "
                f"within {self._intensity.period:g}s; last: {give_up.child} exited with {give_up.reason!r}"
            )
            self.gave_up = error
            log.error(str(error), extra={"supervisor": self.name, "child": give_up.child})
            await self._stop_all(self._stop_deadline)
            self._emit(EventKind.GAVE_UP, None, give_up.reason)
            raise error from give_up.reason
        except BaseException:
            await self._stop_all(self._stop_deadline)
            raise
        await self._stop_all(self._stop_deadline)

    # -- the loop -----------------------------------------------------------------------

    def _has_work(self) -> bool:
        if any(c.task is not None and c.task.done() for c in self._children):
            return True
        now = self._clock.monotonic()
        return any(p.timer is None or p.timer.done() or p.due <= now for p in self._pending)

    async def _main_loop(self) -> None:
        while not self._stopping:
            self._wakeup.clear()
            exited = next((c for c in self._children if c.task is not None and c.task.done()), None)
            if exited is not None:
                await self._handle_exit(exited)
                continue
            due = next((p for p in self._pending if p.timer is None or p.timer.done()), None)
            if due is not None:
                self._pending.remove(due)
                await self._start_group(due.ids, due.cause)
                continue
            self._idle.set()
            try:
                await self._wakeup.wait()
            finally:
                self._idle.clear()

    async def _start_initial(self) -> None:
        for state in self._children:
            try:
                await self._start_child(state)
            except _StartFailed as failed:
                self._emit(EventKind.START_FAILED, state, failed.reason)
                await self._stop_all(None)
                raise SupervisorStartError(
                    f"supervisor {self.name}: child {state.spec.id} failed to start: {failed.reason!r}"
                ) from failed.reason

    async def _handle_exit(self, state: _ChildState) -> None:
        task = state.task
        assert task is not None
        state.task = None
        state.instance = None
        reason = _exit_reason(task)
        self._emit(EventKind.EXITED, state, reason)
        if reason is None:
            log.info("child exited normally", extra={"supervisor": self.name, "child": state.spec.id})
        else:
            log.error(
                "child crashed",
                extra={"supervisor": self.name, "child": state.spec.id, "reason": repr(reason)},
            )
        restart = state.spec.restart is Restart.PERMANENT or (
            state.spec.restart is Restart.TRANSIENT and reason is not None
        )
        if not restart:
            if state.spec.restart is Restart.TEMPORARY:
                self._children.remove(state)
            return
        await self._restart_after(state, reason, [])

    async def _restart_after(self, state: _ChildState, reason: BaseException | None, then: list[str]) -> None:
        """``state`` exited (or failed to start) and must be restarted: apply the strategy."""
        now = self._clock.monotonic()
        if not self._intensity.record(now):
            raise _GiveUp(state.spec.id, reason)
        if self._backoff.is_stable(now - state.started_at):
            state.attempt = 0
        delay = self._backoff.delay(state.attempt, self._rng)
        state.attempt += 1

        index = self._children.index(state)
        if self.strategy is Strategy.ONE_FOR_ONE:
            affected: list[_ChildState] = []
        elif self.strategy is Strategy.ONE_FOR_ALL:
            affected = [c for c in self._children if c is not state]
        else:
            affected = self._children[index + 1 :]
        for sibling in reversed(affected):
            await self._stop_child(sibling, None)
        for sibling in affected:
            if sibling.spec.restart is Restart.TEMPORARY:
                self._children.remove(sibling)
        group = {state.spec.id} | {c.spec.id for c in affected if c.spec.restart is not Restart.TEMPORARY}
        group |= {i for i in then if self._find(i) is not None}
        for pending in list(self._pending):
            if pending.ids_set & group:
                if pending.timer is not None:
                    pending.timer.cancel()
                self._pending.remove(pending)
                group |= pending.ids_set
        ordered = [c.spec.id for c in self._children if c.spec.id in group]
        self._emit(EventKind.RESTARTING, state, reason, delay=delay)
        pending = _PendingRestart(ordered, state.spec.id, now + delay, ids_set=set(ordered))
        if delay > 0:
            pending.timer = asyncio.get_running_loop().create_task(
                self._clock.sleep(delay), name=f"{self.name}/backoff/{state.spec.id}"
            )
            pending.timer.add_done_callback(self._wake)
        self._pending.append(pending)

    async def _start_group(self, ids: list[str], cause: str) -> None:
        for position, child_id in enumerate(ids):
            state = self._find(child_id)
            if state is None or (state.task is not None and not state.task.done()):
                continue
            try:
                await self._start_child(state)
            except _StartFailed as failed:
                self._emit(EventKind.START_FAILED, state, failed.reason)
                log.error(
                    "child failed to restart",
                    extra={"supervisor": self.name, "child": child_id, "reason": repr(failed.reason)},
                )
                await self._restart_after(state, failed.reason, ids[position + 1 :])
                return
            state.restarts += 1

    # -- starting and stopping one child ---------------------------------------------------

    async def _start_child(self, state: _ChildState) -> None:
        spec = state.spec
        loop = asyncio.get_running_loop()
        try:
            instance = spec.factory()
        except Exception as exc:
            raise _StartFailed(exc) from exc
        ready: asyncio.Future[None] = loop.create_future()

        def started() -> None:
            if not ready.done():
                ready.set_result(None)

        task = loop.create_task(instance.run(started), name=f"{self.name}/{spec.id}")
        task.add_done_callback(self._wake)
        try:
            finished = await self._wait_any({task, ready}, spec.start_timeout)
        except BaseException:
            await self._terminate(task, spec.id, spec.shutdown_timeout)
            raise
        if ready.done() or (task.done() and _exit_reason(task) is None):
            # A child that returned before reporting ready counts as started and then exited normally.
            state.task = task
            state.instance = instance
            state.started_at = self._clock.monotonic()
            if ready.done():
                log.info("child started", extra={"supervisor": self.name, "child": spec.id})
                self._emit(EventKind.STARTED, state, None)
            return
        if not finished:
            await self._terminate(task, spec.id, spec.shutdown_timeout)
            raise _StartFailed(TimeoutError(f"{spec.id} not ready within {spec.start_timeout:g}s"))
        reason = _exit_reason(task)
        assert reason is not None
        raise _StartFailed(reason)

    async def _stop_child(self, state: _ChildState, deadline: float | None) -> None:
        task, instance = state.task, state.instance
        state.task = None
        state.instance = None
        if task is None:
            return
        if task.done():
            _exit_reason(task)  # retrieve it: the supervisor asked for this stop
            return
        timeout = state.spec.shutdown_timeout
        if deadline is not None:
            timeout = max(0.0, min(timeout, deadline - self._clock.monotonic()))
        stopper = getattr(instance, "request_stop", None)
        if callable(stopper):
            # Graceful first: most of the timeout to finish the message in hand, the rest after cancel.
            grace = min(1.0, timeout * 0.2)
            stopper(self._clock.monotonic() + timeout - grace)
            if not await self._wait_any({task}, timeout - grace):
                await self._terminate(task, state.spec.id, grace)
        else:
            await self._terminate(task, state.spec.id, timeout)
        log.info("child stopped", extra={"supervisor": self.name, "child": state.spec.id})
        self._emit(EventKind.STOPPED, state, None)

    async def _terminate(self, task: asyncio.Task[None], child_id: str, within: float) -> None:
        """Cancel ``task`` and wait up to ``within`` s; a task that ignores cancellation is abandoned."""
        task.cancel(f"supervisor {self.name} stops {child_id}")
        if await self._wait_any({task}, within):
            _exit_reason(task)
            return
        self._abandoned.add(task)
        task.add_done_callback(self._reap_abandoned)
        log.error(
            "child ignored cancellation; abandoned",
            extra={"supervisor": self.name, "child": child_id, "timeout_s": within},
        )
        self._emit_raw(SupervisorEvent(self.name, EventKind.ABANDONED, child_id))

    async def _stop_all(self, deadline: float | None) -> None:
        for pending in self._pending:
            if pending.timer is not None:
                pending.timer.cancel()
        self._pending.clear()
        remaining = [c for c in self._children if c.task is not None]
        try:
            for state in reversed(remaining):
                await self._stop_child(state, deadline)
        except asyncio.CancelledError:
            # Cancelled again while stopping: cancel what is left without waiting, keep references.
            for state in remaining:
                if state.task is not None and not state.task.done():
                    state.task.cancel()
                    self._abandoned.add(state.task)
                    state.task.add_done_callback(self._reap_abandoned)
                state.task = None
            raise

    async def _wait_any(self, aws: _Waitables, within: float) -> bool:
        """Wait up to ``within`` s on the supervisor's clock for one of ``aws``; False if none is done."""
        if any(a.done() for a in aws):
            return True
        timer = asyncio.get_running_loop().create_task(self._clock.sleep(within))
        try:
            waiting: set[asyncio.Future[None]] = {*aws, timer}
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # Only the timer is ours to cancel; an outer cancellation is never swallowed here.
            await reap(timer)
        return any(a.done() for a in aws)

    # -- plumbing ---------------------------------------------------------------------------

    def _find(self, child_id: str) -> _ChildState | None:
        return next((c for c in self._children if c.spec.id == child_id), None)

    def _wake(self, _: object) -> None:
        self._wakeup.set()

    def _reap_abandoned(self, task: asyncio.Task[None]) -> None:
        self._abandoned.discard(task)
        _exit_reason(task)

    def _emit(
        self, kind: EventKind, state: _ChildState | None, reason: BaseException | None, delay: float = 0.0
    ) -> None:
        self._emit_raw(
            SupervisorEvent(
                self.name,
                kind,
                state.spec.id if state else None,
                reason,
                delay,
                state.restarts if state else 0,
            )
        )

    def _emit_raw(self, event: SupervisorEvent) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                log.exception("supervisor listener failed", extra={"supervisor": self.name})


def _exit_reason(task: asyncio.Task[None]) -> BaseException | None:
    """None for a normal exit; the exception (or the cancellation) otherwise."""
    if task.cancelled():
        return asyncio.CancelledError(f"{task.get_name()} was cancelled")
    return task.exception()

