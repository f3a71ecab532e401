"""Random sequences of child crashes and normal exits against the reference model of OTP rules."""

from __future__ import annotations

import asyncio

import pytest
import uvloop
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.clock import FakeClock
from supervisors.spec import Restart, Strategy
from supervisors.supervisor import Supervisor, SupervisorGaveUp
from tests.linearity import examples
from tests.supervision_harness import Journal, SupervisionModel, controlled_specs

events = st.lists(
    st.tuples(st.integers(0, 20), st.booleans(), st.sampled_from([0.0, 0.5, 2.0, 6.0])),
    min_size=1,
    max_size=14,
)


async def _drive(
    restarts: list[Restart],
    strategy: Strategy,
    max_restarts: int,
    script: list[tuple[int, bool, float]],
) -> None:
    clock = FakeClock()
    journal = Journal()
    period = 10.0
    sup = Supervisor(
        "sut",
        controlled_specs(restarts, journal),
        strategy=strategy,
        max_restarts=max_restarts,
        period=period,
        clock=clock,
    )
    model = SupervisionModel(restarts, strategy, max_restarts, period)
    ready = asyncio.Event()
    task = asyncio.create_task(sup.run(ready.set))
    await ready.wait()
    assert journal.entries == model.journal
    for pick, crash, advance in script:
        await clock.advance(advance)
        if not model.running:
            break
        assert sup.running == model.running
        victim = model.running[pick % len(model.running)]
        old_task = sup.task_of(victim)
        assert old_task is not None
        journal.live[victim].finish(crash)
        model.exit(victim, crash, clock.monotonic())
        await asyncio.wait({old_task})
        if model.gave_up:
            with pytest.raises(SupervisorGaveUp):
                await asyncio.wait_for(task, 5)
            assert journal.entries == model.journal
            return
        await asyncio.wait_for(sup.wait_settled(), 5)
        assert journal.entries == model.journal, (journal.entries, model.journal)
        assert sup.running == model.running
    sup.request_stop()
    await asyncio.wait_for(task, 5)
    # Reverse order on the way down, whatever happened before.
    stops = journal.entries[len(model.journal) :]
    assert stops == [("stop", cid) for cid in reversed(model.running)]


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    restarts=st.lists(st.sampled_from(list(Restart)), min_size=1, max_size=5),
    strategy=st.sampled_from(list(Strategy)),
    max_restarts=st.integers(0, 4),
    script=events,
)
def test_supervisor_matches_the_otp_model(
    restarts: list[Restart], strategy: Strategy, max_restarts: int, script: list[tuple[int, bool, float]]
) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_drive(restarts, strategy, max_restarts, script))
