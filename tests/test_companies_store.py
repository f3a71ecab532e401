"""Each lead's company in the store, on PostgreSQL and SQLite: grouped from the stored leads,
exported with each lead, stable when grouped again, and a later join keeps the larger company's id
with the other recorded as its alias."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from leadlawk_daemon.companies import Grouping, company_id_of
from leadlawk_daemon.listing import Listing
from leadlawk_daemon.replicas.maps_business import generate_answer_set
from leadlawk_daemon.store import JobLead, Store
from leadlawk_daemon.store import companies as companies_module
from leadlawk_daemon.store.companies import GROUPING_LOCK_KEY
from leadlawk_daemon.store.sql_store import SqlStore
from tests import test_store
from tests.waiting import eventually

# The store tests' fixtures: the same throwaway databases, on both backends.
db_url, clock, store = test_store.db_url, test_store.clock, test_store.store


def _lead(place_id: str, website: str | None, phone: str | None, address: str | None) -> Listing:
    return Listing(name=f"Business {place_id}", place_id=place_id, website=website, phone_e164=phone, address=address)


async def test_the_replicas_chains_are_grouped_in_the_store_and_exported(store: Store) -> None:
    businesses = generate_answer_set("roofers", "Lincoln, NE", 0, 120).businesses
    await store.upsert_leads([_lead(b.place_id, b.website, b.phone_e164, b.full_address) for b in businesses])
    assert await store.regroup_companies() == 120
    rows = {r["place_id"]: r for r in await store.lead_rows_for_export()}
    for b in businesses:
        branches = [x for x in businesses if b.chain is not None and x.chain == b.chain]
        assert rows[b.place_id]["company_size"] == max(1, len(branches)), b.name
        if branches:
            assert {rows[x.place_id]["company_id"] for x in branches} == {rows[b.place_id]["company_id"]}
    independents = [b for b in businesses if b.chain is None]
    assert len({rows[b.place_id]["company_id"] for b in independents}) == len(independents)
    # Grouping again with nothing new changes nothing.
    assert await store.regroup_companies() == 0


async def test_a_later_job_joining_two_companies_keeps_the_larger_ones_id(store: Store) -> None:
    await store.upsert_leads(
        [
            _lead("a1", "https://alpha.example/", None, "1 A St"),
            _lead("a2", "https://alpha.example/west", None, "2 A St"),
            _lead("b1", "https://beta.example/", "+14025550199", "1 B St"),
        ]
    )
    await store.regroup_companies()
    before = {r["place_id"]: r["company_id"] for r in await store.lead_rows_for_export()}
    # A branch of alpha listing beta's central phone, at another address, joins the two.
    await store.upsert_leads([_lead("x", "https://alpha.example/east", "+14025550199", "9 C St")])
    assert await store.regroup_companies() == 4
    after = {r["place_id"]: (r["company_id"], r["company_size"]) for r in await store.lead_rows_for_export()}
    assert set(after.values()) == {(before["a1"], 4)}
    assert isinstance(store, SqlStore)
    assert await store.company_alias(before["b1"]) == before["a1"]
    assert await store.company_alias(before["a1"]) is None


async def test_a_jobs_company_sizes_are_read_back(store: Store) -> None:
    await store.upsert_leads(
        [
            _lead("a1", "https://alpha.example/", None, None),
            _lead("a2", "https://alpha.example/", None, None),
            _lead("c", "https://gamma.example/", None, None),
        ]
    )
    await store.create_job("j1", {"query": "x"})
    await store.upsert_job_leads("j1", [JobLead("a1", 1), JobLead("c", 2)])
    assert await store.company_sizes("j1") == {}  # not grouped yet
    await store.regroup_companies()
    assert await store.company_sizes("j1") == {"a1": 2, "c": 1}


# PostgreSQL's advisory lock only: SQLite has one writer at a time anyway.
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_a_regroup_waits_while_another_holds_the_grouping_lock(db_url: str, store: Store) -> None:
    await store.upsert_leads(
        [_lead("a1", "https://alpha.example/", None, None), _lead("a2", "https://alpha.example/", None, None)]
    )
    holder = await asyncpg.connect(db_url)
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", GROUPING_LOCK_KEY)
        regroup = asyncio.create_task(store.regroup_companies())

        async def waiting() -> int:
            return int(
                await holder.fetchval(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $1 AND NOT granted",
                    GROUPING_LOCK_KEY & 0xFFFFFFFF,
                )
            )

        await eventually(waiting, what="the regroup waiting on the grouping lock")
        assert not regroup.done()
        await holder.execute("SELECT pg_advisory_unlock($1)", GROUPING_LOCK_KEY)
        assert await regroup == 2
    finally:
        await holder.close()


# SQLite groups between a read and a checked write; PostgreSQL inside one locked transaction.
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_on_sqlite_a_lead_written_while_grouping_runs_is_grouped_by_the_same_call(
    db_url: str, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.upsert_leads([_lead("a1", "https://alpha.example/", None, None)])
    grouped = companies_module._grouped
    calls = 0

    async def with_a_writer_meanwhile(rows: list[dict[str, Any]]) -> Grouping:
        nonlocal calls
        calls += 1
        if calls == 1:  # the connection is free while the grouping runs: another writer gets in
            await store.upsert_leads([_lead("a2", "https://alpha.example/west", None, None)])
        return await grouped(rows)

    monkeypatch.setattr(companies_module, "_grouped", with_a_writer_meanwhile)
    assert await store.regroup_companies() == 2
    assert calls == 2  # the first grouping was stale at its write, and not written
    sizes = {r["place_id"]: r["company_size"] for r in await store.lead_rows_for_export()}
    assert sizes == {"a1": 2, "a2": 2}


async def test_a_company_split_again_takes_back_its_id_which_is_then_no_alias(store: Store) -> None:
    await store.upsert_leads([
        _lead("a1", "https://alpha.example/", None, "1 A St"),
        _lead("a2", "https://alpha.example/west", None, "2 A St"),
        _lead("b1", "https://beta.example/", "+14025550199", "1 B St"),
    ])  # fmt: skip
    await store.regroup_companies()
    # A branch of alpha listing beta's phone joins the two.
    await store.upsert_leads([_lead("x", "https://alpha.example/east", "+14025550199", "9 C St")])
    await store.regroup_companies()
    ids = {r["place_id"]: r["company_id"] for r in await store.lead_rows_for_export()}
    assert len(set(ids.values())) == 1
    beta = company_id_of("domain:beta.example")
    assert isinstance(store, SqlStore)
    assert await store.company_alias(beta) == ids["a1"]  # beta was grouped once, then joined to alpha
    # The branch that joined them changes its number: beta is its own company again, with its id.
    await store.upsert_leads([_lead("x", "https://alpha.example/east", "+14025550123", "9 C St")])
    await store.regroup_companies()
    after = {r["place_id"]: (r["company_id"], r["company_size"]) for r in await store.lead_rows_for_export()}
    assert after["b1"] == (beta, 1)
    assert after["x"] == (ids["a1"], 3)
    assert await store.company_alias(beta) is None


async def test_one_phone_at_the_same_street_line_in_two_towns_is_a_chain(store: Store) -> None:
    await store.upsert_leads([
        Listing(name="Acme", place_id="t1", phone_e164="+14025550100", address="100 Main St", locality="Omaha"),
        Listing(name="Acme", place_id="t2", phone_e164="+14025550100", address="100 Main St", locality="Lincoln"),
        # The same place listed twice (two practitioners at one desk): not a chain.
        Listing(name="Dr A", place_id="d1", phone_e164="+14025550111", address="9 Elm St", locality="Omaha"),
        Listing(name="Dr B", place_id="d2", phone_e164="+14025550111", address="9 Elm St", locality="Omaha"),
    ])  # fmt: skip
    await store.regroup_companies()
    sizes = {r["place_id"]: r["company_size"] for r in await store.lead_rows_for_export()}
    assert sizes == {"t1": 2, "t2": 2, "d1": 1, "d2": 1}
