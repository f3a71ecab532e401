"""Does a mail domain accept mail? One asynchronous DNS lookup per domain, cached, bounded in flight.

dnspython's asyncio resolver asks the configured servers (``emails.dns_servers``) and nothing else;
with none configured, the system's (``/etc/resolv.conf``). Chosen over aiodns (c-ares) because it
is pure Python with types (mypy --strict), tells NXDOMAIN, no answer, SERVFAIL and a timeout apart
without parsing error codes, takes a server on any port (the replica's), and its message classes
also build the DNS replica's answers, so one library speaks both ends. Its cost per lookup (a few
hundred microseconds of Python) is far under a network round trip.

What a domain says, RFC 5321 section 5.1 and RFC 7505:

* MX records, or none but an A or AAAA record (the implicit MX): ``deliverable_domain``;
* NXDOMAIN, a null MX (one ``MX 0 .``), or a name with neither MX nor address: ``no_mail_domain``;
* no answer in time, SERVFAIL, REFUSED, no server reachable: :class:`DnsUnavailable`. Whose
  failure that is (ours, or the domain's own DNS) :meth:`MailDomainResolver.answers` tells: the
  verifier asks it (docs/email-verdicts.md).

Answers are cached per domain for ``emails.cache_ttl`` (the least recently used past
``cache_size`` go first); failures are never cached. Concurrent lookups of one domain share one
query, and at most ``max_in_flight`` queries are out at once.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence
from enum import StrEnum

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.rdatatype
import dns.resolver
from dns.rdtypes.ANY.MX import MX

from actors.clock import Clock, MonotonicClock
from leadlawk_daemon.settings import parse_dns_server

__all__ = ["DnsUnavailable", "MailDomain", "MailDomainResolver"]


class MailDomain(StrEnum):
    DELIVERABLE = "deliverable_domain"
    NO_MAIL = "no_mail_domain"


class DnsUnavailable(Exception):
    """No configured server answered for a domain: our DNS is failing, the domain said nothing."""


class MailDomainResolver:
    def __init__(
        self,
        servers: Sequence[str] = (),
        *,
        timeout: float = 3.0,
        cache_ttl: float = 3600.0,
        cache_size: int = 100_000,
        max_in_flight: int = 64,
        clock: Clock | None = None,
    ) -> None:
        if servers:
            self._resolver = dns.asyncresolver.Resolver(configure=False)
            self._resolver.nameservers = [dns.nameserver.Do53Nameserver(*parse_dns_server(s)) for s in servers]
        else:
            self._resolver = dns.asyncresolver.Resolver()  # the system's servers, read once here
        self._resolver.retry_servfail = False  # a server failing is our outage: say so, do not spin
        self._resolver.timeout = timeout
        self._resolver.lifetime = timeout
        self.timeout = timeout
        self.cache_ttl = cache_ttl
        self.cache_size = cache_size
        self._clock: Clock = clock if clock is not None else MonotonicClock()
        self._cache: OrderedDict[str, tuple[MailDomain, float]] = OrderedDict()
        self._pending: dict[str, asyncio.Future[MailDomain]] = {}
        self._slots = asyncio.Semaphore(max_in_flight)
        self.queries = 0  # DNS questions asked (for the bench and the tests)

    def cached(self, domain: str) -> MailDomain | None:
        """The answer known for ``domain`` and not expired; None: it takes a lookup."""
        entry = self._cache.get(domain)
        if entry is None:
            return None
        if entry[1] <= self._clock.monotonic():
            del self._cache[domain]
            return None
        self._cache.move_to_end(domain)
        return entry[0]

    async def lookup(self, domain: str) -> MailDomain:
        """What ``domain`` (already checked: :func:`~leadlawk_daemon.emails.domain_name.valid_domain`)
        says about mail; raises :class:`DnsUnavailable` when no server answered."""
        known = self.cached(domain)
        if known is not None:
            return known
        pending = self._pending.get(domain)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[MailDomain] = asyncio.get_running_loop().create_future()
        self._pending[domain] = future
        try:
            async with self._slots:
                answer = await self._ask(domain)
        except BaseException as exc:
            future.set_exception(exc if isinstance(exc, Exception) else DnsUnavailable("lookup cancelled"))
            future.exception()  # retrieved here: a waiter may not exist
            raise
        else:
            future.set_result(answer)
            self._remember(domain, answer)
            return answer
        finally:
            del self._pending[domain]

    async def answers(self) -> bool:
        """Whether our servers answer at all: the root zone's NS records, which every recursive
        resolver holds. A domain whose lookup fails while this holds has a DNS problem of its own."""
        self.queries += 1
        try:
            async with self._slots:
                await self._resolver.resolve(".", "NS", raise_on_no_answer=False, search=False, lifetime=self.timeout)
        except (dns.exception.DNSException, OSError):
            return False
        return True

    def _remember(self, domain: str, answer: MailDomain) -> None:
        self._cache[domain] = (answer, self._clock.monotonic() + self.cache_ttl)
        self._cache.move_to_end(domain)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    async def _ask(self, domain: str) -> MailDomain:
        mx = await self._query(domain, "MX")
        if mx is None:
            return MailDomain.NO_MAIL
        if mx:
            exchanges = [r for r in mx if isinstance(r, MX)]
            null = len(exchanges) == 1 and exchanges[0].preference == 0 and exchanges[0].exchange.to_text() == "."
            return MailDomain.NO_MAIL if null else MailDomain.DELIVERABLE
        for rdtype in ("A", "AAAA"):  # no MX: the implicit MX is the domain's own address
            found = await self._query(domain, rdtype)
            if found is None:
                return MailDomain.NO_MAIL
            if found:
                return MailDomain.DELIVERABLE
        return MailDomain.NO_MAIL

    async def _query(self, domain: str, rdtype: str) -> list[object] | None:
        """The records of ``rdtype`` (empty: none of that type); None: the name does not exist."""
        self.queries += 1
        try:
            answer = await self._resolver.resolve(
                domain, rdtype, raise_on_no_answer=False, search=False, lifetime=self.timeout
            )
        except (dns.resolver.NXDOMAIN, dns.resolver.YXDOMAIN):
            return None
        except (dns.resolver.NoNameservers, dns.exception.Timeout) as exc:
            raise DnsUnavailable(f"no DNS answer for {domain} {rdtype}: {type(exc).__name__}") from None
        except dns.exception.DNSException as exc:
            # A malformed answer, a truncated one past TCP…: the server did not tell us; ours, not theirs.
            raise DnsUnavailable(f"no usable DNS answer for {domain} {rdtype}: {type(exc).__name__}") from None
        except OSError as exc:
            raise DnsUnavailable(f"DNS server unreachable for {domain}: {exc}") from None
        return list(answer.rrset) if answer.rrset is not None else []
