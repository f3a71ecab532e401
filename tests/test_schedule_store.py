"""Schedules in the store, on both backends: definitions, claims, and a fire written once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from leadlawk_daemon.schedules.schedule import Fire, ScheduleDefinition, parse_schedule
from leadlawk_daemon.store.schedules import FireDecision, JobToCreate
from leadlawk_daemon.store.sql_store import SqlStore
from tests.test_store import clock, db_url, store  # noqa: F401  # the two-backend fixtures
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(60)

T0 = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
SPEC = {"query": "plumbers", "location": "Omaha, NE", "limit": 20}


def definition(name: str = "Nightly plumbers", **fields: object) -> ScheduleDefinition:
    return parse_schedule({"name": name, "spec": SPEC, "cron": "0 2 * * *", "tz": "America/Chicago", **fields},
                          max_bytes=65_536)  # fmt: skip


@pytest.fixture
def schedules(store: SqlStore) -> SqlStore:  # noqa: F811  # the imported two-backend fixture
    return store


async def record(
    schedules: SqlStore,
    schedule_id: str,
    expected_due: datetime | None,
    next_due_at: datetime | None,
    fires: list[Fire],
    job: JobToCreate | None = None,
) -> bool:
    """One fire decision, written as a batch of one."""
    [written] = await schedules.record_fire_batch([FireDecision(schedule_id, expected_due, next_due_at, fires, job)])
    return written


async def test_a_schedule_is_stored_listed_changed_paused_and_removed(schedules: SqlStore) -> None:
    d = definition(deliver=["sales-webhook"], overlap="queue", catch_up="none")
    assert await schedules.add_schedule(d, T0, T0)
    assert not await schedules.add_schedule(d, T0, T0), "an id is taken once"
    stored = await schedules.get_schedule("nightly-plumbers")
    assert stored is not None
    assert (stored.name, stored.cron, stored.tz, stored.catch_up, stored.overlap) == (
        "Nightly plumbers",
        "0 2 * * *",
        "America/Chicago",
        "none",
        "queue",
    )
    assert stored.deliver == ("sales-webhook",)
    assert stored.deliver_empty is True
    assert stored.paused is False
    assert stored.spec["query"] == "plumbers"
    assert "id" not in stored.spec
    assert stored.next_due_at == T0
    assert stored.job_spec("s-x")["notify"] == ["sales-webhook"]

    changed = definition(cron="30 3 * * 1-5", deliver_empty=False)
    assert await schedules.replace_schedule(changed, T0 + timedelta(hours=1), T0)
    again = await schedules.get_schedule("nightly-plumbers")
    assert again is not None
    assert again.cron == "30 3 * * 1-5"
    assert again.deliver_empty is False
    assert again.next_due_at == T0 + timedelta(hours=1)

    assert await schedules.set_paused("nightly-plumbers", True, None, T0)
    assert [s.paused for s in await schedules.list_schedules()] == [True]
    assert await schedules.claim_due("a", T0 + timedelta(days=9), 10, 30.0) == [], "a paused schedule never fires"
    assert await schedules.earliest_due() is None
    assert await schedules.set_paused("nightly-plumbers", False, T0 + timedelta(days=1), T0)
    assert await schedules.earliest_due() == T0 + timedelta(days=1)

    assert await schedules.remove_schedule("nightly-plumbers")
    assert await schedules.get_schedule("nightly-plumbers") is None
    assert not await schedules.remove_schedule("nightly-plumbers")


async def test_a_claim_keeps_other_daemons_off_until_it_lapses(schedules: SqlStore) -> None:
    await schedules.add_schedule(definition("due"), T0, T0)
    await schedules.add_schedule(definition("later"), T0 + timedelta(hours=1), T0)
    claimed = await schedules.claim_due("daemon-a", T0 + timedelta(minutes=1), 10, 30.0)
    assert [s.id for s in claimed] == ["due"]
    assert await schedules.claim_due("daemon-b", T0 + timedelta(minutes=1), 10, 30.0) == []
    # daemon-a dies holding it: once its claim lapses (on the database's clock), another takes it.
    await schedules.claim_due("daemon-a", T0 + timedelta(minutes=1), 10, 0.05)
    taken = await eventually(
        lambda: schedules.claim_due("daemon-b", T0 + timedelta(minutes=1), 10, 30.0), 5.0, "the claim to lapse", 0.02
    )
    assert [s.id for s in taken] == ["due"]


async def test_a_due_time_is_written_once_with_its_job(schedules: SqlStore) -> None:
    await schedules.add_schedule(definition("due"), T0, T0)
    fire = Fire("due", T0, "fired", T0 + timedelta(seconds=1), "s-due-20261207T0800Z")
    job: JobToCreate = ("s-due-20261207T0800Z", {**SPEC, "id": "s-due-20261207T0800Z"}, [])
    nxt = T0 + timedelta(days=1)
    assert await record(schedules, "due", T0, nxt, [fire], job)
    # A second daemon that read the same next_due_at: nothing changes, nothing is added.
    assert not await record(schedules, "due", T0, nxt, [fire], job)
    assert [(f.due_at, f.outcome, f.job_id) for f in await schedules.fires_of("due")] == [
        (T0, "fired", "s-due-20261207T0800Z")
    ]
    stored = await schedules.get_job("s-due-20261207T0800Z")
    assert stored is not None
    assert stored.status == "queued"
    assert (await schedules.get_schedule("due")).next_due_at == nxt  # type: ignore[union-attr]
    assert await schedules.schedule_of_job("s-due-20261207T0800Z") == "due"
    # A job of that id exists (a fire whose move-on was lost): the whole transaction is refused.
    await schedules.add_schedule(definition("other"), T0, T0)
    assert not await record(schedules, "other", T0, nxt, [Fire("other", T0, "fired", T0, job[0])], job)
    assert (await schedules.get_schedule("other")).next_due_at == T0  # type: ignore[union-attr]
    assert await schedules.fires_of("other") == []


async def test_a_batch_writes_each_decision_all_or_nothing(schedules: SqlStore) -> None:
    for name in ("fresh", "fired-before"):
        await schedules.add_schedule(definition(name), T0, T0)
    nxt = T0 + timedelta(days=1)
    taken: JobToCreate = ("s-taken", {**SPEC, "id": "s-taken"}, [])
    fresh: JobToCreate = ("s-fresh", {**SPEC, "id": "s-fresh"}, [])
    assert await schedules.create_job(*taken[:2])  # a job of that id exists: that decision's fire happened
    decisions = [
        FireDecision("fired-before", T0, nxt, [Fire("fired-before", T0, "fired", T0, "s-taken")], taken),
        FireDecision("fresh", T0, nxt, [Fire("fresh", T0, "fired", T0, "s-fresh")], fresh),
    ]
    assert await schedules.record_fire_batch(decisions) == [False, True]
    # The refused decision left nothing: its schedule did not move on, no fire row is written.
    assert (await schedules.get_schedule("fired-before")).next_due_at == T0  # type: ignore[union-attr]
    assert await schedules.fires_of("fired-before") == []
    # The other one, in the same transaction, is written whole.
    assert (await schedules.get_schedule("fresh")).next_due_at == nxt  # type: ignore[union-attr]
    assert [f.job_id for f in await schedules.fires_of("fresh")] == ["s-fresh"]
    assert await schedules.get_job("s-fresh") is not None


async def test_a_queued_fire_waits_for_the_previous_job(schedules: SqlStore) -> None:
    await schedules.add_schedule(definition("q", overlap="queue"), T0, T0)
    first: JobToCreate = ("s-q-1", {**SPEC, "id": "s-q-1"}, [])
    assert await record(schedules, "q", T0, T0 + timedelta(hours=1), [Fire("q", T0, "fired", T0, "s-q-1")], first)
    assert await schedules.previous_fire("q") == ("fired", "queued")
    later = T0 + timedelta(hours=1)
    queued = Fire("q", later, "queued", later, "s-q-2")
    assert await record(schedules, "q", later, later + timedelta(hours=1), [queued])
    assert await schedules.previous_fire("q") == ("queued", None)
    assert await schedules.waiting_fires(10) == [], "the previous job is still queued"
    lease = await schedules.lease_next_job("owner", 30.0)
    assert lease is not None
    assert lease.id == "s-q-1"
    assert await schedules.waiting_fires(10) == [], "... and then running"
    assert await schedules.finish_job("s-q-1", "owner", "succeeded")
    waiting = await schedules.waiting_fires(10)
    assert [(w.schedule.id, w.due_at, w.job_id) for w in waiting] == [("q", later, "s-q-2")]


async def test_recent_fires_are_the_last_five_of_each_newest_first(schedules: SqlStore) -> None:
    for name in ("a", "b"):
        await schedules.add_schedule(definition(name), T0, T0)
    for i in range(7):
        due = T0 + timedelta(hours=i)
        await record(schedules, "a", None, None, [Fire("a", due, "missed", due)])
    await record(schedules, "b", None, None, [Fire("b", T0, "skipped_overlap", T0)])
    recent = await schedules.recent_fires(["a", "b"], 5)
    assert [f.due_at for f in recent["a"]] == [T0 + timedelta(hours=i) for i in (6, 5, 4, 3, 2)]
    assert [f.outcome for f in recent["b"]] == ["skipped_overlap"]


async def test_the_database_clock_is_read(schedules: SqlStore) -> None:
    now = await schedules.database_now()
    assert now.tzinfo is not None
    assert abs((now - datetime.now(UTC)).total_seconds()) < 60
