"""The site actor: each lead's website read by the sites adapter, beside the PageSpeed enricher.

Its own mailbox is its bulkhead: a slow website never holds a PageSpeed call, nor the reverse.
Its workers are ``sites.max_in_flight``; how many sites are read at once is the client's
adaptive in-flight limit, sized like PageSpeed's from the reads' measured latency and the demand
for them (:mod:`leadlawk_daemon.sites.demand`), between a floor and that ceiling. The client
also caps requests per host at ``sites.per_host``, and a chain's branches share one fetch
through its cache.

Failures, by kind (docs/failure-model.md):

* a site that cannot be read is a fact about the lead (a report with status dead, parked or
  blocked and its reason), written like any other report: not a failure of anything;
* a website that is not a web address at all (``ftp://…``, garbage) is the same kind of fact:
  dead, with the reason;
* our own egress failing (many different sites unreachable in a row: the egress breaker is
  open, or the configured proxy refuses us), or no page-reading worker process starting, is an
  outage: the actor waits it out, spending no
  attempt and recording nothing, and retries the same site; the job shows as waiting on
  ``sites`` through the breaker's state;
* the job stopping hands the lead back (:class:`SiteReturned`), to be read if the job resumes;
* the site's addresses are judged (docs/email-verdicts.md) before its report is written; our DNS
  not answering is an outage waited out the same way (the ``dns`` breaker), never a verdict.

Reports go to the writer (``WriteSite``: batched, behind the database breaker, the lead's
qualification computed again with its site) and the job's owner hears ``LeadSiteRead``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from actors.actor import Actor, ActorCell
from actors.racing import Stopped, unless_set
from leadlawk_daemon.emails import DnsOutage, EmailVerifier
from leadlawk_daemon.messages import JobHandle, LeadSiteRead, ReadSite, SiteReturned, WriterMessage, WriteSite
from leadlawk_daemon.metrics import Metrics
from leadlawk_daemon.resilience.worker_pool import PoolUnavailable
from leadlawk_daemon.sites import EgressGuard, EgressOutage, ProxyUnreachable, SiteClient, SiteReport, SiteStatus
from leadlawk_daemon.sites.extract import site_key
from supervisors.backoff import Backoff, Jitter

__all__ = ["SiteDeps", "SiteReader", "not_a_website"]

log = logging.getLogger("leadlawk.site")
# Between tries while DNS does not answer and its breaker is still closed (once open, its trial time).
_DNS_BACKOFF = Backoff(0.25, 10.0, jitter=Jitter.FULL)


@dataclass(frozen=True, slots=True)
class SiteDeps:
    client: SiteClient
    guard: EgressGuard
    writer: ActorCell[WriterMessage]
    metrics: Metrics | None = None
    proxy_retry: float = 5.0  # seconds between tries while the configured proxy refuses us
    # Email verdicts (docs/email-verdicts.md): None when emails.enabled is false.
    emails: EmailVerifier | None = None


def not_a_website(url: str, reason: str) -> SiteReport:
    """The report of a lead whose website is not a web address: a fact (dead), not an error."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        host = ""
    return SiteReport(site=site_key(host)[:255], url=url[:2000], status=SiteStatus.DEAD, reason=reason[:300])


class SiteReader(Actor[ReadSite]):
    def __init__(self, cell: ActorCell[ReadSite], deps: SiteDeps) -> None:
        super().__init__(cell)
        self.deps = deps

    async def handle(self, message: ReadSite) -> None:
        job, listing = message.job, message.listing
        place_id, url = listing.place_id, listing.website
        if place_id is None:
            return
        if not url:
            job.report(LeadSiteRead(place_id, None))
            return
        started = time.monotonic()
        report = await self._read(job, url)
        if report is None:
            job.report(SiteReturned(listing, "its job stopped"))  # read again if the job resumes
            return
        if report.emails and self.deps.emails is not None:
            judged = await self._judge(job, report, self.deps.emails)
            if judged is None:
                job.report(SiteReturned(listing, "its job stopped"))
                return
            report = judged
        await self.deps.writer.tell(WriteSite(job, listing, report))
        job.report(LeadSiteRead(place_id, report))
        if self.deps.metrics is not None:
            self.deps.metrics.stage_duration.labels(stage="site").observe(time.monotonic() - started)

    async def _read(self, job: JobHandle, url: str) -> SiteReport | None:
        """The site's report; None when the job stopped first. Waits out our own egress outages."""
        client, guard = self.deps.client, self.deps.guard
        while job.active:
            try:
                key = site_key(urlsplit(url).hostname or "")
                result = await unless_set(job.stopped, guard.run(key, lambda: client.inspect(url)))
            except ValueError as exc:
                return not_a_website(url, str(exc))
            except (EgressOutage, ProxyUnreachable, PoolUnavailable) as exc:
                wait = exc.retry_after if isinstance(exc, EgressOutage) else self.deps.proxy_retry
                log.warning("site egress failing; waiting", extra={"job_id": job.job_id, "error": str(exc)})
                if isinstance(await unless_set(job.stopped, self.clock.sleep(max(wait, 0.05))), Stopped):
                    return None
                continue
            return None if isinstance(result, Stopped) else result
        return None

    async def _judge(self, job: JobHandle, report: SiteReport, verifier: EmailVerifier) -> SiteReport | None:
        """``report`` with its addresses' verdicts; None when the job stopped first.

        Judged before the report is written, so the lead's verdict is computed from complete facts.
        DNS not answering is an outage: waited out, spending no attempt, writing nothing (the lead
        is not marked ``unknown``); the job waits on ``dns`` through the breaker's state."""
        waits = _DNS_BACKOFF.sequence()
        while job.active:
            try:
                check = await unless_set(job.stopped, verifier.check(report.emails, report.site))
            except DnsOutage as exc:
                log.warning("DNS not answering; waiting", extra={"job_id": job.job_id, "error": str(exc)})
                wait = max(exc.retry_after, waits.next())
                if isinstance(await unless_set(job.stopped, self.clock.sleep(max(wait, 0.05))), Stopped):
                    return None
                continue
            if isinstance(check, Stopped):
                return None
            primary = check.primary.email if check.primary is not None else None
            # A copy: the client's cache holds the report, shared by a chain's branches.
            return replace(report, email_verdicts=[v.to_dict() for v in check.verdicts], primary_email=primary)
        return None
