"""When a schedule is due: cron in an IANA zone, daylight saving as people expect, and what a due
schedule does after downtime (catch_up) and while its previous job runs (overlap)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from leadlawk_daemon.schedules.cron import CronError, CronRule
from leadlawk_daemon.schedules.plan import MAX_MISSED, Busy, plan_fires
from leadlawk_daemon.schedules.schedule import ScheduleError, job_id_for, parse_schedule

CHICAGO = ZoneInfo("America/Chicago")
BERLIN = ZoneInfo("Europe/Berlin")
GRACE = timedelta(seconds=60)


def local_fires(expression: str, zone: ZoneInfo, start: datetime, end: datetime) -> list[str]:
    """The due times between two local times, as local wall-clock text with the UTC offset."""
    rule = CronRule.parse(expression, zone.key)
    due, _ = rule.due_between(start.astimezone(UTC), end.astimezone(UTC), 1000)
    return [d.astimezone(zone).strftime("%m-%d %H:%M %z") for d in due]


# -- daylight saving ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "day", "expected"),
    [
        # 2026-03-08: Chicago's clocks go from 02:00 CST straight to 03:00 CDT; 02:30 does not exist.
        (CHICAGO, 8, ["03-07 02:30 -0600", "03-08 03:00 -0500", "03-09 02:30 -0500"]),
        # 2026-03-29: Berlin's go from 02:00 CET to 03:00 CEST.
        (BERLIN, 29, ["03-28 02:30 +0100", "03-29 03:00 +0200", "03-30 02:30 +0200"]),
    ],
)
def test_a_local_time_skipped_in_spring_fires_once_at_the_next_valid_minute(
    zone: ZoneInfo, day: int, expected: list[str]
) -> None:
    start = datetime(2026, 3, day - 1, 0, 0, tzinfo=zone)
    assert local_fires("30 2 * * *", zone, start, start + timedelta(days=3)) == expected


@pytest.mark.parametrize(
    ("zone", "start", "expression", "expected"),
    [
        # 2026-11-01: Chicago's 01:00-01:59 happens twice (CDT, then CST): 01:30 fires once.
        (CHICAGO, datetime(2026, 10, 31, tzinfo=CHICAGO), "30 1 * * *",
         ["10-31 01:30 -0500", "11-01 01:30 -0500", "11-02 01:30 -0600"]),
        # 2026-10-25: Berlin's 02:00-02:59 happens twice (CEST, then CET).
        (BERLIN, datetime(2026, 10, 24, tzinfo=BERLIN), "30 2 * * *",
         ["10-24 02:30 +0200", "10-25 02:30 +0200", "10-26 02:30 +0100"]),
    ],
)  # fmt: skip
def test_a_local_time_repeated_in_autumn_fires_once(
    zone: ZoneInfo, start: datetime, expression: str, expected: list[str]
) -> None:
    assert local_fires(expression, zone, start, start + timedelta(days=3)) == expected


def test_an_interval_fires_in_both_of_the_repeated_hours_since_each_is_a_real_half_hour() -> None:
    start = datetime(2026, 11, 1, 0, 45, tzinfo=CHICAGO)
    got = local_fires("*/30 * * * *", CHICAGO, start, start + timedelta(hours=3))  # wall-clock hours: 4 real ones
    assert got == [
        "11-01 01:00 -0500", "11-01 01:30 -0500", "11-01 01:00 -0600", "11-01 01:30 -0600", "11-01 02:00 -0600",
        "11-01 02:30 -0600", "11-01 03:00 -0600", "11-01 03:30 -0600",
    ]  # fmt: skip
    assert len(set(got)) == len(got), "no due time twice"


def test_the_utc_instants_of_a_dst_night_are_distinct_so_each_job_id_is_its_own() -> None:
    rule = CronRule.parse("*/30 * * * *", "America/Chicago")
    due, _ = rule.due_between(datetime(2026, 11, 1, 5, 0, tzinfo=UTC), datetime(2026, 11, 1, 9, 0, tzinfo=UTC), 100)
    ids = [job_id_for("nightly", d) for d in due]
    assert len(set(ids)) == len(ids) == 9
    assert ids[0] == "s-nightly-20261101T0500Z"


@pytest.mark.parametrize(
    ("expression", "tz", "problem"),
    [
        ("0 2 * *", "UTC", "cron: must have 5 fields"),
        ("0 2 * * * *", "UTC", "cron: must have 5 fields"),
        ("61 2 * * *", "UTC", "cron: Bad minute"),
        ("0 2 * * *", "America/Gotham", "tz: not an IANA time zone"),
        ("0 2 * * *", "../../etc/passwd", "tz: not an IANA time zone"),
    ],
)
def test_a_bad_expression_or_zone_is_named(expression: str, tz: str, problem: str) -> None:
    with pytest.raises(CronError, match=problem.replace("(", r"\(")):
        CronRule.parse(expression, tz)


def test_a_definition_names_every_problem() -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_schedule(
            {"name": "", "spec": {"query": "x", "limit": 900, "id": "mine"}, "cron": "* *", "catch_up": "all",
             "overlap": "kill", "deliver": ["nowhere"], "colour": "red"},
            max_bytes=65_536, destinations={"sales-webhook"},
        )  # fmt: skip
    text = "\n".join(caught.value.problems)
    expected_problems = (
        "colour: unknown field", "name:", "cron: must have 5 fields", "catch_up:", "overlap:",
        "deliver: not a configured destination: nowhere", "spec.id: not allowed", "spec.limit:",
    )  # fmt: skip
    for expected in expected_problems:
        assert expected in text


def test_a_definition_is_stored_without_the_id_and_with_a_slug() -> None:
    d = parse_schedule(
        {"name": "Nightly Plumbers, Omaha!", "spec": {"query": "plumbers", "coverage": "area", "location": "Omaha, NE"},
         "cron": "0  2 * * *", "tz": "America/Chicago", "deliver": ["sales-webhook"]},
        max_bytes=65_536,
    )  # fmt: skip
    assert d.id == "nightly-plumbers-omaha"
    assert d.cron == "0 2 * * *"
    assert "id" not in d.spec
    assert d.spec["coverage"] == "area"
    assert d.deliver == ("sales-webhook",)


# -- catch_up and overlap ----------------------------------------------------------------------------

HOURLY = CronRule.parse("0 * * * *", "UTC")
T = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


def plan(now: datetime, *, catch_up: str = "latest", overlap: str = "skip", busy: Busy = Busy.IDLE):  # type: ignore[no-untyped-def]
    return plan_fires("s", HOURLY, T, now, catch_up=catch_up, overlap=overlap, grace=GRACE, busy=busy)  # type: ignore[arg-type]


def outcomes(p) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return [(f.due_at.strftime("%H:%M"), f.outcome) for f in p.fires]


def test_on_time_fires_and_moves_to_the_next_due_time() -> None:
    p = plan(T + timedelta(seconds=2))
    assert outcomes(p) == [("10:00", "fired")]
    assert p.job_fire is not None
    assert p.job_fire.job_id == "s-s-20261207T1000Z"
    assert p.next_due_at == T + timedelta(hours=1)


def test_after_downtime_latest_fires_the_latest_and_records_the_rest_missed() -> None:
    p = plan(T + timedelta(hours=2, minutes=30), catch_up="latest")
    assert outcomes(p) == [("10:00", "missed"), ("11:00", "missed"), ("12:00", "fired")]
    assert p.next_due_at == T + timedelta(hours=3)


def test_after_downtime_none_fires_nothing_late() -> None:
    p = plan(T + timedelta(hours=2, minutes=30), catch_up="none")
    assert outcomes(p) == [("10:00", "missed"), ("11:00", "missed"), ("12:00", "missed")]
    assert p.job_fire is None
    # ... but a due time within the grace is on time, not caught up.
    assert outcomes(plan(T + timedelta(seconds=30), catch_up="none")) == [("10:00", "fired")]


def test_a_long_outage_records_its_last_missed_due_times_only() -> None:
    p = plan(T + timedelta(days=30), catch_up="latest")
    assert len(p.fires) == MAX_MISSED + 1
    assert p.missed_uncounted
    assert p.fires[-1].outcome == "fired"


@pytest.mark.parametrize(
    ("overlap", "busy", "outcome"),
    [
        ("skip", Busy.RUNNING, "skipped_overlap"),
        ("queue", Busy.RUNNING, "queued"),
        ("queue", Busy.WAITING, "skipped_overlap"),  # one fire waits at most
        ("skip", Busy.IDLE, "fired"),
        ("queue", Busy.IDLE, "fired"),
    ],
)
def test_overlap(overlap: str, busy: Busy, outcome: str) -> None:
    p = plan(T + timedelta(seconds=1), overlap=overlap, busy=busy)
    assert outcomes(p) == [("10:00", outcome)]
    assert (p.fires[0].job_id is not None) == (outcome in ("fired", "queued"))
