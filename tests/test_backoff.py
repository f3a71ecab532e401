"""The one backoff formula: properties of every jitter mode, the sequence's reset, its sleeps on a
FakeClock, and the waits of the loops that use it."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections.abc import AsyncIterator
from typing import cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.clock import FakeClock
from actors.dead_letters import DeadLetter
from leadlawk_daemon.database import DatabaseService
from leadlawk_daemon.dead_letter_writer import DeadLetterWriter
from leadlawk_daemon.metrics import Metrics
from leadlawk_daemon.settings import load_settings
from leadlawk_daemon.store import Store
from supervisors.backoff import Backoff, Jitter, RestartBackoff
from tests.waiting import eventually

bases = st.floats(min_value=0.0, max_value=100.0, allow_nan=False)
caps = st.floats(min_value=0.0, max_value=3600.0, allow_nan=False)
factors = st.floats(min_value=1.0, max_value=10.0, allow_nan=False)
spreads = st.floats(min_value=0.0, max_value=10.0, allow_nan=False)
exponents = st.integers(min_value=0, max_value=5000)
seeds = st.integers(min_value=0, max_value=2**32 - 1)


any_jitter = st.sampled_from(Jitter)


@st.composite
def backoffs(draw: st.DrawFn, jitter: st.SearchStrategy[Jitter] = any_jitter) -> Backoff:
    return Backoff(draw(bases), draw(caps), draw(factors), draw(jitter), draw(spreads))


@given(backoffs(), exponents, seeds)
def test_every_delay_lies_within_zero_and_the_upper_bound(backoff: Backoff, n: int, seed: int) -> None:
    delay = backoff.delay(n, random.Random(seed))
    assert 0.0 <= delay <= backoff.upper
    if backoff.jitter is not Jitter.STRETCH:
        assert backoff.upper == backoff.cap  # only the supervisors' stretch may pass the cap


@given(backoffs(st.just(Jitter.NONE)), st.integers(min_value=0, max_value=60))
def test_without_jitter_the_sequence_is_base_times_factor_to_the_n_capped(backoff: Backoff, length: int) -> None:
    rng = random.Random(0)
    delays = [backoff.delay(n, rng) for n in range(length)]
    assert delays == [min(backoff.cap, backoff.base * backoff.factor**n) for n in range(length)]
    assert all(a <= b for a, b in itertools.pairwise(delays))  # never shorter than before


@given(backoffs(), exponents)
def test_the_ceiling_never_exceeds_the_cap_nor_overflows(backoff: Backoff, n: int) -> None:
    ceiling = backoff.ceiling(n)
    assert 0.0 <= ceiling <= backoff.cap
    assert ceiling == min(backoff.cap, ceiling)


@given(backoffs(st.just(Jitter.FULL)), exponents, seeds)
def test_full_jitter_stays_within_zero_and_the_ceiling(backoff: Backoff, n: int, seed: int) -> None:
    assert 0.0 <= backoff.delay(n, random.Random(seed)) <= backoff.ceiling(n)


@given(backoffs(st.just(Jitter.EQUAL)), exponents, seeds)
def test_equal_jitter_stays_within_half_the_ceiling_and_the_ceiling(backoff: Backoff, n: int, seed: int) -> None:
    ceiling = backoff.ceiling(n)
    assert ceiling / 2 <= backoff.delay(n, random.Random(seed)) <= ceiling


@given(backoffs(st.just(Jitter.STRETCH)), exponents, seeds)
def test_stretch_is_never_shorter_than_the_ceiling(backoff: Backoff, n: int, seed: int) -> None:
    ceiling = backoff.ceiling(n)
    assert ceiling <= backoff.delay(n, random.Random(seed)) <= ceiling * (1.0 + backoff.spread)


def test_jitter_really_varies_and_spreads_over_its_envelope() -> None:
    rng = random.Random(7)
    full = [Backoff(1.0, 60.0, jitter=Jitter.FULL).delay(3, rng) for _ in range(1000)]
    equal = [Backoff(1.0, 60.0, jitter=Jitter.EQUAL).delay(3, rng) for _ in range(1000)]
    # The whole of [0, 8] and of [4, 8], not a corner of them.
    assert min(full) < 1.0
    assert max(full) > 7.0
    assert min(equal) < 4.5
    assert max(equal) > 7.5


def envelope(backoff: Backoff, n: int) -> tuple[float, float]:
    """Where the n-th delay may fall, by jitter mode."""
    ceiling = backoff.ceiling(n)
    match backoff.jitter:
        case Jitter.NONE:
            return ceiling, ceiling
        case Jitter.FULL:
            return 0.0, ceiling
        case Jitter.EQUAL:
            return ceiling / 2, ceiling
        case Jitter.STRETCH:
            return ceiling, ceiling * (1.0 + backoff.spread)


@given(backoffs(), st.integers(min_value=1, max_value=40), seeds)
def test_reset_after_a_success_starts_over(backoff: Backoff, failures: int, seed: int) -> None:
    sequence = backoff.sequence(random.Random(seed))
    for n in range(failures):
        low, high = envelope(backoff, n)
        assert low <= sequence.next() <= high
    sequence.reset()
    assert sequence.failures == 0
    low, high = envelope(backoff, 0)
    assert low <= sequence.next() <= high
    assert sequence.failures == 1


@given(backoffs(st.just(Jitter.NONE)), st.integers(min_value=0, max_value=40))
def test_a_reset_sequence_waits_the_shortest_delay_again(backoff: Backoff, failures: int) -> None:
    sequence = backoff.sequence()
    for _ in range(failures):
        sequence.next()
    assert sequence.current() == backoff.ceiling(failures)
    sequence.reset()
    assert sequence.next() == backoff.ceiling(0)
    assert sequence.failures == 1


def test_current_counts_no_failure() -> None:
    sequence = Backoff(0.25, 5.0).sequence()
    assert [sequence.current(), sequence.current()] == [0.25, 0.25]
    assert [sequence.next(), sequence.next(), sequence.current()] == [0.25, 0.5, 1.0]


async def test_wait_sleeps_each_delay_on_the_injected_clock() -> None:
    clock = FakeClock()
    sequence = Backoff(0.1, 1.0).sequence()
    expected = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    start = clock.monotonic()
    for delay in expected:
        task = asyncio.create_task(sequence.wait(clock))
        await clock.wait_for_sleepers(1)
        assert not task.done()  # it waits on the clock, not on real time
        await clock.advance(delay)
        assert await asyncio.wait_for(task, 5) == pytest.approx(delay)
    assert clock.monotonic() - start == pytest.approx(sum(expected))


def test_a_zero_base_never_waits() -> None:
    rng = random.Random(3)
    for jitter in Jitter:
        assert [Backoff(0.0, 10.0, jitter=jitter, spread=1.0).delay(n, rng) for n in range(5)] == [0.0] * 5


@pytest.mark.parametrize(
    ("base", "cap", "factor", "spread"),
    [(-1.0, 1.0, 2.0, 0.0), (1.0, -1.0, 2.0, 0.0), (1.0, 1.0, 0.5, 0.0), (1.0, 1.0, 2.0, -0.1)],
)
def test_nonsense_is_refused(base: float, cap: float, factor: float, spread: float) -> None:
    with pytest.raises(ValueError, match="backoff:"):
        Backoff(base, cap, factor, Jitter.STRETCH, spread)


@given(
    st.floats(min_value=0.0, max_value=10.0),
    st.floats(min_value=0.0, max_value=600.0),
    st.floats(min_value=0.0, max_value=10.0),
    st.integers(min_value=0, max_value=100),
    seeds,
)
def test_restart_backoff_is_the_stretch_mode_of_the_same_formula(
    minimum: float, maximum: float, jitter: float, attempt: int, seed: int
) -> None:
    restart = RestartBackoff(minimum, maximum, jitter)
    stretch = Backoff(minimum, maximum, jitter=Jitter.STRETCH, spread=jitter)
    assert restart.delay(attempt, random.Random(seed)) == stretch.delay(attempt, random.Random(seed))


def test_each_callers_mode_is_unchanged() -> None:
    """The formulas the retry loops wrote out before they shared this one, draw for draw."""
    for n in range(0, 40):
        a, b = random.Random(n), random.Random(n)
        # the scraper's outage wait: full jitter from 0.5 s to 10 s, counted from the first try
        assert Backoff(0.5, 10.0, jitter=Jitter.FULL).delay(n, a) == b.uniform(0, min(10.0, 0.5 * 2 ** min(n, 16)))
        # the writer's flush retry: equal jitter
        ceiling = min(2.0, 0.05 * 2 ** min(n, 16))
        assert Backoff(0.05, 2.0, jitter=Jitter.EQUAL).delay(n, a) == b.uniform(ceiling / 2, ceiling)
        # the supervisors' restarts: stretched by up to half
        base = min(5.0, 1.0 * (2.0 ** min(n, 62)))
        assert RestartBackoff(1.0, 5.0, 0.5).delay(n, a) == base * (1.0 + b.random() * 0.5)
        # the coordinator's hand-back after a driver crash: no jitter
        assert Backoff(1.0, 60.0).ceiling(n) == min(60.0, 2.0**n)


async def _sleeps(clock: FakeClock, count: int) -> list[float]:
    """The next ``count`` waits the code under test sleeps on ``clock``, each one let pass."""
    delays: list[float] = []
    for _ in range(count):
        await clock.wait_for_sleepers(1)
        deadline = clock.next_deadline()
        assert deadline is not None
        delays.append(deadline - clock.monotonic())
        await clock.advance(delays[-1])
    return delays


class RefusingStore:
    """A store that refuses the next ``refusals`` dead letters, then keeps them."""

    def __init__(self) -> None:
        self.refusals = 0
        self.kept: list[str] = []

    async def add_dead_letter(self, kind: str, payload: object, reason: str, attempts: int = 1) -> int:
        if self.refusals:
            self.refusals -= 1
            raise ConnectionError("database down")
        self.kept.append(reason)
        return len(self.kept)


async def test_the_dead_letter_writer_doubles_its_wait_to_5s_and_starts_over_after_a_success() -> None:
    clock = FakeClock()
    writer = DeadLetterWriter(Metrics(process=False), clock=clock)
    store = RefusingStore()
    writer.store = cast(Store, store)
    task = asyncio.create_task(writer.run(lambda: None))
    try:
        store.refusals = 7
        writer.dead_letter(DeadLetter("message", {"n": 1}, "first", 3, "test"))
        assert await _sleeps(clock, 7) == [0.25, 0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
        await eventually(lambda: store.kept == ["test: first"], what="the letter kept once the store took it")
        store.refusals = 2
        writer.dead_letter(DeadLetter("message", {"n": 2}, "second", 3, "test"))
        assert await _sleeps(clock, 2) == [0.25, 0.5]  # a success reset the wait
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_the_database_service_doubles_its_wait_to_its_ceiling(monkeypatch: pytest.MonkeyPatch) -> None:
    @contextlib.asynccontextmanager
    async def refused(*_args: object, **_kwargs: object) -> AsyncIterator[Store]:
        raise ConnectionError("connection refused")
        yield  # an async generator that never yields a store

    monkeypatch.setattr("leadlawk_daemon.database.open_store_from_settings", refused)
    clock = FakeClock()
    service = DatabaseService(load_settings(environ={}).database, clock=clock, max_delay=10.0)
    task = asyncio.create_task(service.run(lambda: None))
    try:
        assert await _sleeps(clock, 8) == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
        assert service.last_error == "ConnectionError: connection refused"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
