"""The store on both backends: the same observable behaviour on PostgreSQL and on SQLite."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from actors.clock import FakeClock
from leadlawk_daemon.listing import Listing
from leadlawk_daemon.logs import register_secret
from leadlawk_daemon.pagespeed.result import FieldData, PageSpeedResult
from leadlawk_daemon.store import JobLead, Store, open_store
from leadlawk_daemon.store.base import exhausted_error, utc_from_epoch
from leadlawk_daemon.store.migrations import load_migrations
from leadlawk_daemon.store.postgres import PostgresDatabase
from leadlawk_daemon.store.sql_store import SqlStore


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of its own for each test: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'leadlawk.db'}"
        return
    dsn: str = request.getfixturevalue("pg_database")
    schema = f"t_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f"CREATE SCHEMA {schema}"))
    # asyncpg passes unknown DSN parameters on as server settings: every connection uses the schema.
    yield f"{dsn}?search_path={schema}"
    asyncio.run(admin(f"DROP SCHEMA {schema} CASCADE"))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(db_url: str, clock: FakeClock) -> AsyncIterator[Store]:
    async with open_store(db_url, clock=clock, migrate=True) as opened:
        yield opened


def listing(n: int, **values: object) -> Listing:
    base: dict[str, object] = {"name": f"Business {n}", "place_id": f"ChIJ{n:06d}"}
    base.update(values)
    return Listing(**base)  # type: ignore[arg-type]


def pagespeed(clock: FakeClock, **values: object) -> PageSpeedResult:
    """Lead 1's mobile result, tested now by ``clock`` unless ``tested_at`` says otherwise."""
    base: dict[str, object] = {
        "place_id": "ChIJ000001",
        "strategy": "mobile",
        "url": "https://one.example/",
        "tested_at": utc_from_epoch(clock.wall()),
    }
    return PageSpeedResult(**(base | values))  # type: ignore[arg-type]


async def lead_table(store: Store) -> dict[str, dict[str, object]]:
    return {row["place_id"]: row for row in await store.lead_rows_for_export()}


# migrations ------------------------------------------------------------------------------------


async def test_migrating_again_applies_nothing(db_url: str, clock: FakeClock) -> None:
    async with open_store(db_url, clock=clock) as store:
        every = [m.version for m in load_migrations("sqlite" if db_url.startswith("sqlite") else "postgres")]
        assert await store.migrate() == every
        assert await store.migrate() == []
        await store.ping()


async def test_two_processes_migrating_at_once_apply_each_version_once(db_url: str, clock: FakeClock) -> None:
    async with open_store(db_url, clock=clock) as one, open_store(db_url, clock=clock) as two:
        results = await asyncio.gather(one.migrate(), two.migrate(), one.migrate())
        every = [m.version for m in load_migrations("sqlite" if db_url.startswith("sqlite") else "postgres")]
        assert sorted(v for applied in results for v in applied) == every
        assert await two.create_job("after-migration", {"query": "x"})


# leads -----------------------------------------------------------------------------------------


async def test_upserting_a_batch_twice_leaves_the_same_rows(store: Store) -> None:
    batch = [listing(i, phone=f"+1 402 555 {i:04d}", rating=4.0 + i / 10) for i in range(5)]
    assert await store.upsert_leads(batch) == 5
    first = await lead_table(store)
    assert await store.upsert_leads(batch) == 5
    assert await lead_table(store) == first
    assert sorted(first) == [f"ChIJ{i:06d}" for i in range(5)]
    assert first["ChIJ000003"]["phone"] == "+1 402 555 0003"


async def test_a_business_seen_twice_in_one_batch_is_one_row_with_the_richer_values(store: Store) -> None:
    early = listing(1, phone="+1 402 555 0001", rating=4.1, hours=(("Mon", "9-5"),))
    late = listing(1, website="https://one.example", rating=4.3)
    assert await store.upsert_leads([early, listing(2), late]) == 2
    row = (await lead_table(store))["ChIJ000001"]
    assert (row["phone"], row["website"], row["rating"]) == ("+1 402 555 0001", "https://one.example", 4.3)
    assert row["hours"] == [["Mon", "9-5"]]


async def test_an_unknown_value_never_erases_a_known_one(store: Store, clock: FakeClock) -> None:
    await store.upsert_leads([listing(7, phone="+1 402 555 0007", website="https://seven.example")])
    before = (await lead_table(store))["ChIJ000007"]
    await clock.advance(3600)
    await store.upsert_leads([listing(7, rating=3.9)])
    after = (await lead_table(store))["ChIJ000007"]
    assert (after["phone"], after["website"], after["rating"]) == (
        "+1 402 555 0007",
        "https://seven.example",
        3.9,
    )
    assert after["first_seen_at"] == before["first_seen_at"]
    assert after["last_seen_at"] > before["last_seen_at"]  # type: ignore[operator]


async def test_a_lead_without_place_id_is_refused_by_name_and_nothing_is_written(store: Store) -> None:
    with pytest.raises(ValueError, match=r"row 1 \('Nameless Plumbing'\) has no place_id"):
        await store.upsert_leads([listing(1), Listing(name="Nameless Plumbing")])
    assert await lead_table(store) == {}


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)  # the COPY path exists on PostgreSQL only
async def test_copy_and_unnest_upserts_store_the_same_rows(db_url: str, clock: FakeClock) -> None:
    async with open_store(db_url, clock=clock, migrate=True) as store:
        assert isinstance(store, SqlStore)
        assert isinstance(store.database, PostgresDatabase)
        rows = [listing(i, review_count=i, latitude=41.2 + i / 100, hours=(("Tue", "8-4"),)) for i in range(50)]
        store.database.upsert_method = "unnest"
        await store.upsert_leads(rows)
        via_unnest = await lead_table(store)
        store.database.upsert_method = "copy"
        await store.upsert_leads([listing(i, phone=f"p{i}") for i in range(50)])
        await store.upsert_leads(rows)
        via_copy = await lead_table(store)
    assert set(via_copy) == set(via_unnest)
    for place_id, row in via_copy.items():
        assert {**row, "phone": None} == via_unnest[place_id]
        assert row["phone"] == f"p{int(place_id[4:])}"


# jobs ------------------------------------------------------------------------------------------


async def test_a_job_id_submitted_twice_runs_once(store: Store) -> None:
    assert await store.create_job("client-key-1", {"query": "plumbers"})
    assert not await store.create_job("client-key-1", {"query": "other"})
    job = await store.lease_next_job("daemon-a", ttl_s=30)
    assert job is not None
    assert (job.id, job.spec, job.status, job.attempts) == (
        "client-key-1",
        {"query": "plumbers"},
        "running",
        1,
    )
    assert await store.lease_next_job("daemon-b", ttl_s=30) is None


async def test_racing_daemons_never_lease_the_same_job(db_url: str, clock: FakeClock) -> None:
    async with open_store(db_url, clock=clock, migrate=True) as one, open_store(db_url, clock=clock) as two:
        for i in range(12):
            await one.create_job(f"job-{i:02d}", {"query": f"q{i}"})
        attempts = [(one if n % 2 else two).lease_next_job(f"owner-{n}", ttl_s=30) for n in range(30)]
        leased = [job for job in await asyncio.gather(*attempts) if job is not None]
        assert sorted(job.id for job in leased) == [f"job-{i:02d}" for i in range(12)]
        for job in leased:
            stored = await one.get_job(job.id)
            assert stored is not None
            assert stored.lease_owner == job.lease_owner


async def test_the_oldest_queued_job_is_leased_first(store: Store, clock: FakeClock) -> None:
    for name in ("zulu", "alpha", "mike"):
        await store.create_job(name, {"query": name})
        await clock.advance(1)
    order = [await store.lease_next_job("d", 30) for _ in range(3)]
    assert [job.id for job in order if job is not None] == ["zulu", "alpha", "mike"]


async def test_the_highest_priority_is_leased_first_then_the_oldest(store: Store, clock: FakeClock) -> None:
    # Created oldest first: (id, priority); no priority in a spec means 5.
    created = (("old-low", 1), ("old-default", None), ("old-high", 9), ("new-high", 9), ("new-default", None))
    for name, priority in created:
        spec: dict[str, object] = {"query": name}
        if priority is not None:
            spec["priority"] = priority
        await store.create_job(name, spec)
        await clock.advance(1)
    # A batch's children carry the batch's priority in their own specs.
    await store.create_batch("urgent", {"queries": ["a"], "priority": 7}, [("urgent.0", {"query": "a", "priority": 7})])
    order = [await store.lease_next_job("d", 30) for _ in range(7)]
    assert [job.id for job in order if job is not None] == [
        "old-high", "new-high", "urgent.0", "old-default", "new-default", "old-low"
    ]


async def lapse_lease(db_url: str, job_id: str) -> None:
    """The holder died: its lease ended a minute ago by the database's clock (the only clock leases read)."""
    if db_url.startswith("sqlite:///"):
        path = db_url[len("sqlite:///") :]

        def write() -> None:
            conn = sqlite3.connect(path)
            try:
                conn.execute(
                    "UPDATE jobs SET lease_expires_at = strftime('%Y-%m-%dT%H:%M:%f', 'now', '-60 seconds') "
                    "|| '000+00:00' WHERE id = ?",
                    (job_id,),
                )
                conn.commit()
            finally:
                conn.close()

        await asyncio.to_thread(write)
        return
    base, _, query = db_url.partition("?search_path=")
    conn = await asyncpg.connect(base, server_settings={"search_path": query} if query else None)
    try:
        await conn.execute(
            "UPDATE jobs SET lease_expires_at = clock_timestamp() - interval '60 seconds' WHERE id = $1", job_id
        )
    finally:
        await conn.close()


async def test_an_expired_lease_is_taken_over_and_the_old_owner_loses_it(store: Store, db_url: str) -> None:
    await store.create_job("j1", {"query": "roofers"})
    first = await store.lease_next_job("daemon-a", ttl_s=30)
    assert first is not None
    assert await store.renew_lease("j1", "daemon-a", ttl_s=30)
    assert await store.lease_next_job("daemon-b", ttl_s=30) is None  # renewed: still held
    await lapse_lease(db_url, "j1")
    taken = await store.lease_next_job("daemon-b", ttl_s=30)
    assert taken is not None
    assert (taken.id, taken.lease_owner, taken.attempts) == ("j1", "daemon-b", 2)
    assert taken.started_at == first.started_at
    assert not await store.renew_lease("j1", "daemon-a", ttl_s=30)
    assert not await store.update_job("j1", "daemon-a", found=99)
    assert not await store.finish_job("j1", "daemon-a", "failed", "stale owner")
    assert await store.renew_lease("j1", "daemon-b", ttl_s=30)
    job = await store.get_job("j1")
    assert job is not None
    assert (job.status, job.found, job.lease_owner) == ("running", 0, "daemon-b")


async def test_daemons_with_skewed_wall_clocks_never_hold_one_jobs_lease_together(db_url: str) -> None:
    # Three daemons whose wall clocks disagree by minutes: leases run on the database's clock.
    behind, right, ahead = (FakeClock(wall_start=time.time() + skew) for skew in (-600.0, 0.0, 600.0))
    async with (
        open_store(db_url, clock=right, migrate=True) as a,
        open_store(db_url, clock=ahead) as b,
        open_store(db_url, clock=behind) as c,
    ):
        await a.create_job("skewed", {"query": "roofers"})
        held = await a.lease_next_job("daemon-a", ttl_s=30)
        assert held is not None
        assert held.lease_expires_at is not None
        # The lease ends ttl after the database's now, whatever the holder's clock says.
        assert abs((held.lease_expires_at - datetime.now(UTC)).total_seconds() - 30) < 10
        assert await b.lease_next_job("daemon-b", ttl_s=30) is None  # ten minutes ahead: still not expired
        assert await c.renew_lease("skewed", "daemon-a", ttl_s=30)  # the holder behind renews normally
        assert await b.lease_next_job("daemon-b", ttl_s=30) is None
        await lapse_lease(db_url, "skewed")
        taken = await c.lease_next_job("daemon-c", ttl_s=30)  # ten minutes behind: sees the lapse all the same
        assert taken is not None
        assert taken.lease_owner == "daemon-c"
        assert not await a.renew_lease("skewed", "daemon-a", ttl_s=30)
        assert await b.lease_next_job("daemon-b", ttl_s=30) is None


async def test_a_job_whose_holder_dies_each_time_fails_after_max_attempts(store: Store, db_url: str) -> None:
    await store.create_job("poison", {"query": "kills the daemon"})
    for attempt in (1, 2, 3):
        job = await store.lease_next_job(f"daemon-{attempt}", ttl_s=30, max_attempts=3)
        assert job is not None
        assert (job.id, job.attempts) == ("poison", attempt)
        await lapse_lease(db_url, "poison")  # ...and the daemon dies holding it
    assert await store.lease_next_job("daemon-4", ttl_s=30, max_attempts=3) is None
    failed = await store.get_job("poison")
    assert failed is not None
    assert (failed.status, failed.lease_owner, failed.finished) == ("failed", None, True)
    assert failed.error == exhausted_error(3, 3)
    assert failed.error == "the daemon died 3 times while running this job (jobs.max_attempts = 3)"
    assert await store.fail_exhausted_jobs(3) == []  # failed once, announced once


async def test_exhausted_jobs_are_failed_and_returned_for_announcing(store: Store, db_url: str) -> None:
    assert await store.create_batch(
        "batch", {"queries": ["a", "b"]}, [("batch.0", {"query": "a"}), ("batch.1", {"query": "b"})]
    )
    for n in range(2):  # each holder a process of its own that died holding it
        job = await store.lease_next_job(f"daemon-{n}", ttl_s=30, max_attempts=2)
        assert job is not None
        assert job.id == "batch.0"
        await lapse_lease(db_url, "batch.0")
    failed = await store.fail_exhausted_jobs(2)
    assert [(j.id, j.status, j.error) for j in failed] == [("batch.0", "failed", exhausted_error(2, 2))]
    parent = await store.get_job("batch")
    assert parent is not None
    assert parent.status != "queued"  # refreshed from its children: one has ended
    nxt = await store.lease_next_job("daemon", ttl_s=30, max_attempts=2)
    assert nxt is not None
    assert nxt.id == "batch.1"


async def test_a_lease_that_lapsed_while_its_holder_lived_is_taken_back_without_an_attempt(
    store: Store, db_url: str
) -> None:
    """A daemon whose store was too slow to renew stops in time and lets the lease lapse: no death."""
    await store.create_job("slow-store", {"query": "plumbers"})
    for _ in range(4):
        job = await store.lease_next_job("daemon-alive", ttl_s=30, max_attempts=2)
        assert job is not None
        assert (job.id, job.attempts) == ("slow-store", 1)
        await lapse_lease(db_url, "slow-store")
        assert await store.fail_exhausted_jobs(2, "daemon-alive") == []
    # Another daemon finds it lapsed: that holder may well be dead, so this lease counts.
    other = await store.lease_next_job("daemon-other", ttl_s=30, max_attempts=2)
    assert other is not None
    assert other.attempts == 2


async def test_handing_a_job_back_keeps_progress_and_counts_no_attempt(store: Store, db_url: str) -> None:
    await store.create_job("paused", {"query": "plumbers"})
    for n in range(5):  # five shutdowns (or outages past jobs.max_wait), each a graceful hand-back
        job = await store.lease_next_job(f"daemon-{n}", ttl_s=30, max_attempts=3)
        assert job is not None
        assert job.attempts == 1
        assert await store.update_job("paused", f"daemon-{n}", found=10 + n, progress={"emitted": 10 + n})
        assert await store.release_lease("paused", f"daemon-{n}")
        assert not await store.release_lease("paused", f"daemon-{n}")  # not held any more
    back = await store.get_job("paused")
    assert back is not None
    assert (back.status, back.lease_owner, back.found, back.progress) == ("queued", None, 14, {"emitted": 14})
    for attempt in (1, 2):
        job = await store.lease_next_job(f"mortal-{attempt}", ttl_s=30, max_attempts=3)
        assert job is not None
        assert job.attempts == attempt
        await lapse_lease(db_url, "paused")
    job = await store.lease_next_job("mortal-3", ttl_s=30, max_attempts=3)
    assert job is not None  # two deaths and five hand-backs: still under three attempts


async def test_a_job_handed_back_to_wait_is_not_leased_before_its_time(store: Store) -> None:
    await store.create_job("outage", {"query": "plumbers"})
    await store.create_job("other", {"query": "roofers"})
    first = await store.lease_next_job("d", ttl_s=30)
    assert first is not None
    assert first.id == "outage"
    assert await store.release_lease("outage", "d", wait_s=3600)  # an outage outlasted jobs.max_wait
    nxt = await store.lease_next_job("d", ttl_s=30)
    assert nxt is not None
    assert nxt.id == "other"  # the waiting job's slot went to another job
    assert await store.lease_next_job("d", ttl_s=30) is None
    assert await store.count_jobs("queued") == 1
    assert await store.finish_job("other", "d", "succeeded")


async def test_counting_jobs_by_status_counts_leaves(store: Store) -> None:
    assert await store.count_jobs("queued") == 0
    await store.create_batch("b", {"queries": ["x", "y", "z"]}, [(f"b.{i}", {"query": q}) for i, q in enumerate("xyz")])
    await store.create_job("single-1", {"query": "s"})
    await store.create_job("single-2", {"query": "t"})
    assert await store.count_jobs("queued") == 5  # the batch parent only aggregates: not a job waiting
    assert await store.lease_next_job("d", ttl_s=30) is not None
    assert (await store.count_jobs("queued"), await store.count_jobs("running")) == (4, 1)


async def test_progress_and_counters_survive_a_hand_back(store: Store) -> None:
    await store.create_job("resumable", {"query": "dentists"})
    await store.lease_next_job("daemon-a", 30)
    assert await store.update_job("resumable", "daemon-a", found=40, written=38, progress={"emitted": 40})
    assert await store.release_lease("resumable", "daemon-a")
    resumed = await store.lease_next_job("daemon-b", 30)
    assert resumed is not None
    assert (resumed.id, resumed.found, resumed.written, resumed.progress) == (
        "resumable",
        40,
        38,
        {"emitted": 40},
    )
    assert await store.finish_job("resumable", "daemon-b", "succeeded")
    done = await store.get_job("resumable")
    assert done is not None
    assert (done.status, done.lease_owner, done.finished) == ("succeeded", None, True)
    assert done.finished_at is not None
    assert await store.list_jobs(status="succeeded") == [done]


async def test_cancel_stops_a_queued_job_and_a_running_one(store: Store) -> None:
    await store.create_job("running-job", {"query": "a"})
    await store.lease_next_job("daemon-a", 30)
    await store.create_job("queued-job", {"query": "b"})
    assert await store.cancel_job("queued-job")
    assert await store.lease_next_job("daemon-b", 30) is None
    assert await store.cancel_job("running-job")
    # The owner sees the cancel at its next heartbeat, records its final counters, and stops.
    assert not await store.renew_lease("running-job", "daemon-a", 30)
    assert await store.update_job("running-job", "daemon-a", found=12, status="running")
    assert await store.finish_job("running-job", "daemon-a", "succeeded")
    job = await store.get_job("running-job")
    assert job is not None
    assert (job.status, job.found) == ("cancelled", 12)
    assert not await store.cancel_job("running-job")
    assert not await store.cancel_job("no-such-job")


async def test_a_batch_parent_is_never_leased_and_aggregates_its_children(store: Store) -> None:
    assert await store.create_batch(
        "batch", {"queries": ["a", "b"]}, [("batch.0", {"query": "a"}), ("batch.1", {"query": "b"})]
    )
    leased = [await store.lease_next_job("d", 30) for _ in range(3)]
    assert sorted(job.id for job in leased if job is not None) == ["batch.0", "batch.1"]
    await store.update_job("batch.0", "d", found=5)
    await store.finish_job("batch.0", "d", "succeeded")
    parent = await store.refresh_parent("batch")
    assert parent is not None
    assert (parent.status, parent.found) == ("running", 5)
    await store.update_job("batch.1", "d", found=2)
    await store.finish_job("batch.1", "d", "failed", "maps unreachable")
    parent = await store.refresh_parent("batch")
    assert parent is not None
    assert (parent.status, parent.found, parent.finished) == ("partial", 7, True)
    assert [j.id for j in await store.list_jobs(parent_id="batch")] == ["batch.1", "batch.0"]


# job leads and export --------------------------------------------------------------------------


async def test_export_joins_leads_with_pagespeed_and_each_jobs_verdict(store: Store, clock: FakeClock) -> None:
    await store.create_job("j", {"query": "plumbers"})
    await store.upsert_leads([listing(1, website="https://one.example"), listing(2), listing(3)])
    await store.upsert_job_leads("j", [("ChIJ000002", 1, None, None), JobLead("ChIJ000001", 0)])
    await store.upsert_job_leads(
        "j", [JobLead("ChIJ000001", None, True, []), ("ChIJ000002", None, False, ["no website"])]
    )
    tested = clock.wall()
    field = FieldData(2500.0, None, 0.05, "SLOW", None, "FAST", "SLOW")
    await store.upsert_pagespeed([pagespeed(clock, performance=31, lcp_ms=5400.0, field=field)])
    assert await store.job_place_ids("j") == {"ChIJ000001", "ChIJ000002"}

    rows = await store.lead_rows_for_export(job_id="j")
    assert [(r["place_id"], r["rank"], r["qualified"], r["reasons"]) for r in rows] == [
        ("ChIJ000001", 0, True, []),
        ("ChIJ000002", 1, False, ["no website"]),
    ]
    assert (rows[0]["mobile_performance"], rows[0]["mobile_lcp_ms"], rows[0]["mobile_field_data"]) == (
        31,
        5400.0,
        {
            "lcp_ms": 2500.0,
            "inp_ms": None,
            "cls": 0.05,
            "lcp_category": "SLOW",
            "inp_category": None,
            "cls_category": "FAST",
            "overall_category": "SLOW",
        },
    )
    assert rows[0]["mobile_tested_at"] == utc_from_epoch(tested).isoformat()
    assert rows[1]["mobile_performance"] is None
    assert rows[0]["desktop_performance"] is None
    qualified = await store.lead_rows_for_export(job_id="j", qualified_only=True)
    assert [r["place_id"] for r in qualified] == ["ChIJ000001"]
    everything = await store.lead_rows_for_export()
    assert [r["place_id"] for r in everything] == ["ChIJ000001", "ChIJ000002", "ChIJ000003"]
    assert "rank" not in everything[0]


async def test_a_newer_pagespeed_result_replaces_an_older_one_never_the_reverse(store: Store, clock: FakeClock) -> None:
    await store.upsert_leads([listing(1)])
    await store.upsert_pagespeed([pagespeed(clock, performance=40)])
    await clock.advance(60)
    await store.upsert_pagespeed([pagespeed(clock, error="FAILED_DOCUMENT_REQUEST")])
    first = (await lead_table(store))["ChIJ000001"]
    assert (first["mobile_performance"], first["mobile_error"]) == (None, "FAILED_DOCUMENT_REQUEST")
    stale_time = utc_from_epoch(clock.wall()) - timedelta(seconds=30)
    stale = pagespeed(clock, performance=40, tested_at=stale_time)
    await store.upsert_pagespeed([stale])
    assert (await lead_table(store))["ChIJ000001"] == first


async def test_job_leads_for_an_unknown_job_are_refused(store: Store) -> None:
    await store.upsert_leads([listing(1)])
    with pytest.raises(ValueError, match="unknown job or lead"):
        await store.upsert_job_leads("ghost", [("ChIJ000001", 0, True, [])])


async def test_pagespeed_results_for_a_lead_not_stored_are_refused_and_nothing_is_written(
    store: Store, clock: FakeClock
) -> None:
    await store.upsert_leads([listing(1)])
    other = pagespeed(clock, place_id="ChIJ000404", performance=50)
    with pytest.raises(ValueError, match="leads not stored yet"):
        await store.upsert_pagespeed([pagespeed(clock, performance=40), other])
    assert (await lead_table(store))["ChIJ000001"]["mobile_performance"] is None  # one transaction


async def job_lead_statuses(store: Store, job_id: str) -> dict[str, tuple[str, str | None]]:
    assert isinstance(store, SqlStore)
    async with store.database.reading() as session:
        rows = await session.fetch("SELECT place_id, status, error FROM job_leads WHERE job_id = $1", job_id)
    return {r["place_id"]: (r["status"], r["error"]) for r in rows}


async def test_a_leads_failure_is_recorded_on_its_job_row_and_lifted_again(store: Store) -> None:
    await store.create_job("j", {"query": "plumbers"})
    await store.upsert_leads([listing(1), listing(2)])
    await store.upsert_job_leads("j", [JobLead("ChIJ000001", 0), JobLead("ChIJ000002", 1)])
    marks = [("ChIJ000001", "PageSpeed: quota"), ("ChIJ000002", "site: too slow"), ("ChIJ000002", None)]
    assert await store.set_lead_status("j", [*marks, ("ChIJ000404", "not in this job")]) == 3
    assert await job_lead_statuses(store, "j") == {
        "ChIJ000001": ("failed", "PageSpeed: quota"),
        "ChIJ000002": ("ok", None),
    }
    await store.set_lead_status("j", [("ChIJ000001", None)])  # enriched after all, on a replay
    assert await job_lead_statuses(store, "j") == {"ChIJ000001": ("ok", None), "ChIJ000002": ("ok", None)}


async def test_a_child_job_of_an_unknown_parent_or_a_duplicate_child_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="cannot be created"):
        await store.create_job("orphan", {"query": "x"}, parent_id="ghost")
    with pytest.raises(ValueError, match="cannot be created"):
        await store.create_batch("b", {"queries": ["x", "y"]}, [("b.0", {"query": "x"}), ("b.0", {"query": "y"})])
    assert await store.get_job("orphan") is None
    assert await store.get_job("b") is None  # the parent and its children: one transaction


# dead letters ----------------------------------------------------------------------------------


async def test_dead_letter_lifecycle_with_replay_failing_again(store: Store) -> None:
    secret = f"AIza{uuid.uuid4().hex}"
    register_secret(secret)
    first = await store.add_dead_letter("message", '{"query": broken', "invalid JSON at line 1", attempts=5)
    second = await store.add_dead_letter(
        "lead", {"place_id": "ChIJ1", "url": f"https://x/?key={secret}"}, f"HTTP 500 for key={secret}"
    )
    listed = await store.list_dead_letters()
    assert [(d.id, d.kind, d.attempts) for d in listed] == [(first, "message", 5), (second, "lead", 1)]
    assert listed[0].payload == '{"query": broken'
    assert secret not in listed[1].payload
    assert secret not in listed[1].reason
    assert [d.id for d in await store.list_dead_letters(kind="lead")] == [second]

    assert await store.mark_replayed(first)
    assert [d.id for d in await store.list_dead_letters()] == [second]
    assert not await store.mark_replayed(first)
    assert await store.bump_dead_letter(first, "still invalid JSON")
    again = await store.get_dead_letter(first)
    assert again is not None
    assert (again.attempts, again.reason, again.replayed_at) == (6, "still invalid JSON", None)
    assert await store.get_dead_letter(10_000) is None
    with pytest.raises(ValueError, match="kind must be one of"):
        await store.add_dead_letter("spam", "x", "y")  # type: ignore[arg-type]


async def test_a_finished_job_is_requeued_with_its_progress_once(store: Store) -> None:
    assert await store.create_job("rq", {"query": "plumbers"})
    assert await store.requeue_job("rq") is False  # queued, not finished: nothing to requeue
    job = await store.lease_next_job("owner-1", 30)
    assert job is not None
    assert job.id == "rq"
    await store.update_job("rq", "owner-1", found=3, written=3, progress={"emitted": 3})
    assert await store.finish_job("rq", "owner-1", "failed", "scrape failed 3 times")
    assert await store.requeue_job("rq") is True
    again = await store.get_job("rq")
    assert again is not None
    assert (again.status, again.error, again.finished_at, again.lease_owner) == ("queued", None, None, None)
    assert (again.found, again.progress) == (3, {"emitted": 3})
    assert await store.requeue_job("rq") is False  # queued again: a second replay does nothing
    assert await store.requeue_job("nope") is False
