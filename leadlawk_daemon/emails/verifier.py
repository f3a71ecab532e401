"""A website's addresses, each judged, through the ``dns`` breaker: the site actor's one call.

Who failed when a lookup fails is decided here, as the egress guard does for websites:

* **our DNS** (the configured servers time out, refuse, or fail): an outage
  (docs/failure-model.md). The failure counts against the ``dns`` breaker and the call raises
  :class:`DnsOutage`; nothing is judged ``unknown``; the caller keeps the site report back and
  asks again later, and the job waits on ``dns`` while the breaker is open;
* **the domain's own DNS** (its lookup fails while our servers answer the root zone's NS
  question): a fact about that domain. It is asked again ``domain_attempts`` times, with backoff;
  then its addresses are judged ``unknown`` ("its DNS did not answer"), recorded like a dead site.
  It never counts against the breaker: one broken domain is not an outage.

A domain answered once is cached (:class:`MailDomainResolver`), and a cache hit never touches the
breaker.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from actors.clock import Clock, MonotonicClock
from leadlawk_daemon.emails.resolver import DnsUnavailable, MailDomain, MailDomainResolver
from leadlawk_daemon.emails.verdict import EmailVerdict, judge, needs_lookup, primary_email
from leadlawk_daemon.resilience.breaker import BreakerOpenError, CircuitBreaker, OnChange
from supervisors.backoff import Backoff, Jitter

__all__ = ["DNS_BREAKER", "DnsOutage", "DomainUnanswered", "EmailCheck", "EmailVerifier", "dns_breaker"]

DNS_BREAKER = "dns"
_DOMAIN_BACKOFF = Backoff(0.5, 5.0, jitter=Jitter.FULL)
V = TypeVar("V")


def dns_breaker(
    failure_threshold: int, reset_timeout: float, clock: Clock, on_change: OnChange | None = None
) -> CircuitBreaker:
    """The ``dns`` breaker: only our DNS failing counts (a timeout, no server answering the root)."""
    return CircuitBreaker(
        DNS_BREAKER,
        failure_threshold=failure_threshold,
        reset_timeout=reset_timeout,
        call_timeout=None,  # each lookup is cut at emails.timeout
        clock=clock,
        on_change=on_change,
        exclude=lambda exc: not isinstance(exc, DnsUnavailable | TimeoutError),
    )


class DnsOutage(Exception):
    """Our DNS is not answering (or its breaker is open): ask again, not before ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DomainUnanswered(Exception):
    """One domain's lookup failed while our DNS answered: the domain's fact, never the breaker's."""


@dataclass(frozen=True, slots=True)
class EmailCheck:
    verdicts: tuple[EmailVerdict, ...]
    primary: EmailVerdict | None


class EmailVerifier:
    def __init__(
        self,
        resolver: MailDomainResolver,
        breaker: CircuitBreaker,
        *,
        domain_attempts: int = 3,
        given_up_ttl: float = 300.0,
        domain_backoff: Backoff = _DOMAIN_BACKOFF,
        clock: Clock | None = None,
    ) -> None:
        self.resolver = resolver
        self.breaker = breaker
        self.domain_attempts = domain_attempts
        self.given_up_ttl = given_up_ttl
        self.domain_backoff = domain_backoff  # between tries of one domain whose own DNS failed
        self._clock: Clock = clock if clock is not None else MonotonicClock()
        # Domains whose own DNS failed lately, and how often; those given up on, until when (so a
        # chain's branches do not each wait through the same retries). Both bounded: oldest first.
        self._unanswered: OrderedDict[str, int] = OrderedDict()
        self._given_up: OrderedDict[str, float] = OrderedDict()

    async def check(self, emails: Sequence[str], website_host: str | None) -> EmailCheck:
        """Every address's verdict and the primary one; raises :class:`DnsOutage`."""
        domains = sorted({d for d in map(needs_lookup, emails) if d is not None})
        answers = dict(zip(domains, await asyncio.gather(*map(self._domain, domains)), strict=True))
        verdicts = tuple(judge(e, website_host, answers.get(needs_lookup(e) or "")) for e in emails)
        return EmailCheck(verdicts, primary_email(verdicts))

    async def _domain(self, domain: str) -> MailDomain | None:
        """What ``domain`` says; None when its own DNS did not answer ``domain_attempts`` times."""
        waits = self.domain_backoff.sequence()
        while True:
            known = self.resolver.cached(domain)
            if known is not None:
                return known
            if self._given_up.get(domain, 0.0) > self._clock.monotonic():
                return None
            try:
                answer = await self.breaker.call(self._lookup, domain)
            except BreakerOpenError as exc:
                raise DnsOutage(f"DNS is not answering: breaker {self.breaker.name} open", exc.retry_after) from None
            except DnsUnavailable as exc:
                raise DnsOutage(str(exc), 0.0) from None  # the caller's backoff decides the wait
            except DomainUnanswered:
                failures = self._unanswered.get(domain, 0) + 1
                _bounded(self._unanswered, domain, failures)
                if failures >= self.domain_attempts:
                    del self._unanswered[domain]
                    _bounded(self._given_up, domain, self._clock.monotonic() + self.given_up_ttl)
                    return None
                await waits.wait(self._clock)
                continue
            self._unanswered.pop(domain, None)
            return answer

    async def _lookup(self, domain: str) -> MailDomain:
        """One lookup through the breaker: our DNS failing counts; the domain's own failure does not."""
        try:
            return await self.resolver.lookup(domain)
        except DnsUnavailable:
            if await self.resolver.answers():
                raise DomainUnanswered(domain) from None
            raise


def _bounded(entries: OrderedDict[str, V], key: str, value: V, most: int = 10_000) -> None:
    """Set ``key`` as the newest entry; the oldest go past ``most``."""
    entries.pop(key, None)
    entries[key] = value
    while len(entries) > most:
        entries.popitem(last=False)
