"""The firing loop in one process, over a real store (both backends), its schedule clock moved by
hand: overlap skip and queue, catch_up after downtime, a spec that no longer validates, run-now."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from leadlawk_daemon.intake.admission import Admission, JobStore
from leadlawk_daemon.schedules.book import ScheduleBook
from leadlawk_daemon.schedules.clock import ScheduleClock
from leadlawk_daemon.schedules.firing import FiringLimits, ScheduleFiring
from leadlawk_daemon.store.sql_store import SqlStore
from tests.test_store import clock, db_url, store  # noqa: F401  # the two-backend fixtures

pytestmark = pytest.mark.timeout(60)

T0 = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)


class HandTime:
    """A schedule clock a test moves: the database's clock, as far as the loop can tell."""

    def __init__(self, now: datetime) -> None:
        self.at = now

    async def now(self) -> datetime:
        return self.at

    def real_seconds(self, seconds: float) -> float:
        return seconds

    def schedule_seconds(self, seconds: float) -> float:
        return 0.0  # it moves only by hand


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def publish(self, type: str, /, **context: Any) -> None:
        self.seen.append((type, context))


class Rig:
    def __init__(self, db: SqlStore) -> None:
        self.store = db
        self.time = HandTime(T0)
        self.events = Events()
        self.jobs_made = 0

        def admission(jobs: JobStore) -> Admission:
            return Admission(jobs, db, self.events, max_bytes=65_536, queue_size=None)

        def made() -> None:
            self.jobs_made += 1

        def schedule_clock(_: SqlStore) -> ScheduleClock:
            return self.time

        self.firing = ScheduleFiring(
            lambda: db, admission, owner="daemon-a", limits=FiringLimits(grace=60.0),
            schedule_clock=schedule_clock, on_job=made,
        )  # fmt: skip
        self.book = ScheduleBook(db, admission, max_bytes=65_536, schedule_clock=schedule_clock)

    async def at(self, when: datetime) -> None:
        self.time.at = when
        await self.firing.run_pass()

    async def fires(self, schedule_id: str) -> list[tuple[str, str, str | None]]:
        return [(f.due_at.strftime("%H:%M"), f.outcome, f.job_id) for f in await self.store.fires_of(schedule_id)]

    async def finish(self, job_id: str) -> None:
        lease = await self.store.lease_next_job("runner", 30.0)
        assert lease is not None
        assert lease.id == job_id
        assert await self.store.finish_job(job_id, "runner", "succeeded")


@pytest.fixture
def rig(store: SqlStore) -> Rig:  # noqa: F811  # the imported two-backend fixture
    return Rig(store)


def hourly(name: str, **fields: object) -> Mapping[str, Any]:
    return {"name": name, "spec": {"query": "plumbers", "location": "Omaha, NE"}, "cron": "0 * * * *", "tz": "UTC",
            **fields}  # fmt: skip


async def test_overlap_skip_skips_a_due_time_while_the_previous_job_runs(rig: Rig) -> None:
    view = await rig.book.add(hourly("skipper", overlap="skip"))
    assert view.schedule.next_due_at == datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
    await rig.at(datetime(2026, 12, 7, 10, 0, 1, tzinfo=UTC))
    await rig.at(datetime(2026, 12, 7, 11, 0, 1, tzinfo=UTC))  # 10:00's job is still queued
    await rig.finish("s-skipper-20261207T1000Z")
    await rig.at(datetime(2026, 12, 7, 12, 0, 1, tzinfo=UTC))
    assert await rig.fires("skipper") == [
        ("10:00", "fired", "s-skipper-20261207T1000Z"),
        ("11:00", "skipped_overlap", None),
        ("12:00", "fired", "s-skipper-20261207T1200Z"),
    ]
    job = await rig.store.get_job("s-skipper-20261207T1200Z")
    assert job is not None
    assert job.status == "queued"
    assert job.spec["query"] == "plumbers"
    assert rig.jobs_made == 2
    accepted = [c for t, c in rig.events.seen if t == "job.accepted"]
    assert [(c["source"], c["schedule_id"]) for c in accepted] == [("schedule", "skipper")] * 2


async def test_overlap_queue_runs_the_due_time_after_the_previous_job_once(rig: Rig) -> None:
    await rig.book.add(hourly("queuer", overlap="queue"))
    await rig.at(datetime(2026, 12, 7, 10, 0, 1, tzinfo=UTC))
    await rig.at(datetime(2026, 12, 7, 11, 0, 1, tzinfo=UTC))
    assert await rig.store.get_job("s-queuer-20261207T1100Z") is None, "queued behind 10:00's job, not beside it"
    await rig.at(datetime(2026, 12, 7, 12, 0, 1, tzinfo=UTC))  # one fire waits already: this one is skipped
    await rig.finish("s-queuer-20261207T1000Z")
    await rig.at(datetime(2026, 12, 7, 12, 0, 30, tzinfo=UTC))
    released = await rig.store.get_job("s-queuer-20261207T1100Z")
    assert released is not None
    assert released.status == "queued"
    await rig.at(datetime(2026, 12, 7, 12, 0, 40, tzinfo=UTC))  # another pass creates nothing more
    assert await rig.fires("queuer") == [
        ("10:00", "fired", "s-queuer-20261207T1000Z"),
        ("11:00", "queued", "s-queuer-20261207T1100Z"),
        ("12:00", "skipped_overlap", None),
    ]
    assert len([j for j in await rig.store.list_jobs() if j.id.startswith("s-queuer-")]) == 2


async def test_after_downtime_catch_up_latest_fires_once_and_none_fires_nothing(rig: Rig) -> None:
    await rig.book.add(hourly("latest", catch_up="latest"))
    await rig.book.add(hourly("none", catch_up="none"))
    await rig.at(datetime(2026, 12, 7, 12, 20, tzinfo=UTC))  # down from 09:30 to 12:20
    assert await rig.fires("latest") == [
        ("10:00", "missed", None), ("11:00", "missed", None), ("12:00", "fired", "s-latest-20261207T1200Z"),
    ]  # fmt: skip
    assert await rig.fires("none") == [("10:00", "missed", None), ("11:00", "missed", None), ("12:00", "missed", None)]
    for name in ("latest", "none"):
        stored = await rig.store.get_schedule(name)
        assert stored is not None
        assert stored.next_due_at == datetime(2026, 12, 7, 13, 0, tzinfo=UTC)


async def test_a_paused_schedule_does_not_fire_and_resumes_from_now(rig: Rig) -> None:
    await rig.book.add(hourly("sleepy"))
    await rig.book.pause("sleepy")
    await rig.at(datetime(2026, 12, 7, 12, 30, tzinfo=UTC))
    assert await rig.fires("sleepy") == []
    view = await rig.book.resume("sleepy")
    assert view is not None
    assert view.schedule.next_due_at == datetime(2026, 12, 7, 13, 0, tzinfo=UTC), "paused time is not caught up"


async def test_a_spec_that_no_longer_validates_is_missed_with_the_reason_and_dead_lettered(rig: Rig) -> None:
    await rig.book.add(hourly("broken"))
    stored = await rig.store.get_schedule("broken")
    assert stored is not None
    # Stored by an older version, say: a field the job spec no longer takes.
    bad = stored.spec | {"colour": "red"}
    async with rig.store.database.writing() as session:
        await session.execute("UPDATE schedules SET spec = $2 WHERE id = $1", "broken", bad)
    await rig.at(datetime(2026, 12, 7, 10, 0, 1, tzinfo=UTC))
    [fire] = await rig.store.fires_of("broken")
    assert (fire.outcome, fire.job_id) == ("missed", None)
    assert fire.detail is not None
    assert "colour: unknown field" in fire.detail
    letters = await rig.store.list_dead_letters()
    assert len(letters) == 1
    assert "colour" in letters[0].reason
    assert (await rig.store.get_schedule("broken")).next_due_at.hour == 11  # type: ignore[union-attr]


async def test_run_now_fires_once_outside_the_cron_times(rig: Rig) -> None:
    await rig.book.add(hourly("eager"))
    job_id = await rig.book.run_now("eager")
    assert job_id == "s-eager-20261207T093000Z"
    assert await rig.store.get_job(job_id) is not None
    assert await rig.book.run_now("nobody") is None
    view = await rig.book.show("eager")
    assert view is not None
    assert [f.outcome for f in view.fires] == ["fired"]
    assert view.schedule.next_due_at == datetime(2026, 12, 7, 10, 0, tzinfo=UTC), "the cron times are unchanged"


async def test_a_zone_the_machine_does_not_know_pauses_its_schedule_instead_of_spinning(rig: Rig) -> None:
    await rig.book.add(hourly("lost"))
    async with rig.store.database.writing() as session:
        await session.execute("UPDATE schedules SET tz = $2 WHERE id = $1", "lost", "Mars/Olympus")
    await rig.at(datetime(2026, 12, 7, 10, 0, 1, tzinfo=UTC))
    stored = await rig.store.get_schedule("lost")
    assert stored is not None
    assert stored.paused
    assert await rig.store.fires_of("lost") == []
    assert await rig.store.claim_due("daemon-a", datetime(2026, 12, 8, tzinfo=UTC), 10, 30.0) == []
