"""The site client through the websites replica, used as the HTTP forward proxy it is: the
replica's cases against its ground truth, robots.txt, the per-host cap, the per-origin cache,
and every limit (redirects, time, size) cutting what it must."""

from __future__ import annotations

import asyncio
import io
import time
from typing import Any

import aiohttp
import orjson
import pytest

from actors.clock import FakeClock
from leadlawk_daemon.replicas.sites import SitesReplica, serve_sites_replica
from leadlawk_daemon.replicas.sites_content import answers
from leadlawk_daemon.resilience.breaker import CircuitBreaker
from leadlawk_daemon.settings import SitesSettings, load_settings
from leadlawk_daemon.sites import EgressGuard, EgressOutage, ProxyUnreachable, SiteClient, SiteStatus
from leadlawk_daemon.sites.command import run_site_command
from tests.waiting import eventually

pytestmark = pytest.mark.sites_replica(seed=3)


def _settings(sites_replica: SitesReplica, **changes: Any) -> SitesSettings:
    base = {"proxy": sites_replica.base_url, "ca_file": str(sites_replica.ca_path), "timeout": 5.0}
    return load_settings().sites.model_copy(update=base | changes)


@pytest.mark.parametrize(
    "host",
    [
        "t-ok-wordpress-a.example", "t-ok-wix-b.example", "t-ok-squarespace-c.example", "t-ok-godaddy-d.example",
        "t-ok-weebly-e.example", "t-ok-shopify-f.example", "t-ok-handwritten-g.example", "t-huge-h.example",
        "t-badcert-i.example", "t-badcert-j.example", "t-dns-k.example", "t-refused-l.example", "t-500-m.example",
        "t-404-n.example", "t-parked-o.example", "t-soon-p.example", "t-forbidden-q.example", "t-robots-r.example",
        "t-loop-s.example",
    ],
)
async def test_replica_cases_match_ground_truth(sites_replica: SitesReplica, host: str) -> None:
    truth = answers(sites_replica.profile(host))
    async with SiteClient(_settings(sites_replica)) as client:
        report = await client.inspect(f"http://{host}/")
    assert (report.status.value, sorted(report.emails)) == (truth["status"], truth["emails"])
    assert truth["reason"] is None or truth["reason"] in (report.reason or "")
    for name, got in (("https", report.https), ("cert_valid", report.cert_valid),
                      ("http_to_https", report.http_to_https)):
        if truth[name] is not None:
            assert got == truth[name], name
    if truth["cms"] is not None:
        assert (report.cms, report.mobile_viewport, report.copyright_year) == (
            truth["cms"], truth["mobile_viewport"], truth["copyright_year"])
        assert sorted(report.phones) == sorted(truth["phones"])
        assert set(report.socials) == set(truth["socials"])
        assert report.contact_form == truth["contact_form"]
        assert {email: rule for email, rule in report.rejected_emails.items()} == {
            email.rsplit("/", 1)[-1]: rule for email, rule in truth["junk"].items()}


async def test_robots_disallow_is_honoured(sites_replica: SitesReplica) -> None:
    host = next(h for h in (f"shop-{n}.example" for n in range(2000)) if sites_replica.profile(h).contact_disallowed)
    site = sites_replica.profile(host)
    async with SiteClient(_settings(sites_replica)) as client:
        report = await client.inspect(f"http://{host}/")
    assert report.status is SiteStatus.OK
    assert not any(page.endswith(site.contact_path) for page in report.pages)
    answered = await _replica_stats(sites_replica)
    assert answered["requests"][host] == len(report.pages) + len(report.redirects) + (2 if site.https else 1)


async def _replica_stats(sites_replica: SitesReplica) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(f"{sites_replica.base_url}/_stats") as response:
        data: dict[str, Any] = await response.json()
        return data


async def test_robots_forbidding_everything_blocks_the_site_unread(sites_replica: SitesReplica) -> None:
    async with SiteClient(_settings(sites_replica)) as client:
        report = await client.inspect("http://t-robots-x.example/")
    assert (report.status, report.reason) == (SiteStatus.BLOCKED, "robots.txt disallows /")
    assert sites_replica.requests["t-robots-x.example"] == 1  # robots.txt only


async def test_per_host_cap_holds(sites_replica: SitesReplica) -> None:
    sites_replica.faults.replace({"latency_ms": 50})
    async with SiteClient(_settings(sites_replica, per_host=2)) as client:
        urls = [f"http://t-ok-cap.example/page-{n}" for n in range(12)] + ["http://www.t-ok-cap.example/x"]
        await asyncio.gather(*(client.fetcher.get(url) for url in urls))
    assert sites_replica.requests["t-ok-cap.example"] == 13
    assert sites_replica.peak["t-ok-cap.example"] == 2  # reached, never passed


async def test_cache_serves_a_chains_branches_from_one_fetch(sites_replica: SitesReplica) -> None:
    async with SiteClient(_settings(sites_replica)) as client:
        branches = [f"http://t-ok-chain.example/locations/{n}/" for n in range(8)] + ["https://www.t-ok-chain.example/"]
        reports = await asyncio.gather(*(client.inspect(url) for url in branches))
        first_visit = sites_replica.requests["t-ok-chain.example"]
        again = await client.inspect("http://t-ok-chain.example/")
    assert client.cache.misses == 1
    assert client.cache.hits == 9
    assert all(report is reports[0] for report in (*reports, again))
    assert sites_replica.requests["t-ok-chain.example"] == first_visit  # nothing fetched for the others


async def test_cache_entries_expire_after_ttl(sites_replica: SitesReplica) -> None:
    clock = FakeClock()
    async with SiteClient(_settings(sites_replica, ttl=60.0), clock=clock) as client:
        await client.inspect("http://t-ok-ttl.example/")
        clock._now += 59.0
        await client.inspect("http://t-ok-ttl.example/")
        clock._now += 1.0
        await client.inspect("http://t-ok-ttl.example/")
    assert client.cache.misses == 2


async def test_hanging_and_slow_sites_are_cut_at_the_timeout(sites_replica: SitesReplica) -> None:
    async with SiteClient(_settings(sites_replica, timeout=0.3)) as client:
        started = time.monotonic()
        hung, slow = await asyncio.gather(client.inspect("http://t-hang-a.example/"),
                                          client.inspect("http://t-slow-b.example/"))
        elapsed = time.monotonic() - started
    assert (hung.status, hung.reason, hung.unreachable) == (SiteStatus.DEAD, "timed out after 0.3 s", True)
    assert (slow.status, slow.reason) == (SiteStatus.DEAD, "timed out after 0.3 s")
    assert elapsed < 2.0  # the replica would hold them 600 s and 2 s


async def test_a_site_read_is_cut_at_its_whole_budget(sites_replica: SitesReplica) -> None:
    sites_replica.faults.replace({"hang": True, "hosts": ["t-ok-budget.example"]})
    clock = FakeClock()
    # Each request may take a minute; the whole site, redirects and robots.txt included, 30 s.
    async with SiteClient(_settings(sites_replica, timeout=60.0, site_budget=30.0), clock=clock) as client:
        reading = asyncio.create_task(client.inspect("http://t-ok-budget.example/"))
        await clock.wait_for_sleepers()
        await eventually(lambda: sites_replica.requests["t-ok-budget.example"] == 1, what="the site holding the read")
        await clock.advance(30.0)
        report = await reading
    assert (report.status, report.reason, report.unreachable) == (
        SiteStatus.DEAD, "timed out after 30 s (whole site)", False)  # the site's fact, not our outage


async def test_redirect_loops_and_long_chains_are_cut(sites_replica: SitesReplica) -> None:
    sites_replica.faults.replace({"redirect_loop": True, "hosts": ["t-ok-loopy.example"]})
    async with SiteClient(_settings(sites_replica)) as client:
        looped = await client.inspect("http://t-ok-loopy.example/")
    assert (looped.status, looped.reason) == (SiteStatus.DEAD, "redirect loop")
    # https with www: http://x/ → https://www.x/ is two hops, over a limit of one
    host = next(h for h in (f"t-ok-w{n}.example" for n in range(500)) if sites_replica.profile(h).www)
    async with SiteClient(_settings(sites_replica, max_redirects=0)) as client:
        capped = await client.inspect(f"http://{host}/")
    assert (capped.status, capped.reason) == (SiteStatus.DEAD, "more than 0 redirects")


async def test_endless_body_and_huge_page_are_cut_at_the_cap(sites_replica: SitesReplica) -> None:
    sites_replica.faults.replace({"endless_body": True, "hosts": ["t-ok-endless.example"]})
    async with SiteClient(_settings(sites_replica, max_bytes=256 * 1024)) as client:
        endless, huge = await asyncio.gather(client.inspect("http://t-ok-endless.example/"),
                                             client.inspect("http://t-huge-z.example/"))
    assert (endless.page_bytes, endless.truncated, endless.status) == (256 * 1024, True, SiteStatus.OK)
    assert huge.truncated
    assert huge.page_bytes is not None
    assert huge.page_bytes <= 256 * 1024
    assert sorted(huge.emails) == answers(sites_replica.profile("t-huge-z.example"))["emails"]


async def test_server_errors_and_unreachable_hosts_are_facts(sites_replica: SitesReplica) -> None:
    sites_replica.faults.replace({"server_error": True, "hosts": ["t-ok-flaky.example"]})
    async with SiteClient(_settings(sites_replica)) as client:
        flaky, gone, outside = await asyncio.gather(
            client.inspect("http://t-ok-flaky.example/"), client.inspect("https://t-dns-gone.example/"),
            client.inspect("http://www.not-served.test/"))
    assert (flaky.status, flaky.reason, flaky.unreachable) == (SiteStatus.DEAD, "HTTP 503 (robots.txt)", False)
    assert gone.status is SiteStatus.DEAD
    assert gone.unreachable
    assert "502" in (gone.reason or "")
    assert outside.status is SiteStatus.DEAD
    assert outside.unreachable


async def test_https_start_asks_whether_http_upgrades(sites_replica: SitesReplica) -> None:
    hosts = [f"t-ok-up{n}.example" for n in range(40)]
    secure = next(h for h in hosts if sites_replica.profile(h).https)
    plain = next(h for h in hosts if not sites_replica.profile(h).https)
    async with SiteClient(_settings(sites_replica)) as client:
        upgraded, refused = await asyncio.gather(client.inspect(f"https://{secure}/"),
                                                 client.inspect(f"https://{plain}/"))
    assert (upgraded.status, upgraded.https, upgraded.http_to_https) == (SiteStatus.OK, True, True)
    # A site listed as https:// that has no https at all cannot be visited as listed: dead.
    assert (refused.status, refused.unreachable, refused.https) == (SiteStatus.DEAD, True, None)


async def test_untrusted_certificate_without_the_replicas_ca(sites_replica: SitesReplica) -> None:
    host = next(h for h in (f"t-ok-s{n}.example" for n in range(500)) if sites_replica.profile(h).https)
    async with SiteClient(_settings(sites_replica, ca_file=None)) as client:
        report = await client.inspect(f"http://{host}/")
    # Without trusting the replica's CA, its certificates are what a stranger's would be: invalid.
    assert (report.status, report.cert_valid) == (SiteStatus.DEAD, False)
    assert report.reason is not None
    assert report.reason.startswith("invalid certificate")


async def test_bad_urls_are_refused_with_a_reason(sites_replica: SitesReplica) -> None:
    async with SiteClient(_settings(sites_replica)) as client:
        for url in ("", "ftp://x.example/", "http://", "http://[::1/"):
            with pytest.raises(ValueError, match="URL"):
                await client.inspect(url)


async def test_proxy_down_is_our_outage_not_the_sites() -> None:
    async with serve_sites_replica() as gone:
        settings = load_settings().sites.model_copy(update={"proxy": gone.base_url})
    async with SiteClient(settings) as client:
        with pytest.raises(ProxyUnreachable):
            await client.inspect("http://t-ok-a.example/")


async def test_egress_breaker_opens_on_many_different_unreachable_sites(sites_replica: SitesReplica) -> None:
    clock = FakeClock()
    forgotten: list[str] = []
    breaker = CircuitBreaker("sites-egress", failure_threshold=3, reset_timeout=60.0, call_timeout=None, clock=clock)
    async with SiteClient(_settings(sites_replica), clock=clock) as client:

        def forget(streak: list[str]) -> None:
            forgotten.extend(streak)
            for site in streak:
                client.cache.forget(site)

        guard = EgressGuard(breaker, on_outage=forget)

        async def run(host: str) -> SiteStatus:
            report = await guard.run(host, lambda: client.inspect(f"http://{host}/"))
            return report.status

        assert await run("t-dns-1.example") is SiteStatus.DEAD
        assert await run("t-dns-1.example") is SiteStatus.DEAD  # the same site again: not counted
        assert await run("t-ok-alive.example") is SiteStatus.OK  # an answer in between resets the streak
        assert await run("t-dns-2.example") is SiteStatus.DEAD
        assert await run("t-refused-3.example") is SiteStatus.DEAD
        assert await run("t-dns-4.example") is SiteStatus.DEAD  # the third different one in a row
        assert forgotten == ["t-dns-2.example", "t-refused-3.example", "t-dns-4.example"]
        assert client.cache.get("t-dns-2.example") is None
        with pytest.raises(EgressOutage):
            await run("t-ok-later.example")


async def test_site_command_reads_urls_through_the_proxy(sites_replica: SitesReplica) -> None:
    out = io.StringIO()
    settings = _settings(sites_replica)
    status = await asyncio.to_thread(
        run_site_command, settings, ["http://t-ok-wix-cli.example/", "t-parked-cli.example", "ftp://x"], out)
    first, second, third = (orjson.loads(line) for line in out.getvalue().splitlines())
    assert status == 1  # the ftp:// target
    assert (first["cms"], first["status"]) == ("wix", "ok")
    assert sorted(first["emails"]) == answers(sites_replica.profile("t-ok-wix-cli.example"))["emails"]
    assert (second["status"], second["reason"]) == ("parked", "parking page")
    assert third == {"site": "ftp://x", "error": "not a website URL: 'ftp://x'"}
