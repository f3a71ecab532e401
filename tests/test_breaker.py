"""The circuit breaker: aiobreaker's four gaps closed, on a FakeClock, in UTC and in Tokyo."""

from __future__ import annotations

import asyncio
import os
import time
import warnings
from collections.abc import Iterator

import pytest
from aiobreaker import CircuitBreaker as LibraryBreaker

from actors.clock import FakeClock
from leadlawk_daemon.resilience.breaker import BreakerOpenError, CircuitBreaker


class Down(Exception):
    pass


class NotTheirFault(Exception):
    pass


@pytest.fixture(params=["UTC", "Asia/Tokyo"])
def host_tz(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run the test as on a host whose local time zone is this one."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = request.param
    time.tzset()
    yield request.param
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


def make(clock: FakeClock, changes: list[tuple[str, str]], **kw: object) -> CircuitBreaker:
    params: dict[str, object] = {"failure_threshold": 3, "reset_timeout": 60.0, "call_timeout": 30.0}
    params.update(kw)
    return CircuitBreaker(
        "pagespeed",
        clock=clock,
        on_change=lambda _name, old, new: changes.append((old.value, new.value)),
        **params,  # type: ignore[arg-type]
    )


async def fail() -> None:
    raise Down("service down")


async def ok() -> str:
    return "ok"


async def trip(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        with pytest.raises(Down):
            await breaker.call(fail)


async def test_opens_at_threshold_and_the_tripping_call_raises_the_original_error(host_tz: str) -> None:
    clock = FakeClock()
    changes: list[tuple[str, str]] = []
    breaker = make(clock, changes)
    await trip(breaker, 2)
    assert breaker.state.value == "closed"
    # The third failure opens it, and the caller still sees what went wrong (gap 4).
    with pytest.raises(Down, match="service down"):
        await breaker.call(fail)
    assert breaker.state.value == "open"
    assert changes == [("closed", "open")]
    calls = 0

    async def counted() -> str:
        nonlocal calls
        calls += 1
        return "ok"

    with pytest.raises(BreakerOpenError) as refused:
        await breaker.call(counted)
    assert calls == 0
    assert refused.value.retry_after == pytest.approx(60.0)
    assert "next trial in 60.0 s" in str(refused.value)


async def test_half_open_admits_exactly_one_trial_and_its_success_closes(host_tz: str) -> None:
    clock = FakeClock()
    changes: list[tuple[str, str]] = []
    breaker = make(clock, changes)
    await trip(breaker, 3)
    await clock.advance(59.0)
    with pytest.raises(BreakerOpenError):
        await breaker.call(ok)
    await clock.advance(1.0)

    release = asyncio.Event()
    started = 0

    async def slow_trial() -> str:
        nonlocal started
        started += 1
        await release.wait()
        return "recovered"

    trial = asyncio.create_task(breaker.call(slow_trial))
    await asyncio.sleep(0)
    assert breaker.state.value == "half_open"
    others = await asyncio.gather(*(breaker.call(slow_trial) for _ in range(5)), return_exceptions=True)
    assert all(isinstance(err, BreakerOpenError) for err in others)
    assert started == 1
    release.set()
    assert await trial == "recovered"
    assert breaker.state.value == "closed"
    assert changes == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
    assert await breaker.call(ok) == "ok"


async def test_failed_trial_reopens_for_another_reset_timeout(host_tz: str) -> None:
    clock = FakeClock()
    changes: list[tuple[str, str]] = []
    breaker = make(clock, changes)
    await trip(breaker, 3)
    await clock.advance(60.0)
    with pytest.raises(Down):
        await breaker.call(fail)
    assert breaker.state.value == "open"
    assert breaker.seconds_until_trial() == pytest.approx(60.0)
    await clock.advance(30.0)
    with pytest.raises(BreakerOpenError):
        await breaker.call(ok)
    await clock.advance(30.0)
    assert await breaker.call(ok) == "ok"
    assert changes[-3:] == [("half_open", "open"), ("open", "half_open"), ("half_open", "closed")]


async def test_a_call_longer_than_the_timeout_counts_as_a_failure() -> None:
    clock = FakeClock()
    breaker = make(clock, [], failure_threshold=1, call_timeout=30.0)
    hung = asyncio.create_task(breaker.call(asyncio.Event().wait))
    await clock.wait_for_sleepers(1)
    await clock.advance(30.0)
    with pytest.raises(TimeoutError, match="longer than 30 s"):
        await hung
    assert breaker.state.value == "open"


async def test_errors_that_are_not_the_dependencys_fault_do_not_count() -> None:
    clock = FakeClock()
    breaker = make(clock, [], exclude=lambda exc: isinstance(exc, NotTheirFault))

    async def bad_request() -> None:
        raise NotTheirFault("bad url")

    for _ in range(10):
        with pytest.raises(NotTheirFault):
            await breaker.call(bad_request)
    assert breaker.state.value == "closed"
    await trip(breaker, 2)
    # An excluded error is a sign of life: it resets the run of failures.
    with pytest.raises(NotTheirFault):
        await breaker.call(bad_request)
    await trip(breaker, 2)
    assert breaker.state.value == "closed"


async def test_library_breaker_miscounts_on_a_tokyo_host_and_ours_does_not() -> None:
    """Gaps 2 and 3: aiobreaker mixes utcnow() with local now(); ours reads the injected clock."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Tokyo"
    time.tzset()
    try:
        with warnings.catch_warnings():
            # 3.11 does not warn about utcnow(); this only lets the demonstration run on 3.12+.
            warnings.simplefilter("ignore", DeprecationWarning)
            library = LibraryBreaker(fail_max=1)
            library.open()
            # Opened a moment ago with a 60 s timeout, yet it reports no reopen time at all.
            assert library.opens_at is None

        clock = FakeClock()
        breaker = make(clock, [], failure_threshold=1)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(Down):
                await breaker.call(fail)
            with pytest.raises(BreakerOpenError) as refused:
                await breaker.call(ok)
        assert refused.value.time_remaining.total_seconds() == pytest.approx(60.0)
        impl_opened_at = breaker._impl._state_storage.opened_at
        assert impl_opened_at.tzinfo is not None
        assert impl_opened_at.timestamp() == pytest.approx(clock.wall())
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


def test_bad_parameters_are_named() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker("x", failure_threshold=0, reset_timeout=1, call_timeout=None, clock=FakeClock())
