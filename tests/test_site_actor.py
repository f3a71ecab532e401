"""The site actor with a job's real state: what it reads goes to the writer and is reported as a
fact the job counts; our own egress failing is waited out, never recorded as dead sites."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from actors.actor import Actor, ActorCell
from actors.clock import FakeClock
from actors.site import SiteDeps, SiteReader
from actors.write_buffer import WriteBuffer
from leadlawk_daemon.jobs.state import JobState
from leadlawk_daemon.jobs.verdicts import write_verdicts
from leadlawk_daemon.jobspec import parse_job_spec
from leadlawk_daemon.listing import Listing
from leadlawk_daemon.messages import (
    LeadEnriched,
    LeadScraped,
    LeadSiteRead,
    ReadSite,
    RowsCommitted,
    WriteLead,
    WriterMessage,
    WriteSite,
)
from leadlawk_daemon.qualify import Filters
from leadlawk_daemon.replicas.sites import SitesReplica, serve_sites_replica
from leadlawk_daemon.resilience.breaker import BreakerState, CircuitBreaker
from leadlawk_daemon.settings import SitesSettings, load_settings
from leadlawk_daemon.sites import EgressGuard, SiteClient, SiteReport, SiteStatus
from leadlawk_daemon.store import open_store

pytestmark = pytest.mark.sites_replica(seed=4)


def _job(**site: object) -> JobState:
    spec = parse_job_spec({"query": "roofers", "site": site} if site else {"query": "roofers"}, 65_536)
    state = JobState("job-1", spec, Filters.from_spec(spec.to_dict()))
    state.read_sites = True
    return state


def _writer() -> ActorCell[WriterMessage]:
    return ActorCell("writer", lambda cell: Actor(cell), load_settings().actors.for_actor("writer"))


def _written(writer: ActorCell[WriterMessage]) -> list[WriteSite]:
    out = []
    while (envelope := writer.mailbox.get_nowait()) is not None:
        assert isinstance(envelope.message, WriteSite)
        out.append(envelope.message)
    return out


def _reader(
    settings: SitesSettings, client: SiteClient, writer: ActorCell[WriterMessage], clock: FakeClock
) -> SiteReader:
    breaker = CircuitBreaker("sites", failure_threshold=3, reset_timeout=30.0, call_timeout=None, clock=clock)
    deps = SiteDeps(client=client, guard=EgressGuard(breaker), writer=writer)
    cell: ActorCell[ReadSite] = ActorCell(
        "site", lambda c: SiteReader(c, deps), load_settings().actors.for_actor("site"), clock=clock
    )
    actor = cell.spawn()
    assert isinstance(actor, SiteReader)
    return actor


def _lead(n: int, website: str | None) -> Listing:
    return Listing(name=f"Lead {n}", place_id=f"ChIJ{n}", website=website)


async def test_sites_read_are_written_reported_and_counted(sites_replica: SitesReplica) -> None:
    settings = load_settings().sites.model_copy(
        update={"proxy": sites_replica.base_url, "ca_file": str(sites_replica.ca_path)}
    )
    job, writer = _job(status=["dead"]), _writer()
    leads = [_lead(1, "http://t-ok-wix-a.example/"), _lead(2, "http://t-dns-b.example/"), _lead(3, None),
             _lead(4, "ftp://files.example/")]
    for rank, lead in enumerate(leads):
        job.report(LeadScraped(lead, rank))
    async with SiteClient(settings) as client:
        reader = _reader(settings, client, writer, FakeClock())
        while (message := job.next_site_read()) is not None:
            await reader.handle(message)
    written = {m.listing.place_id: m.report for m in _written(writer)}
    assert {k: r.status for k, r in written.items()} == {
        "ChIJ1": SiteStatus.OK, "ChIJ2": SiteStatus.DEAD, "ChIJ4": SiteStatus.DEAD}
    assert written["ChIJ4"].reason == "not a website URL: 'ftp://files.example/'"
    assert "ChIJ3" not in job.site_reports  # no website: never queued, never read
    assert job.site_for("ChIJ2") is written["ChIJ2"]  # for the lead's qualification
    assert not job.needs_site
    assert ("site", "ChIJ1") in job.unwritten  # the job is not complete until the rows are durable
    job.report(RowsCommitted((), (), (), ("ChIJ1", "ChIJ2", "ChIJ4")))
    assert not any(kind == "site" for kind, _ in job.unwritten)


async def test_leads_whose_sites_the_egress_policy_refuses_are_facts_not_an_outage() -> None:
    # No proxy, nothing allowed: every site is refused before a socket is opened.
    settings = load_settings().sites.model_copy(update={"proxy": None, "allowed_networks": ()})
    job, writer, clock = _job(), _writer(), FakeClock()
    sites = ["http://169.254.169.254/latest/meta-data/", "http://0x7f.1:9/jobs", "http://[::ffff:10.0.0.1]/",
             "http://2130706433:8080/", "http://192.168.1.1/"]
    for rank, website in enumerate(sites):
        job.report(LeadScraped(_lead(rank, website), rank))
    async with SiteClient(settings) as client:
        reader = _reader(settings, client, writer, clock)
        while (message := job.next_site_read()) is not None:
            await reader.handle(message)
    written = {m.listing.website: m.report for m in _written(writer)}
    assert {site: report.status for site, report in written.items()} == dict.fromkeys(
        sites, SiteStatus.BLOCKED_BY_POLICY)
    assert written[sites[0]].reason == "169.254.169.254 (link-local, cloud metadata) refused by the egress policy"
    assert reader.deps.guard.breaker.state is BreakerState.CLOSED  # five in a row, threshold three: still closed
    assert not job.needs_site


async def test_our_egress_down_is_waited_out_not_recorded() -> None:
    async with serve_sites_replica() as gone:
        proxy = gone.base_url  # closed when this block ends: a proxy that refuses us
    settings = load_settings().sites.model_copy(update={"proxy": proxy})
    job, writer, clock = _job(), _writer(), FakeClock()
    lead = _lead(1, "http://t-ok-a.example/")
    job.report(LeadScraped(lead, 0))
    message = job.next_site_read()
    assert message is not None
    async with SiteClient(settings) as client:
        reader = _reader(settings, client, writer, clock)
        handling = asyncio.create_task(reader.handle(message))
        # It is waiting for the proxy, not failing the lead. Reaching that wait starts the reader's
        # worker processes first, which took over the default 5 s once on a loaded 2-core machine.
        await clock.wait_for_sleepers(within=30.0)
        assert job.site_reports == {}
        job.stop("cancelled")
        await handling
    assert _written(writer) == []
    assert job.site_reports == {}
    assert not job.reading_site  # handed back, not lost


async def test_a_stopped_job_hands_its_lead_back(sites_replica: SitesReplica) -> None:
    settings = load_settings().sites.model_copy(update={"proxy": sites_replica.base_url})
    job, writer = _job(), _writer()
    job.report(LeadScraped(_lead(1, "http://t-ok-a.example/"), 0))
    message = job.next_site_read()
    assert message is not None
    job.stop("shutdown")
    async with SiteClient(settings) as client:
        await _reader(settings, client, writer, FakeClock()).handle(message)
    assert _written(writer) == []
    assert not job.reading_site


async def test_the_writer_stores_the_site_and_the_job_judges_the_lead_once_it_is_durable(tmp_path: Path) -> None:
    job = _job(require_email=True)
    lead = _lead(1, "http://acme.example/")
    job.report(LeadScraped(lead, 0))
    job.report(LeadEnriched("ChIJ1", handed_to_writer=False))  # PageSpeed had nothing to add
    buffer = WriteBuffer(100, 100)
    async with open_store(f"sqlite:///{tmp_path}/w.db", clock=FakeClock(), migrate=True) as store:
        await store.create_job("job-1", job.spec.to_dict())
        buffer.add(WriteLead(job.handle, lead, 0))
        await buffer.write_batch(store)
        assert job.verdicts.due() == []  # its site is awaited: no verdict from half of its facts
        before = (await store.lead_rows_for_export("job-1"))[0]
        report = SiteReport(site="acme.example", url="http://acme.example/", status=SiteStatus.OK,
                            emails=["info@acme.example"], cms="wix")
        job.report(LeadSiteRead("ChIJ1", report))
        buffer.add(WriteSite(job.handle, lead, report))
        await buffer.write_batch(store)
        due = job.verdicts.due()
        await write_verdicts(store, "job-1", due)
        job.verdicts_written(due)
        after = (await store.lead_rows_for_export("job-1"))[0]
    assert (before["qualified"], before["reasons"]) == (None, None)
    assert (after["qualified"], after["reasons"], after["site_emails"]) == (True, [], "info@acme.example")
    assert job.qualified == {"ChIJ1": True}
    assert not job.unwritten


def test_a_resumed_job_reads_only_the_sites_not_read_yet() -> None:
    job = _job()
    rows: list[dict[str, object]] = [
        {"place_id": "ChIJ1", "name": "Read", "website": "http://a.example/", "site_status": "ok"},
        {"place_id": "ChIJ2", "name": "Unread", "website": "http://b.example/", "site_status": None},
        {"place_id": "ChIJ3", "name": "No site", "website": None, "site_status": None},
    ]
    job.resume_from(rows)
    assert [listing.place_id for listing in job.to_read_site] == ["ChIJ2"]
    assert job.sites_read == {"ChIJ1"}
