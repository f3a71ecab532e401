"""Retry: exponential backoff with full jitter, only for retryable errors, on a FakeClock."""

from __future__ import annotations

import asyncio
import random

import pytest

from actors.clock import FakeClock
from leadlawk_daemon.resilience.retry import Retrier, RetryExhaustedError, RetryPolicy
from leadlawk_daemon.settings import load_settings


class Flaky(Exception):
    pass


class Fatal(Exception):
    pass


def retryable(exc: BaseException) -> bool:
    return isinstance(exc, Flaky)


async def drive(clock: FakeClock, task: asyncio.Task[object]) -> None:
    """Advance the clock through every backoff sleep until the task ends."""
    while not task.done():
        deadline = clock.next_deadline()
        if deadline is None:
            await asyncio.sleep(0)
            continue
        await clock.advance(deadline - clock.monotonic())


async def test_backoff_without_jitter_doubles_up_to_the_cap() -> None:
    clock = FakeClock()
    delays: list[float] = []
    policy = RetryPolicy(max_attempts=8, base_delay=1.0, max_delay=20.0, exponential_base=2, jitter=False)
    retrier = Retrier(policy, clock=clock, retryable=retryable, on_retry=lambda _n, _e, d: delays.append(d))
    calls = 0

    async def always() -> None:
        nonlocal calls
        calls += 1
        raise Flaky("try again")

    start = clock.monotonic()
    task: asyncio.Task[object] = asyncio.create_task(retrier.call(always))
    await drive(clock, task)
    with pytest.raises(RetryExhaustedError, match="gave up after 8 attempts") as exhausted:
        await task
    assert isinstance(exhausted.value.last, Flaky)
    assert calls == 8
    assert delays == [1, 2, 4, 8, 16, 20, 20]
    assert clock.monotonic() - start == pytest.approx(sum(delays))


async def test_full_jitter_draws_uniformly_below_each_ceiling() -> None:
    clock = FakeClock()
    delays: list[float] = []
    policy = RetryPolicy(max_attempts=5, base_delay=1.0, max_delay=60.0, exponential_base=2, jitter=True)
    retrier = Retrier(
        policy,
        clock=clock,
        retryable=retryable,
        rng=random.Random(7),
        on_retry=lambda _n, _e, d: delays.append(d),
    )
    attempts = 0

    async def third_time_lucky() -> str:
        nonlocal attempts
        attempts += 1
        if attempts < 5:
            raise Flaky("not yet")
        return "done"

    task: asyncio.Task[object] = asyncio.create_task(retrier.call(third_time_lucky))
    await drive(clock, task)
    assert await task == "done"
    expected = random.Random(7)
    assert delays == [expected.uniform(0, cap) for cap in (1, 2, 4, 8)]
    assert all(0 <= d <= cap for d, cap in zip(delays, (1, 2, 4, 8), strict=True))


async def test_non_retryable_error_propagates_after_one_attempt() -> None:
    clock = FakeClock()
    retried: list[int] = []
    retrier = Retrier(
        RetryPolicy(), clock=clock, retryable=retryable, on_retry=lambda n, _e, _d: retried.append(n)
    )

    async def broken() -> None:
        raise Fatal("bad request")

    with pytest.raises(Fatal, match="bad request"):
        await retrier.call(broken)
    assert retried == []


async def test_retry_after_hint_stretches_the_delay() -> None:
    clock = FakeClock()
    delays: list[float] = []

    class Shut(Flaky):
        retry_after = 45.0

    retrier = Retrier(
        RetryPolicy(max_attempts=2, jitter=False),
        clock=clock,
        retryable=retryable,
        on_retry=lambda _n, _e, d: delays.append(d),
    )
    attempts = 0

    async def once_shut() -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise Shut("breaker open")
        return "ok"

    task: asyncio.Task[object] = asyncio.create_task(retrier.call(once_shut))
    await drive(clock, task)
    assert await task == "ok"
    assert delays == [45.0]


def test_policy_from_the_design_configuration() -> None:
    policy = RetryPolicy.from_settings(load_settings(environ={}).resilience.retry)
    assert (policy.max_attempts, policy.base_delay, policy.max_delay) == (5, 1.0, 60.0)
    assert [policy.ceiling(n) for n in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert policy.ceiling(10_000) == 60.0


def test_bad_policy_is_named() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
