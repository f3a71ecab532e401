"""The site actor: reports what it read as facts, writes every report (a dead site's too), and
waits out our own egress failing instead of calling the sites dead."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from actors.actor import ActorCell
from actors.site import LeadSiteRead, ReadSite, SiteDeps, SiteJob, SiteReader, SiteReturned
from leadlawk_daemon.clock import FakeClock
from leadlawk_daemon.listing import Listing
from leadlawk_daemon.replicas.sites import SitesReplica, serve_sites_replica
from leadlawk_daemon.resilience.breaker import CircuitBreaker
from leadlawk_daemon.settings import SitesSettings, load_settings
from leadlawk_daemon.sites import EgressGuard, SiteClient, SiteReport, SiteStatus


@dataclass
class FakeJob:
    job_id: str = "job-1"
    facts: list[Any] = field(default_factory=list)
    stopped: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def active(self) -> bool:
        return not self.stopped.is_set()

    def report(self, fact: Any) -> None:
        self.facts.append(fact)


@dataclass
class FakeWriter:
    written: list[tuple[str | None, SiteReport]] = field(default_factory=list)

    async def write_site(self, job: SiteJob, listing: Listing, report: SiteReport) -> None:
        self.written.append((listing.place_id, report))


@pytest.fixture
async def replica() -> AsyncIterator[SitesReplica]:
    async with serve_sites_replica(seed=4) as running:
        yield running


def _reader(settings: SitesSettings, client: SiteClient, writer: FakeWriter, clock: FakeClock) -> SiteReader:
    breaker = CircuitBreaker("sites-egress", failure_threshold=3, reset_timeout=30.0, call_timeout=None, clock=clock)
    deps = SiteDeps(client=client, guard=EgressGuard(breaker), writer=writer)
    cell: ActorCell[ReadSite] = ActorCell(
        "site", lambda c: SiteReader(c, deps), load_settings().actors.for_actor("site"), clock=clock
    )
    actor = cell.spawn()
    assert isinstance(actor, SiteReader)
    return actor


def _lead(n: int, website: str | None) -> Listing:
    return Listing(name=f"Lead {n}", place_id=f"ChIJ{n}", website=website)


async def test_sites_read_are_written_and_reported(replica: SitesReplica) -> None:
    settings = load_settings().sites.model_copy(update={"proxy": replica.base_url, "ca_file": str(replica.ca_path)})
    job, writer = FakeJob(), FakeWriter()
    async with SiteClient(settings) as client:
        reader = _reader(settings, client, writer, FakeClock())
        leads = [_lead(1, "http://t-ok-wix-a.example/"), _lead(2, "http://t-dns-b.example/"), _lead(3, None),
                 _lead(4, "ftp://files.example/")]
        for lead in leads:
            await reader.handle(ReadSite(job, lead))
    statuses = {place_id: report.status for place_id, report in writer.written}
    assert statuses == {"ChIJ1": SiteStatus.OK, "ChIJ2": SiteStatus.DEAD, "ChIJ4": SiteStatus.DEAD}
    assert writer.written[2][1].reason == "not a website URL: 'ftp://files.example/'"
    assert [type(f) for f in job.facts] == [LeadSiteRead] * 4
    assert job.facts[2] == LeadSiteRead("ChIJ3", None)  # no website: nothing read, nothing written
    assert isinstance(job.facts[0], LeadSiteRead)
    assert job.facts[0].report is writer.written[0][1]


async def test_our_egress_down_is_waited_out_not_recorded(replica: SitesReplica) -> None:
    async with serve_sites_replica() as gone:
        proxy = gone.base_url  # closed when this block ends: a proxy that refuses us
    settings = load_settings().sites.model_copy(update={"proxy": proxy})
    job, writer, clock = FakeJob(), FakeWriter(), FakeClock()
    async with SiteClient(settings) as client:
        reader = _reader(settings, client, writer, clock)
        handling = asyncio.create_task(reader.handle(ReadSite(job, _lead(1, "http://t-ok-a.example/"))))
        await clock.wait_for_sleepers()  # it is waiting for the proxy, not failing the lead
        assert writer.written == []
        assert job.facts == []
        job.stopped.set()
        await handling
    assert job.facts == [SiteReturned(_lead(1, "http://t-ok-a.example/"), "its job stopped")]
    assert writer.written == []


async def test_a_stopped_job_hands_its_lead_back(replica: SitesReplica) -> None:
    settings = load_settings().sites.model_copy(update={"proxy": replica.base_url})
    job, writer = FakeJob(), FakeWriter()
    job.stopped.set()
    async with SiteClient(settings) as client:
        await _reader(settings, client, writer, FakeClock()).handle(ReadSite(job, _lead(1, "http://t-ok-a.example/")))
    assert [type(f) for f in job.facts] == [SiteReturned]
    assert writer.written == []
