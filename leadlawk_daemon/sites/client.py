"""The site client: a website's home page and up to ``max_pages`` contact/about/impressum pages,
read politely, turned into one :class:`SiteReport`.

Knows nothing of jobs or leads. Every site, however broken, yields a report (dead, parked or
blocked, with the reason); the only errors raised are about us: :class:`ProxyUnreachable` when
the configured proxy cannot be reached, ``ValueError`` for a URL that is not a website at all.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

from aiohttp.abc import AbstractResolver

from actors.clock import Clock, MonotonicClock
from actors.racing import Stopped, reap, unless_set
from leadlawk_daemon.resilience.inflight import InFlightLimit
from leadlawk_daemon.resilience.worker_pool import TaskLost
from leadlawk_daemon.settings import SitesSettings
from leadlawk_daemon.sites.cache import SiteCache
from leadlawk_daemon.sites.decode import decode_body
from leadlawk_daemon.sites.demand import SITE_READ
from leadlawk_daemon.sites.emails import EmailFinds
from leadlawk_daemon.sites.extract import PageFacts, extract_page, site_key
from leadlawk_daemon.sites.extract_pool import extraction_pool, header_tech, page_facts
from leadlawk_daemon.sites.fetch import Fetcher, FetchFailure, Page
from leadlawk_daemon.sites.policy import EgressPolicy
from leadlawk_daemon.sites.report import SiteReport, SiteStatus
from leadlawk_daemon.sites.robots import RobotsRules, parse_robots

__all__ = ["SiteClient", "normalize_site_url", "report_from_facts", "report_from_html"]

_ROBOTS_MAX_BYTES = 512 * 1024  # RFC 9309: crawlers must read at least 500 KiB
_HTML_TYPES = ("html", "xml", "text/plain")
_REDIRECT_TO = "redirect to "


def normalize_site_url(url: str) -> str:
    """``acme.com`` → ``http://acme.com/``; raises ValueError naming what is wrong."""
    text = url.strip()
    if not text:
        raise ValueError("empty website URL")
    if "://" not in text:
        text = "http://" + text
    try:
        parts = urlsplit(text)
        host = parts.hostname
    except ValueError:
        raise ValueError(f"not a website URL: {url[:200]!r}") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError(f"not a website URL: {url[:200]!r}")
    return text if parts.path else text + "/"


def _year_now(clock: Clock) -> int:
    return datetime.fromtimestamp(clock.wall(), UTC).year


def _last_modified(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).date().isoformat()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.lower()}"


def _is_html(page: Page) -> bool:
    kind = page.headers.get("content-type", "").lower()
    return not kind or any(t in kind for t in _HTML_TYPES)


def _merge_page(report: SiteReport, emails: EmailFinds, facts: PageFacts) -> None:
    emails.merge(facts.emails)
    for phone in facts.phones:
        if phone not in report.phones:
            report.phones.append(phone)
    for network, link in facts.socials.items():
        report.socials.setdefault(network, link)
    report.contact_form = bool(report.contact_form) or facts.contact_form
    for kind, found in facts.capped.items():  # the page that passed the cap by most
        report.capped[kind] = max(report.capped.get(kind, 0), found)


def report_from_html(html: str, url: str, *, newest_year: int) -> SiteReport:
    """The report of a saved page read here, in this process: contacts and markup facts only."""
    return report_from_facts(extract_page(html, url, newest_year=newest_year), url)


def report_from_facts(facts: PageFacts, url: str) -> SiteReport:
    """The report of a saved page (``leadlawk site FILE``) from its facts."""
    report = SiteReport(site=site_key(urlsplit(url).hostname or ""), url=url, status=SiteStatus.OK)
    _apply_home(report, facts)
    report.https = None
    report.contact_form = facts.contact_form
    emails = EmailFinds()
    _merge_page(report, emails, facts)
    report.emails, report.rejected_emails = emails.kept, {k: str(v) for k, v in emails.rejected.items()}
    return report


def _apply_home(report: SiteReport, facts: PageFacts) -> None:
    report.mobile_viewport = facts.mobile_viewport
    report.generator = facts.generator
    report.copyright_year = facts.copyright_year
    report.parked = facts.parked
    report.cms = facts.cms or ("other" if facts.generator else "handwritten")
    report.tech = list(facts.tech)
    if facts.parked is not None:
        report.status = SiteStatus.PARKED
        report.reason = "parking page" if facts.parked == "parked" else "coming-soon page"


class _Visit:
    """The state of reading one site: robots rules per origin, pages read."""

    def __init__(self) -> None:
        self.robots: dict[str, RobotsRules] = {}
        self.cert_error: str | None = None  # the first certificate refused on the way to the home page


class SiteClient:
    """Reads sites. ``limit`` sizes how many are read at once (the site actor's adaptive limit,
    :mod:`leadlawk_daemon.sites.demand`); without one, ``sites.max_in_flight`` at most."""

    def __init__(
        self, settings: SitesSettings, *, clock: Clock | None = None, limit: InFlightLimit | None = None,
        resolver: AbstractResolver | None = None,
    ) -> None:
        """``resolver``: the DNS resolver the egress policy checks the answers of (default:
        aiohttp's); tests map a public name to loopback with one."""
        self.settings = settings
        self.clock = clock or MonotonicClock()
        self.fetcher = Fetcher(
            user_agent=settings.user_agent, timeout=settings.timeout, max_bytes=settings.max_bytes,
            per_host=settings.per_host, max_connections=max(10, settings.max_in_flight * settings.per_host),
            proxy=settings.proxy, ca_file=settings.ca_file,
            policy=EgressPolicy.from_cidrs(settings.allowed_networks), resolver=resolver,
        )
        self.cache = SiteCache(ttl=settings.ttl, max_entries=settings.cache_size, clock=self.clock)
        self._sites = asyncio.Semaphore(settings.max_in_flight)
        self.limit = limit
        self._product = settings.user_agent.split("/", 1)[0].split()[0] if settings.user_agent.strip() else "*"
        # Pages are read in worker processes, each page within its CPU budget (extract_pool.py):
        # a thread would share the GIL that a backtracking pattern holds, and cannot be stopped.
        self.pages = extraction_pool(settings.parse_workers, settings.parse_budget)

    async def __aenter__(self) -> SiteClient:
        await self.pages.__aenter__()
        try:
            await self.fetcher.open()
        except BaseException:
            await self.pages.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.fetcher.close()
        finally:
            await self.pages.close()

    async def inspect(self, url: str) -> SiteReport:
        """The report of the site at ``url``, from the cache when its origin was read within ttl."""
        start = normalize_site_url(url)
        key = site_key(urlsplit(start).hostname or "")
        return await self.cache.get_or_fetch(key, lambda: self._inspect_limited(start, key))

    async def _inspect_limited(self, url: str, key: str) -> SiteReport:
        limit = self.limit
        if limit is None:
            async with self._sites:
                return await self._within_budget(url, key)
        limit.refresh()  # the demand it is sized for has moved since the last read
        async with limit.slot():
            started = limit.started(SITE_READ)
            ended = False
            try:
                report = await self._within_budget(url, key)
                ended = True
                return report
            finally:
                # A read cut short (its job stopped) has no latency to learn from; the wait for
                # the slot is not the read's latency either.
                limit.finished(SITE_READ, started, measured=ended)

    async def _within_budget(self, url: str, key: str) -> SiteReport:
        """The site read within ``sites.site_budget`` in all (every hop, robots.txt and page): a
        read past it is the site's fact, dead, not our outage (the per-request timeouts, shorter,
        are what tell the egress breaker that nothing answers)."""
        budget = self.settings.site_budget
        expired = asyncio.Event()

        async def alarm() -> None:
            await self.clock.sleep(budget)
            expired.set()

        timer = asyncio.ensure_future(alarm())
        try:
            report = await unless_set(expired, self._inspect(url, key))
        finally:
            await reap(timer)
        if isinstance(report, Stopped):
            return SiteReport(site=key, url=url, status=SiteStatus.DEAD, fetched_at=self.clock.wall(),
                              reason=f"timed out after {budget:g} s (whole site)")
        return report

    async def _robots(self, visit: _Visit, url: str) -> RobotsRules:
        origin = _origin(url)
        rules = visit.robots.get(origin)
        if rules is not None:
            return rules
        try:
            page, chain = await self._follow(visit, origin + "/robots.txt", check_robots=False,
                                             max_bytes=_ROBOTS_MAX_BYTES)
        except FetchFailure as exc:
            if not exc.unreachable and not exc.certificate and not exc.refused:
                rules = RobotsRules.allow_everything()  # redirects without end: as "unavailable"
            else:
                raise
        else:
            if 200 <= page.status < 300:
                rules = parse_robots(decode_body(page.body, page.headers.get("content-type")), self._product)
            elif 400 <= page.status < 500:
                rules = RobotsRules.allow_everything()
            else:
                raise FetchFailure(f"HTTP {page.status} (robots.txt)")
            for hop in chain:
                visit.robots.setdefault(_origin(hop), rules)
        visit.robots[origin] = rules
        return rules

    async def _follow(
        self, visit: _Visit, url: str, *, check_robots: bool = True, max_bytes: int | None = None
    ) -> tuple[Page, list[str]]:
        """GET ``url`` following at most ``max_redirects`` redirects; returns the last page and
        every URL asked (the chain). An invalid certificate is retried unverified once, to read
        the page all the same: the certificate's fault is recorded by the caller."""
        chain: list[str] = []
        current = url
        while True:
            redirected = bool(chain)
            try:
                if check_robots and not (await self._robots(visit, current)).allows(current):
                    raise _Disallowed(current)
                chain.append(current)
                page = await self._get(visit, current, max_bytes)
            except FetchFailure as exc:
                # A hop the egress policy refused is named as the hop it was (the reason a user
                # reads on the lead): "redirect to 127.0.0.1 (loopback) refused by the egress policy".
                if exc.refused and redirected and not exc.reason.startswith(_REDIRECT_TO):
                    raise FetchFailure(_REDIRECT_TO + exc.reason, refused=True) from None
                raise
            location = page.headers.get("location")
            if page.status not in (301, 302, 303, 307, 308) or not location:
                return page, chain
            try:
                following = urljoin(current, location.strip())
            except ValueError:
                raise FetchFailure("redirect to an invalid URL") from None
            if following in chain:
                raise FetchFailure("redirect loop")
            if len(chain) > self.settings.max_redirects:
                raise FetchFailure(f"more than {self.settings.max_redirects} redirects")
            if urlsplit(following).scheme not in ("http", "https"):
                raise FetchFailure("redirect to a non-web URL")
            current = following

    async def _get(self, visit: _Visit, url: str, max_bytes: int | None) -> Page:
        try:
            return await self.fetcher.get(url, max_bytes=max_bytes)
        except FetchFailure as exc:
            if not exc.certificate:
                raise
            if visit.cert_error is None:
                visit.cert_error = exc.reason
            return await self.fetcher.get(url, verify=False, max_bytes=max_bytes)

    async def _inspect(self, url: str, key: str) -> SiteReport:
        visit = _Visit()
        report = SiteReport(site=key, url=url, status=SiteStatus.OK, fetched_at=self.clock.wall())
        try:
            page, chain = await self._follow(visit, url)
        except _Disallowed as exc:
            report.status, report.reason = SiteStatus.BLOCKED, f"robots.txt disallows {urlsplit(exc.url).path or '/'}"
            return report
        except FetchFailure as exc:
            if exc.refused:  # nothing was sent: the lead's fact, never evidence about our egress
                report.status, report.reason = SiteStatus.BLOCKED_BY_POLICY, exc.reason
                return report
            report.status, report.reason, report.unreachable = SiteStatus.DEAD, exc.reason, exc.unreachable
            report.cert_valid = False if exc.certificate else None
            return report
        cert_error = visit.cert_error
        report.final_url, report.redirects, report.http_status = page.url, chain[:-1], page.status
        report.https = page.url.startswith("https://")
        report.cert_valid = (cert_error is None) if report.https else None
        report.http_to_https = await self._upgrades(visit, url, page.url)
        report.server = page.headers.get("server")
        report.last_modified = _last_modified(page.headers.get("last-modified"))
        report.page_bytes, report.truncated = page.size, page.truncated
        report.pages.append(page.url)
        if page.status in (401, 403, 429, 451):
            report.status, report.reason = SiteStatus.BLOCKED, f"HTTP {page.status}"
            return report
        if not 200 <= page.status < 300:
            report.status, report.reason = SiteStatus.DEAD, f"HTTP {page.status}"
            return report
        emails = EmailFinds()
        if _is_html(page):
            try:
                facts = await self._extract(page)
            except _Unreadable as exc:
                report.status, report.reason = SiteStatus.UNREADABLE, exc.reason
                return report
            _apply_home(report, facts)
            _merge_page(report, emails, facts)
            if report.status is SiteStatus.OK:
                await self._read_more(visit, report, emails, facts.candidate_pages)
        else:
            report.cms, report.tech = await self._header_tech(page)
        if cert_error is not None and report.status is SiteStatus.OK:
            report.status, report.reason = SiteStatus.DEAD, cert_error
        report.emails, report.rejected_emails = emails.kept, {k: str(v) for k, v in emails.rejected.items()}
        return report

    async def _upgrades(self, visit: _Visit, asked: str, final: str) -> bool | None:
        """Whether ``http://`` leads to ``https://``: seen on the way, or asked once more."""
        if asked.startswith("http://"):
            return final.startswith("https://")
        try:
            page = await self.fetcher.get("http://" + asked[len("https://"):], max_bytes=0)
        except FetchFailure:
            return None
        location = page.headers.get("location", "")
        return page.status in (301, 302, 307, 308) and urljoin(asked, location).startswith("https://")

    async def _extract(self, page: Page) -> PageFacts:
        """The page's facts, read in a worker; raises :class:`_Unreadable` when the page cost more
        than its budget or its worker died under it (the page's fact, never our outage)."""
        newest = _year_now(self.clock) + 1
        try:
            return await self.pages.run(
                page_facts, page.body, page.headers.get("content-type"), page.url, newest, list(page.headers.items())
            )
        except TaskLost as exc:
            raise _Unreadable(exc.reason) from None

    async def _header_tech(self, page: Page) -> tuple[str | None, list[str]]:
        """A page that is not HTML: its technology from its headers, read in a worker too (the
        fingerprints are compiled there, not in the daemon); unknown when the worker could not."""
        try:
            return await self.pages.run(header_tech, list(page.headers.items()), page.url)
        except TaskLost:
            return None, []

    async def _read_more(self, visit: _Visit, report: SiteReport, emails: EmailFinds, links: list[str]) -> None:
        wanted = [link for link in links if link not in report.pages][: self.settings.max_pages]

        async def one(link: str) -> PageFacts | None:
            try:
                page, _ = await self._follow(visit, link)
            except (FetchFailure, _Disallowed):
                return None  # a missing contact page says nothing about the site
            if not 200 <= page.status < 300 or not _is_html(page):
                return None
            report.pages.append(page.url)
            try:
                return await self._extract(page)
            except _Unreadable as exc:
                # The facts of the pages read stay; the site is marked for the one it could not.
                report.status, report.reason = SiteStatus.UNREADABLE, exc.reason
                return None

        for facts in await asyncio.gather(*(one(link) for link in wanted)):
            if facts is not None:
                _merge_page(report, emails, facts)


class _Unreadable(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Disallowed(Exception):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url
