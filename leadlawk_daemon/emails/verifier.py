"""A website's addresses, each judged, through the ``dns`` breaker: the site actor's one call.

A DNS server that does not answer is an outage (docs/failure-model.md): the lookup's failure
counts against the ``dns`` breaker and the call raises :class:`DnsOutage`, never a verdict of
``unknown``; the caller keeps the site report back and asks again later. A domain answered once
is cached (:class:`MailDomainResolver`), and a cache hit never touches the breaker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from leadlawk_daemon.emails.resolver import DnsUnavailable, MailDomain, MailDomainResolver
from leadlawk_daemon.emails.verdict import EmailVerdict, judge, needs_lookup, primary_email
from leadlawk_daemon.resilience.breaker import BreakerOpenError, CircuitBreaker

__all__ = ["DNS_BREAKER", "DnsOutage", "EmailCheck", "EmailVerifier"]

DNS_BREAKER = "dns"


class DnsOutage(Exception):
    """Our DNS is not answering (or its breaker is open): ask again, not before ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class EmailCheck:
    verdicts: tuple[EmailVerdict, ...]
    primary: EmailVerdict | None


class EmailVerifier:
    def __init__(self, resolver: MailDomainResolver, breaker: CircuitBreaker) -> None:
        self.resolver = resolver
        self.breaker = breaker

    async def check(self, emails: Sequence[str], website_host: str | None) -> EmailCheck:
        """Every address's verdict and the primary one; raises :class:`DnsOutage`."""
        domains = sorted({d for d in map(needs_lookup, emails) if d is not None})
        answers = dict(zip(domains, await asyncio.gather(*map(self._domain, domains)), strict=True))
        verdicts = tuple(judge(e, website_host, answers.get(needs_lookup(e) or "")) for e in emails)
        return EmailCheck(verdicts, primary_email(verdicts))

    async def _domain(self, domain: str) -> MailDomain:
        known = self.resolver.cached(domain)
        if known is not None:
            return known
        try:
            return await self.breaker.call(self.resolver.lookup, domain)
        except BreakerOpenError as exc:
            raise DnsOutage(f"DNS is not answering: breaker {self.breaker.name} open", exc.retry_after) from None
        except DnsUnavailable as exc:
            raise DnsOutage(str(exc), 0.0) from None  # the caller's backoff decides the wait
