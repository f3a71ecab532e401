"""One company per chain (docs/chains.md): grouping by registrable domain and by one phone at
different addresses, never across a shared builder's domain, ids stable across jobs, and the
Maps replica's chains found with precision and recall of at least 0.99."""

from __future__ import annotations

import asyncio
import itertools
import random
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from leadlawk_daemon.companies import Member, company_domain, company_id_of, group_companies
from leadlawk_daemon.replicas.maps import create_maps_app
from leadlawk_daemon.replicas.maps_business import generate_answer_set
from leadlawk_daemon.store.single_flight import SingleFlight
from tests.waiting import eventually

# Queries and places of the replica, at home and abroad (where addresses and phones are written as
# each country writes them): chains appear in most of them (docs/replicas.md).
_QUERIES = ("plumbers", "dentists", "roofers", "cafes", "electricians", "hair salons", "gyms", "florists")
_PLACES = (
    "Omaha, NE", "Lincoln, NE", "Austin, TX", "Chicago, IL", "Denver, CO",
    "Berlin, Germany", "London, United Kingdom", "São Paulo, Brazil", "Mumbai, India", "Makati, Philippines",
)  # fmt: skip


def _pairs(groups: dict[str, str]) -> set[tuple[str, str]]:
    """Every pair of leads put in one group (place id → group)."""
    by_group: dict[str, list[str]] = {}
    for place_id, group in groups.items():
        by_group.setdefault(group, []).append(place_id)
    return {pair for members in by_group.values() for pair in itertools.combinations(sorted(members), 2)}


def test_the_replicas_chains_are_found_with_precision_and_recall_of_099() -> None:
    found: set[tuple[str, str]] = set()
    truth: set[tuple[str, str]] = set()
    chains = 0
    for query, place in itertools.product(_QUERIES, _PLACES):
        # Each search's leads are grouped on their own, as one job's would be on a fresh store.
        businesses = generate_answer_set(query, place, 0, 120).businesses
        members = [Member(b.place_id, b.website, b.phone_e164, b.full_address) for b in businesses]
        grouping = group_companies(members)
        found |= _pairs({p: a.company_id for p, a in grouping.assignments.items()})
        truth |= _pairs({b.place_id: b.chain or b.place_id for b in businesses})
        chains += len({b.chain for b in businesses if b.chain})
    assert chains >= 80, "too few chains to measure on"
    hits = len(found & truth)
    precision, recall = hits / len(found), hits / len(truth)
    assert precision >= 0.99, (precision, sorted(found - truth)[:5])
    assert recall >= 0.99, (recall, sorted(truth - found)[:5])


def test_many_sites_on_a_shared_builder_never_make_one_company() -> None:
    members = [
        *(
            Member(f"w{i}", f"https://user{i}.wixsite.com/plumbing", f"+1402555{i:04d}", f"{i} Main St")
            for i in range(150)
        ),
        *(Member(f"x{i}", f"https://www.wixsite.com/site-{i}", None, None) for i in range(50)),
        *(Member(f"f{i}", f"https://www.facebook.com/pages/biz-{i}/{i}", None, None) for i in range(30)),
        *(Member(f"l{i}", f"https://linktr.ee/biz{i}", None, None) for i in range(30)),
        *(Member(f"g{i}", f"https://sites.google.com/view/biz{i}", None, None) for i in range(30)),
        *(Member(f"b{i}", f"https://biz{i}.business.site/", None, None) for i in range(30)),
        *(Member(f"s{i}", f"https://biz{i}.square.site/", None, None) for i in range(30)),
        *(Member(f"d{i}", f"https://biz{i}.godaddysites.com/", None, None) for i in range(30)),
    ]
    grouping = group_companies(members)
    assert {a.company_size for a in grouping.assignments.values()} == {1}
    assert len({a.company_id for a in grouping.assignments.values()}) == len(members)


def test_a_shared_builder_site_still_groups_by_a_central_phone() -> None:
    grouping = group_companies(
        [
            Member("a", "https://a.wixsite.com/x", "+14025550100", "1 Main St"),
            Member("b", "https://b.wixsite.com/y", "+14025550100", "9 Elm St"),
        ]
    )
    assert grouping.assignments["a"] == grouping.assignments["b"]
    assert grouping.assignments["a"].grouped_by == "phone"


def test_the_registrable_domain_groups_subdomains_paths_and_country_suffixes() -> None:
    assert company_domain("https://www.acme-plumbing.co.uk/locations/leeds") == "acme-plumbing.co.uk"
    assert company_domain("http://leeds.acme-plumbing.co.uk") == "acme-plumbing.co.uk"
    assert company_domain("ACME.com") == "acme.com"
    assert company_domain("https://biz.wixsite.com/acme") is None
    assert company_domain("https://m.facebook.com/acme") is None
    assert company_domain("not a url at all") is None
    assert company_domain("https://" + "a" * 5000 + ".com/") is None  # bounded: not read
    grouping = group_companies(
        [
            Member("a", "https://www.acme-plumbing.co.uk/locations/leeds"),
            Member("b", "http://york.acme-plumbing.co.uk/"),
            Member("c", "https://other-plumbing.co.uk/"),
        ]
    )
    assert grouping.assignments["a"].company_id == grouping.assignments["b"].company_id
    assert grouping.assignments["a"].company_size == 2
    assert grouping.assignments["c"].company_size == 1


def test_one_phone_groups_only_across_different_addresses() -> None:
    # A clinic's two practitioners at one address share the front desk's phone: no chain.
    same_place = group_companies(
        [
            Member("a", None, "+14025550100", "1 Main St, Omaha"),
            Member("b", None, "+14025550100", "1  main st, omaha"),
        ]
    )
    assert same_place.assignments["a"].company_size == 1
    two_places = group_companies(
        [
            Member("a", None, "+14025550100", "1 Main St, Omaha"),
            Member("b", None, "+14025550100", "77 Elm St, Omaha"),
            Member("c", None, "+14025550100", "1 Main St, Omaha"),
        ]
    )
    assert {a.company_size for a in two_places.assignments.values()} == {3}


def test_the_grouping_is_the_same_whatever_the_order() -> None:
    members = [
        Member(b.place_id, b.website, b.phone_e164, b.full_address)
        for b in generate_answer_set("roofers", "Lincoln, NE", 0, 120).businesses
    ]
    first = group_companies(members).assignments
    shuffled = members[:]
    random.Random(7).shuffle(shuffled)
    assert group_companies(shuffled).assignments == first


def test_ids_are_stable_across_jobs_and_a_join_keeps_the_larger_companys_id() -> None:
    job1 = [
        Member("a1", "https://alpha.example/", "+14025550101", "1 A St"),
        Member("a2", "https://alpha.example/west", "+14025550102", "2 A St"),
        Member("a3", "https://www.alpha.example/", None, "3 A St"),
        Member("b1", "https://beta.example/", "+14025550199", "1 B St"),
        Member("b2", "https://beta.example/", None, "2 B St"),
    ]
    first = group_companies(job1)
    alpha, beta = first.assignments["a1"].company_id, first.assignments["b1"].company_id
    assert alpha == company_id_of("domain:alpha.example")  # derived, the same on every machine
    stored = {p: a.company_id for p, a in first.assignments.items()}
    # A later job finds another alpha branch with a new key that sorts first: the id stays.
    job2 = [*job1, Member("a4", "https://aaa-alpha.example/", "+14025550101", "4 A St")]
    second = group_companies(job2, stored)
    assert second.assignments["a4"].company_id == alpha
    assert second.assignments["a4"].company_size == 4
    # A third finds a branch listing beta's phone on alpha's website: the two are one company.
    stored = {p: a.company_id for p, a in second.assignments.items()}
    job3 = [*job2, Member("x", "https://alpha.example/beta", "+14025550199", "5 C St")]
    third = group_companies(job3, stored)
    assert {a.company_id for a in third.assignments.values()} == {alpha}  # the larger keeps its id
    assert third.assignments["b1"].company_size == 7
    assert third.merged == {beta: alpha}  # and beta's id leads to it


async def test_regroups_asked_during_one_share_the_next_one() -> None:
    flight: SingleFlight[int] = SingleFlight()
    gates = [asyncio.Event(), asyncio.Event()]
    started: list[int] = []

    async def run() -> int:
        n = len(started)
        started.append(n)
        await gates[n].wait()
        return n

    first = asyncio.create_task(flight(run))
    await eventually(lambda: started == [0], what="the first run started")
    # A batch's children ending while it runs: none of them can use it (it began before they asked).
    burst = [asyncio.create_task(flight(run)) for _ in range(5)]
    gates[0].set()
    assert await first == 0
    await eventually(lambda: started == [0, 1], what="the second run started")
    gates[1].set()
    assert await asyncio.gather(*burst) == [1] * 5
    assert flight.runs == 2


async def test_a_run_whose_caller_is_cancelled_or_fails_is_made_again_by_a_waiter() -> None:
    flight: SingleFlight[int] = SingleFlight()
    release = asyncio.Event()
    calls = 0

    async def run() -> int:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise ConnectionError("the database went away")
        await release.wait()
        return calls

    runner = asyncio.create_task(flight(run))
    await eventually(lambda: calls == 1, what="the first run started")
    waiters = [asyncio.create_task(flight(run)) for _ in range(2)]
    runner.cancel()  # the waiters are scheduled first: they find the run going, then see it end
    # One waiter runs next and fails (its error is its own); the other runs again and is served.
    release.set()
    outcomes = await asyncio.gather(*waiters, return_exceptions=True)
    assert sorted(map(repr, outcomes)) == sorted([repr(ConnectionError("the database went away")), "3"])
    assert flight.runs == 3


async def test_the_replicas_answers_name_each_branchs_chain() -> None:
    async with TestClient(TestServer(create_maps_app())) as client:
        response = await client.get("/_answers", params={"q": "roofers", "location": "Lincoln, NE"})
        answers = (await response.json())["answers"]
    truth = generate_answer_set("roofers", "Lincoln, NE", 0, 120).businesses
    assert [a["chain"] for a in answers] == [b.chain for b in truth]
    chains: dict[str, list[dict[str, Any]]] = {}
    for answer in answers:
        if answer["chain"] is not None:
            chains.setdefault(answer["chain"], []).append(answer)
    assert len(chains) >= 2
    for head, branches in chains.items():
        assert len(branches) >= 2
        assert branches[0]["place_id"] == head  # the chain's first branch names it
        # One brand: its name, its one website and its central phone on every branch.
        assert len({(b["name"], b["website"], b["phone_e164"]) for b in branches}) == 1
        addresses = [b["full_address"] for b in branches if b["full_address"]]
        assert len(set(addresses)) == len(addresses)  # each branch at its own address
