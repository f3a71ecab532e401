"""Retry with exponential backoff and full jitter, on an injected clock and random source.

Full jitter (AWS Architecture Blog, "Exponential Backoff and Jitter"): the n-th retry waits a
uniform delay in ``[0, min(max_delay, base_delay * exponential_base ** n)]``. Spreading retries
over the whole interval is what keeps many clients that failed together from retrying together.
The formula itself is :class:`supervisors.backoff.Backoff`'s, the one every retry loop uses.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from actors.clock import Clock
from leadlawk_daemon.settings import RetrySettings
from supervisors.backoff import Backoff, Jitter, RandomSource

__all__ = ["RandomSource", "Retrier", "RetryExhaustedError", "RetryPolicy"]

T = TypeVar("T")

OnRetry = Callable[[int, BaseException, float], None]
"""``on_retry(attempt_that_failed, error, delay)``, called before each backoff sleep."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 60.0
    exponential_base: float = 2.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(
                f"retry: max_attempts counts every attempt and must be at least 1 (got {self.max_attempts})"
            )
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError(f"retry: delays must not be negative (got {self.base_delay}, {self.max_delay})")
        if self.exponential_base < 1:
            raise ValueError(f"retry: exponential_base must be at least 1 (got {self.exponential_base})")

    @classmethod
    def from_settings(cls, settings: RetrySettings) -> RetryPolicy:
        return cls(
            max_attempts=settings.max_attempts,
            base_delay=settings.base_delay,
            max_delay=settings.max_delay,
            exponential_base=settings.exponential_base,
            jitter=settings.jitter,
        )

    @property
    def backoff(self) -> Backoff:
        jitter = Jitter.FULL if self.jitter else Jitter.NONE
        return Backoff(self.base_delay, self.max_delay, self.exponential_base, jitter)

    def ceiling(self, retry: int) -> float:
        """The backoff before retry number ``retry`` (0 for the second attempt), before jitter."""
        return self.backoff.ceiling(retry)

    def delay(self, retry: int, rng: RandomSource) -> float:
        return self.backoff.delay(retry, rng)


class RetryExhaustedError(Exception):
    """Every attempt failed with a retryable error; ``last`` is the final one."""

    def __init__(self, what: str, attempts: int, last: BaseException) -> None:
        super().__init__(f"{what}: gave up after {attempts} attempts ({type(last).__name__}: {last})")
        self.attempts = attempts
        self.last = last


class Retrier:
    """Calls a function until it succeeds, fails with a non-retryable error, or attempts run out.

    A non-retryable error propagates at once, unchanged. When the attempts are spent the last
    error is raised wrapped in :class:`RetryExhaustedError`. An error carrying a ``retry_after``
    attribute (seconds; a breaker's time to its next trial, say) stretches the delay to at least
    that, so a retry does not knock on a door known to be shut.
    """

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        clock: Clock,
        retryable: Callable[[BaseException], bool],
        rng: RandomSource | None = None,
        on_retry: OnRetry | None = None,
        name: str = "call",
    ) -> None:
        self.policy = policy
        self._clock = clock
        self._retryable = retryable
        self._rng: RandomSource = rng if rng is not None else random.Random()
        self._on_retry = on_retry
        self._name = name

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        attempt = 0
        while True:
            attempt += 1
            try:
                return await fn(*args)
            except Exception as exc:
                if not self._retryable(exc):
                    raise
                if attempt >= self.policy.max_attempts:
                    raise RetryExhaustedError(self._name, attempt, exc) from exc
                delay = self.policy.delay(attempt - 1, self._rng)
                hint = getattr(exc, "retry_after", None)
                if isinstance(hint, int | float) and hint > delay:
                    delay = float(hint)
                if self._on_retry is not None:
                    self._on_retry(attempt, exc, delay)
            await self._clock.sleep(delay)
