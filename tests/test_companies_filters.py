"""The chain filters (docs/chains.md): ``independent_only`` and ``max_branches`` in the job spec,
a lead's verdict by its company's size, judged again when the job ends and its leads are grouped;
and a whole job against the Maps replica, whose chains' branches do not qualify."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from leadlawk_daemon.console.forms import spec_from_form
from leadlawk_daemon.jobs.verdicts import VerdictBook
from leadlawk_daemon.jobspec import JobSpecError, parse_job_spec
from leadlawk_daemon.listing import Listing
from leadlawk_daemon.qualify import NOT_GROUPED, Filters, qualify
from leadlawk_daemon.replicas.maps_business import generate_answer_set
from tests.daemon_process import ROOT


def test_the_job_spec_takes_the_chain_filters_and_names_bad_values() -> None:
    spec = parse_job_spec({"query": "plumbers", "independent_only": True, "max_branches": 3}, 65_536)
    assert (spec.independent_only, spec.max_branches) == (True, 3)
    again = parse_job_spec(spec.to_dict(), 65_536)
    assert (again.independent_only, again.max_branches) == (True, 3)
    assert "independent_only" not in parse_job_spec({"query": "plumbers"}, 65_536).to_dict()
    with pytest.raises(JobSpecError) as refused:
        parse_job_spec({"query": "plumbers", "independent_only": "yes", "max_branches": 0}, 65_536)
    assert refused.value.problems == [
        'independent_only: must be true or false, not string (got "yes")',
        "max_branches: must be between 1 and 10000 (got 0)",
    ]


def test_a_leads_verdict_reads_its_companys_size() -> None:
    lead = Listing(name="Acme", place_id="a")
    only = Filters.from_spec({"independent_only": True})
    at_most_two = Filters.from_spec({"max_branches": 2})
    assert qualify(lead, (), only, company_size=1).qualified
    assert qualify(lead, (), only, company_size=3).reasons == ("part of a chain of 3 branches (independent only)",)
    assert qualify(lead, (), at_most_two, company_size=2).qualified
    assert qualify(lead, (), at_most_two, company_size=3).reasons == ("chain of 3 branches, more than 2",)
    assert qualify(lead, (), only).reasons == (NOT_GROUPED,)  # not grouped yet: not met
    assert qualify(lead, (), Filters(), company_size=9).qualified  # no chain filter: size is no reason


def test_leads_are_judged_again_once_their_companies_are_known() -> None:
    book = VerdictBook(Filters.from_spec({"independent_only": True}), lambda _place_id: False)
    for place_id in ("chain", "solo"):
        book.expect(place_id, Listing(name=place_id, place_id=place_id), ())
        book.lead_durable(place_id)
    first = {v.place_id: v.qualification for v in book.due()}
    assert {q.reasons for q in first.values()} == {(NOT_GROUPED,)}
    book.written(book.due())
    assert book.due() == []
    book.companies_grouped({"chain": 4, "solo": 1})
    final = {v.place_id: v.qualification for v in book.due(final=True)}
    assert not final["chain"].qualified
    assert final["solo"].qualified
    book.written(book.due(final=True))
    book.companies_grouped({"chain": 4, "solo": 1})  # the same sizes again: nothing to judge
    assert book.due(final=True) == []


def _search_with_chains() -> tuple[str, str]:
    """A replica search whose first 30 businesses hold branches of chains (found, not assumed, so a
    change to the replica's draws cannot leave the test with nothing to look at)."""
    for query, place in itertools.product(
        ("roofers", "dentists", "bakeries", "plumbers"), ("Lincoln, NE", "Omaha, NE")
    ):
        if sum(b.chain is not None for b in generate_answer_set(query, place, 0, 30).businesses) >= 4:
            return query, place
    raise AssertionError("no replica search of 30 businesses holds a chain's branches")


def test_a_job_with_independent_only_qualifies_no_branch_of_the_replicas_chains(tmp_path: Path) -> None:
    query, place = _search_with_chains()

    async def run_collect() -> subprocess.CompletedProcess[str]:
        from leadlawk_daemon.replicas.maps import serve_maps_replica

        async with serve_maps_replica("127.0.0.1", 0, max_results=30) as maps_url:
            extra = {"LEADLAWK__MAPS__BASE_URL": maps_url, "LEADLAWK__MAPS__NAVIGATIONS_PER_MINUTE": "6000",
                     "PORT": "0", "LEADLAWK__SERVER__HOST": "127.0.0.1"}  # fmt: skip
            output = str(tmp_path / "out.jsonl")
            args = ["collect", query, "--location", place, "--limit", "30", "--no-pagespeed",
                    "--independent-only", "-o", output]  # fmt: skip
            env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL",)}
            env |= {"DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}", "PYTHONPATH": str(ROOT), **extra}
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "leadlawk_daemon", *args, env=env, cwd=ROOT,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await asyncio.wait_for(proc.communicate(), 150)
            return subprocess.CompletedProcess(args, proc.returncode or 0, out.decode(), err.decode())

    result = asyncio.run(run_collect())
    assert result.returncode == 0, result.stderr[-2000:]
    rows = {row["place_id"]: row for row in map(orjson.loads, (tmp_path / "out.jsonl").read_text().splitlines())}
    truth = {b.place_id: b for b in generate_answer_set(query, place, 0, 30).businesses}
    assert set(rows) == set(truth)
    branches = {p for p, b in truth.items() if b.chain is not None}
    assert len(branches) >= 4
    for place_id, row in rows.items():
        chain = truth[place_id].chain
        size = sum(1 for b in truth.values() if chain is not None and b.chain == chain) or 1
        assert row["company_size"] == size, row["name"]
        assert row["qualified"] is (size == 1), (row["name"], row["reasons"])
        if size > 1:
            assert row["reasons"] == [f"part of a chain of {size} branches (independent only)"]


def test_the_consoles_form_takes_the_chain_filters_and_names_a_bad_one() -> None:
    form = {"query": "roofers", "independent_only": "on", "max_branches": "3", "pagespeed": "on"}
    result = spec_from_form(form, {}, max_bytes=65_536, max_area_km2=10_000)
    assert result.spec is not None
    assert (result.spec.independent_only, result.spec.max_branches) == (True, 3)
    bad = spec_from_form({"query": "roofers", "max_branches": "0"}, {}, max_bytes=65_536, max_area_km2=10_000)
    assert bad.errors == {"max_branches": ["must be between 1 and 10000 (got 0)"]}
