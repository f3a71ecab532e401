"""A lead's verdict does not depend on the order its facts are written in.

A job's real state, the writer's real buffer and a real store (PostgreSQL and SQLite): a lead's
listing, PageSpeed result and site report are written in every order (one batch, the site first,
PageSpeed first, and a replay after PageSpeed failed), the job's owner writes verdicts as the
driver does after each acknowledged commit, and every stored verdict must equal ``qualify()`` of
what the store holds of the lead, never a verdict judged from part of it (the 3 of 329 leads
stored "no mobile PageSpeed result" beside their stored mobile result, issue 21).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from actors.clock import FakeClock
from actors.write_buffer import WriteBuffer
from leadlawk_daemon.jobs.state import JobState
from leadlawk_daemon.jobs.verdicts import facts_of_row, write_verdicts
from leadlawk_daemon.jobspec import parse_job_spec
from leadlawk_daemon.listing import Listing
from leadlawk_daemon.messages import (
    LeadEnriched,
    LeadFailed,
    LeadScraped,
    LeadSiteRead,
    WriteEnrichment,
    WriteLead,
    WriterMessage,
    WriteSite,
)
from leadlawk_daemon.pagespeed.result import PageSpeedResult
from leadlawk_daemon.qualify import Filters, qualify
from leadlawk_daemon.sites import SiteReport, SiteStatus
from leadlawk_daemon.store import Store, open_store
from tests.conftest import PG_ADMIN_DSN
from tests.databases import throwaway_database

pytestmark = pytest.mark.timeout(60)

JOB = "job-v"
SPEC = {"id": JOB, "query": "plumbers", "pagespeed": {"max_score": 60}, "site": {"require_email": True}}
# place id → (mobile score, an email on the site): what each lead's facts say.
LEADS = {"ChIJgood": (40, True), "ChIJslow": (90, True), "ChIJmute": (40, False)}
EXPECTED = {
    "ChIJgood": (True, []),
    "ChIJslow": (False, ["mobile performance 90 above 60.0"]),
    "ChIJmute": (False, ["no email address found on the website"]),
}
# The orders a lead's facts reach the writer in: each inner tuple is one batch (one commit).
ORDERS = {
    "one batch": (("lead", "pagespeed", "site"),),
    "site first": (("lead", "site"), ("pagespeed",)),
    "pagespeed first": (("lead", "pagespeed"), ("site",)),
    "site before the lead's PageSpeed is acknowledged": (("lead",), ("site", "pagespeed")),
    "each alone, site first": (("lead",), ("site",), ("pagespeed",)),
}


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path}/verdicts.db"
        else:
            url = await stack.enter_async_context(throwaway_database(PG_ADMIN_DSN, "leadlawk_verdicts"))
        opened = await stack.enter_async_context(open_store(url, clock=FakeClock(), migrate=True))
        await opened.create_job(JOB, SPEC)
        yield opened


def _state() -> JobState:
    spec = parse_job_spec(SPEC, 65_536)
    state = JobState(JOB, spec, Filters.from_spec(spec.to_dict()))
    state.read_sites = True
    return state


def _listing(place_id: str) -> Listing:
    return Listing(name=place_id.removeprefix("ChIJ").title(), place_id=place_id, website=f"http://{place_id}.example/")


def _result(place_id: str) -> PageSpeedResult:
    return PageSpeedResult(place_id, "mobile", f"http://{place_id}.example/", datetime.now(UTC),
                           performance=LEADS[place_id][0])


def _report(place_id: str) -> SiteReport:
    emails = ["info@example.com"] if LEADS[place_id][1] else []
    return SiteReport(
        site=f"{place_id}.example", url=f"http://{place_id}.example/", status=SiteStatus.OK, emails=emails
    )


def _message(state: JobState, place_id: str, fact: str) -> WriterMessage:
    listing = _listing(place_id)
    if fact == "lead":
        return WriteLead(state.handle, listing, 0)
    if fact == "pagespeed":
        state.report(LeadEnriched(place_id))  # the enricher handed its result to the writer
        return WriteEnrichment(state.handle, listing, (_result(place_id),))
    report = _report(place_id)
    state.report(LeadSiteRead(place_id, report))  # the site actor handed its report to the writer
    return WriteSite(state.handle, listing, report)


async def _commit(store: Store, state: JobState, messages: Sequence[WriterMessage]) -> None:
    """One flush of the writer, then the driver's verdict step (after the acknowledgement)."""
    buffer = WriteBuffer(100, 100)
    for message in messages:
        buffer.add(message)
    await buffer.write_batch(store)
    due = state.verdicts.due()
    await write_verdicts(store, JOB, due)
    state.verdicts_written(due)


async def _stored(store: Store) -> dict[str, dict[str, Any]]:
    return {row["place_id"]: row for row in await store.lead_rows_for_export(JOB)}


def _assert_verdicts_follow_the_stored_facts(rows: dict[str, dict[str, Any]], state: JobState) -> None:
    for place_id, row in rows.items():
        if row["qualified"] is None:
            continue  # not judged yet: never judged from part of its facts
        listing, results, site = facts_of_row(row)
        verdict = qualify(listing, results, state.filters, site)
        assert (row["qualified"], row["reasons"]) == (verdict.qualified, list(verdict.reasons)), place_id


@pytest.mark.parametrize("order", ORDERS)
async def test_every_stored_verdict_is_qualify_of_the_stored_facts(store: Store, order: str) -> None:
    state = _state()
    for place_id in LEADS:
        state.report(LeadScraped(_listing(place_id), 0))
    for batch in ORDERS[order]:
        await _commit(store, state, [_message(state, p, fact) for fact in batch for p in LEADS])
        rows = await _stored(store)
        _assert_verdicts_follow_the_stored_facts(rows, state)
        if batch is not ORDERS[order][-1]:
            # A fact is still on its way: no lead may carry a verdict yet.
            assert {p: r["qualified"] for p, r in rows.items()} == dict.fromkeys(LEADS)
    rows = await _stored(store)
    assert {p: (r["qualified"], r["reasons"]) for p, r in rows.items()} == EXPECTED
    assert state.complete is False  # its scrape never ended; but nothing is due:
    assert state.verdicts.due() == []
    assert {p for p, ok in state.qualified.items() if ok} == {"ChIJgood"}


async def test_a_replay_after_a_failed_enrichment_judges_the_lead_again(store: Store) -> None:
    first = _state()
    for place_id in LEADS:
        first.report(LeadScraped(_listing(place_id), 0))
        first.report(LeadFailed(place_id, "pagespeed", "gave up after 2 attempts", {}))  # PageSpeed never answered
    await _commit(store, first, [_message(first, p, fact) for fact in ("lead", "site") for p in LEADS])
    rows = await _stored(store)
    _assert_verdicts_follow_the_stored_facts(rows, first)
    assert {p: r["reasons"] for p, r in rows.items()}["ChIJgood"] == ["no mobile PageSpeed result"]

    # The job's dead letter is replayed: a new run resumes it from the store and enriches again.
    replay = _state()
    replay.resume_from(list(rows.values()))
    assert {listing.place_id for listing in replay.to_enrich} == set(LEADS)
    assert replay.verdicts.due() == []  # judged already, and its PageSpeed result is awaited
    await _commit(store, replay, [_message(replay, p, "pagespeed") for p in LEADS])
    rows = await _stored(store)
    _assert_verdicts_follow_the_stored_facts(rows, replay)
    assert {p: (r["qualified"], r["reasons"]) for p, r in rows.items()} == EXPECTED


async def test_a_job_that_ends_judges_its_leads_on_what_is_stored(store: Store) -> None:
    # Cancelled while PageSpeed was still testing: its facts will not come, and the lead is judged
    # on its listing and site, as stored (the driver's last step).
    state = _state()
    state.report(LeadScraped(_listing("ChIJgood"), 0))
    await _commit(store, state, [_message(state, "ChIJgood", "lead"), _message(state, "ChIJgood", "site")])
    assert state.verdicts.due() == []
    final = state.verdicts.due(final=True)
    await write_verdicts(store, JOB, final)
    state.verdicts_written(final)
    rows = await _stored(store)
    _assert_verdicts_follow_the_stored_facts(rows, state)
    assert rows["ChIJgood"]["reasons"] == ["no mobile PageSpeed result"]
