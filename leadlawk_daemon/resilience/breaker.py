"""A circuit breaker: aiobreaker's state machine, with its four known gaps closed.

aiobreaker (1.2) keeps the failure counter, the closed/open/half-open states and the listeners.
Left alone it has four gaps, each closed here and each proven in ``tests/test_breaker.py``:

1. Half-open lets every concurrent call through. :class:`CircuitBreaker` admits exactly one
   trial; callers arriving while the trial runs get :class:`BreakerOpenError`.
2. It stamps ``opened_at`` with ``datetime.utcnow()`` (naive UTC) but reports ``opens_at`` and
   ``time_remaining`` against ``datetime.now()`` (naive local time), so on a host not set to UTC
   the reopen time is hours off. Every time decision here reads the injected :class:`Clock`.
3. ``utcnow()`` is deprecated on Python 3.12+ and our warnings are errors: the overridden
   ``open()`` and states never call it.
4. The call that trips the breaker raises ``CircuitBreakerError`` instead of the error that
   tripped it. The overridden states open the breaker without raising, so the caller sees the
   original error; only calls refused while open see :class:`BreakerOpenError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

from aiobreaker import CircuitBreaker as _LibraryBreaker
from aiobreaker import CircuitBreakerError, CircuitBreakerListener, CircuitBreakerState
from aiobreaker.state import CircuitClosedState, CircuitHalfOpenState, CircuitOpenState

from actors.clock import Clock
from leadlawk_daemon.settings import CircuitBreakerSettings

__all__ = ["BreakerOpenError", "BreakerState", "CircuitBreaker", "clock_timeout"]

T = TypeVar("T")


class BreakerState(StrEnum):
    CLOSED = "closed"
    HALF_OPEN = "half_open"
    OPEN = "open"

    @property
    def metric_value(self) -> int:
        """The value of ``leadlawk_circuit_breaker_state``: 0 closed, 1 half-open, 2 open."""
        return {"closed": 0, "half_open": 1, "open": 2}[self.value]


OnChange = Callable[[str, BreakerState, BreakerState], None]


class BreakerOpenError(CircuitBreakerError):  # type: ignore[misc]
    """A call refused because the breaker is open (or its one half-open trial is running)."""

    def __init__(self, name: str, retry_after: float) -> None:
        self.name = name
        # Seconds until a trial call may be admitted; retry policies use it as a delay hint.
        self.retry_after = max(0.0, retry_after)
        message = f"circuit breaker {name!r} is open; next trial in {self.retry_after:.1f} s"
        super().__init__(message, datetime.fromtimestamp(0, UTC))
        self.args = (message,)

    @property
    def time_remaining(self) -> timedelta:
        return timedelta(seconds=self.retry_after)

    def __str__(self) -> str:
        return str(self.message)


@asynccontextmanager
async def clock_timeout(clock: Clock, seconds: float) -> AsyncIterator[asyncio.Timeout]:
    """``asyncio.timeout`` measured on ``clock``: raises ``TimeoutError`` when the body overruns.

    asyncio's own timeout reads the loop's clock, which a FakeClock cannot move; the watchdog
    sleeps on the injected clock and then expires an ``asyncio.timeout`` so that asyncio's
    cancellation bookkeeping (uncancel, TimeoutError conversion) stays the standard one.
    """
    async with asyncio.timeout(None) as scope:

        async def expire() -> None:
            await clock.sleep(seconds)
            scope.reschedule(asyncio.get_running_loop().time())

        watchdog = asyncio.create_task(expire(), name="clock-timeout")
        try:
            yield scope
        finally:
            watchdog.cancel()


def _state_name(state: Any) -> BreakerState:
    return {
        CircuitBreakerState.CLOSED: BreakerState.CLOSED,
        CircuitBreakerState.HALF_OPEN: BreakerState.HALF_OPEN,
        CircuitBreakerState.OPEN: BreakerState.OPEN,
    }[state.state]


class _Closed(CircuitClosedState):  # type: ignore[misc]
    def on_failure(self, exception: Exception) -> None:
        # Gap 4: open, but let the base class re-raise the error that tripped us.
        if self._breaker._state_storage.counter >= self._breaker.fail_max:
            self._breaker.open()


class _HalfOpen(CircuitHalfOpenState):  # type: ignore[misc]
    def on_failure(self, exception: Exception) -> None:
        self._breaker.open()


class _Open(CircuitOpenState):  # type: ignore[misc]
    def before_call(self, func: Any, *args: Any, **kwargs: Any) -> None:
        breaker: _ClockedBreaker = self._breaker
        remaining = breaker.seconds_until_trial()
        if remaining > 0:
            raise BreakerOpenError(breaker.name or "breaker", remaining)


_STATES = {
    CircuitBreakerState.CLOSED: _Closed,
    CircuitBreakerState.HALF_OPEN: _HalfOpen,
    CircuitBreakerState.OPEN: _Open,
}


class _ClockedBreaker(_LibraryBreaker):  # type: ignore[misc]
    """aiobreaker with every clock read replaced by the injected :class:`Clock` (gaps 2 and 3)."""

    def __init__(self, clock: Clock, reset_timeout: float, **kwargs: Any) -> None:
        self._clock = clock
        self._reset_timeout = reset_timeout
        self._opened_mono: float | None = None
        super().__init__(timeout_duration=timedelta(seconds=reset_timeout), **kwargs)

    def _create_new_state(
        self, new_state: CircuitBreakerState, prev_state: Any = None, notify: bool = False
    ) -> Any:
        return _STATES[new_state](self, prev_state=prev_state, notify=notify)

    def open(self) -> None:
        self._opened_mono = self._clock.monotonic()
        # An aware UTC stamp from our clock: no utcnow(), no naive/local mix-up.
        self._state_storage.opened_at = datetime.fromtimestamp(self._clock.wall(), UTC)
        self.state = self._state_storage.state = CircuitBreakerState.OPEN

    def seconds_until_trial(self) -> float:
        if self._opened_mono is None:
            return 0.0
        return max(0.0, self._opened_mono + self._reset_timeout - self._clock.monotonic())

    @property
    def opens_at(self) -> datetime | None:
        remaining = self.seconds_until_trial()
        if remaining <= 0:
            return None
        return datetime.fromtimestamp(self._clock.wall() + remaining, UTC)

    @property
    def time_until_open(self) -> timedelta | None:
        remaining = self.seconds_until_trial()
        return timedelta(seconds=remaining) if remaining > 0 else None


class _Relay(CircuitBreakerListener):  # type: ignore[misc]
    def __init__(self, name: str, on_change: OnChange | None) -> None:
        self._name = name
        self._on_change = on_change

    def state_change(self, breaker: Any, old: Any, new: Any) -> None:
        if self._on_change is None:
            return
        before = _state_name(old) if old is not None else BreakerState.CLOSED
        after = _state_name(new)
        if before is not after:
            self._on_change(self._name, before, after)


class CircuitBreaker:
    """Guards calls to one dependency.

    ``failure_threshold`` consecutive failures open it; a call longer than ``call_timeout``
    (on ``clock``) is a failure; after ``reset_timeout`` one trial call is admitted (half-open),
    whose success closes it and whose failure opens it again. Errors for which ``exclude``
    returns true are the caller's business, not the dependency's: they pass through and count
    as a sign of life. ``on_change(name, old, new)`` hears every state change.
    """

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int,
        reset_timeout: float,
        call_timeout: float | None,
        clock: Clock,
        on_change: OnChange | None = None,
        exclude: Callable[[BaseException], bool] | None = None,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(
                f"breaker {name!r}: failure_threshold must be at least 1 (got {failure_threshold})"
            )
        if reset_timeout <= 0:
            raise ValueError(f"breaker {name!r}: reset_timeout must be positive (got {reset_timeout})")
        self.name = name
        self.call_timeout = call_timeout
        self._clock = clock
        self._trial_running = False
        self._impl = _ClockedBreaker(
            clock,
            reset_timeout,
            fail_max=failure_threshold,
            exclude=[exclude] if exclude is not None else [],
            listeners=[_Relay(name, on_change)],
            name=name,
        )

    @classmethod
    def from_settings(
        cls,
        name: str,
        settings: CircuitBreakerSettings,
        *,
        clock: Clock,
        on_change: OnChange | None = None,
        exclude: Callable[[BaseException], bool] | None = None,
        call_timeout: float | None = None,
    ) -> CircuitBreaker:
        """``resilience.circuit_breaker``; ``call_timeout`` overrides its ``timeout`` when given."""
        return cls(
            name,
            failure_threshold=settings.failure_threshold,
            reset_timeout=settings.reset_timeout,
            call_timeout=settings.timeout if call_timeout is None else call_timeout,
            clock=clock,
            on_change=on_change,
            exclude=exclude,
        )

    @property
    def state(self) -> BreakerState:
        return _state_name(self._impl.state)

    @property
    def failures(self) -> int:
        """Consecutive failures counted so far."""
        return int(self._impl.fail_counter)

    def seconds_until_trial(self) -> float:
        return self._impl.seconds_until_trial() if self.state is BreakerState.OPEN else 0.0

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``fn(*args)`` through the breaker; raises its own error, or :class:`BreakerOpenError`."""
        trial = self._admit()
        try:
            result: T = await self._impl.call_async(self._timed, fn, *args)
            return result
        finally:
            if trial:
                self._trial_running = False

    def _admit(self) -> bool:
        """Decide before any await whether this call may run; True if it is the half-open trial."""
        state = self.state
        if state is BreakerState.CLOSED:
            return False
        if state is BreakerState.OPEN:
            remaining = self._impl.seconds_until_trial()
            if remaining > 0:
                raise BreakerOpenError(self.name, remaining)
            # The library's open state moves to half-open inside call_async; claiming the trial
            # here, synchronously, is what keeps concurrent callers out (gap 1).
            self._trial_running = True
            return True
        if self._trial_running:
            raise BreakerOpenError(self.name, 0.0)
        self._trial_running = True
        return True

    async def _timed(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        if self.call_timeout is None:
            return await fn(*args)
        scope: asyncio.Timeout | None = None
        try:
            async with clock_timeout(self._clock, self.call_timeout) as scope:
                return await fn(*args)
        except TimeoutError:
            if scope is not None and scope.expired():
                raise TimeoutError(f"{self.name}: call took longer than {self.call_timeout:g} s") from None
            raise
