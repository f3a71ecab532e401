"""The DNS replica: a local DNS server whose zone agrees with the websites replica's addresses.

Every ``*.example`` name is in its zone, with a mail setup drawn from the seed and the name (the
same on every run and machine): MX records (most), only an A record (the implicit MX), a null MX
(``MX 0 .``, RFC 7505), NXDOMAIN, a name with no records at all, or SERVFAIL for that name alone
(a domain whose own DNS is broken, while the server answers everything else, the root included).
The free-mail and disposable providers the websites replica's sites show (``gmail.com``,
``mailinator.com``…) have MX records; every other name is NXDOMAIN. :meth:`DnsReplica.truth` is
the verdict a correct verifier gives an address, from what this zone serves and how the sites
replica made the address, never from the verifier's own lists.

It answers UDP on its port, and serves its control routes over HTTP on the same port number (TCP):
``GET /_answers?email=…&website=…`` (the truth), ``POST /_faults`` with ``{"down": "drop" |
"servfail" | "refused"}`` (``{}`` is up again), ``GET /_faults``, ``GET /_stats`` (queries
answered and dropped). ``down: drop`` is a server that does not answer at all (every lookup times
out); the other two answer every question with that error code.
"""

from __future__ import annotations

import asyncio
import errno
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from aiohttp import web

from leadlawk_daemon.replicas.faults import Fault, FaultSwitchboard, add_fault_routes, choice_or_flag
from leadlawk_daemon.replicas.foreground import serve_in_foreground
from leadlawk_daemon.replicas.sites_content import DISPOSABLE_DOMAINS, FREE_MAIL_DOMAINS, seeded_random

__all__ = ["MAIL_SETUPS", "DnsReplica", "mail_setup", "run_dns_replica", "serve_dns_replica"]

MAIL_SETUPS = ("mx", "a_only", "null_mx", "nxdomain", "servfail", "no_records")
_DELIVERABLE = frozenset({"mx", "a_only"})
# The words the sites replica builds role inboxes from (replicas/sites_content.py).
_ROLE_WORDS = frozenset({"info", "office", "contact", "hello"})
_PROVIDERS = frozenset((*FREE_MAIL_DOMAINS, *DISPOSABLE_DOMAINS, "mailbox.example"))
_TTL = 300
FAULTS = (
    Fault("down", '"drop", "servfail", "refused" or true (drop)',
          "the server is down: drops every query, or answers each with SERVFAIL or REFUSED",
          choice_or_flag("drop", "servfail", "refused")),
)  # fmt: skip


def mail_setup(domain: str, seed: int) -> str:
    """How ``domain`` is set up for mail in the zone: one of :data:`MAIL_SETUPS`."""
    domain = domain.lower().rstrip(".")
    if domain in _PROVIDERS:
        return "mx"
    if not domain.endswith(".example"):
        return "nxdomain"
    roll = seeded_random(seed, domain, "dns").random()
    for setup, upto in (("mx", 0.70), ("a_only", 0.82), ("null_mx", 0.90), ("nxdomain", 0.95), ("servfail", 0.97)):
        if roll < upto:
            return setup
    return "no_records"


_PORT_ATTEMPTS = 20


class DnsReplica:
    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.faults = FaultSwitchboard(FAULTS)
        self.stats: Counter[str] = Counter()
        self.host = "127.0.0.1"
        self.port = 0
        self._transport: asyncio.DatagramTransport | None = None
        self._runner: web.AppRunner | None = None

    @property
    def server(self) -> str:
        """The ``emails.dns_servers`` entry that points at this replica."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def control_url(self) -> str:
        return f"http://{self.server}"

    def set_down(self, mode: str | None) -> None:
        """``drop``, ``servfail``, ``refused``, or None: up (what ``POST /_faults`` does)."""
        self.faults.replace({"down": mode} if mode else {})

    def truth(self, email: str, website: str | None) -> dict[str, Any]:
        """The verdict a correct verifier gives ``email`` shown on the site ``website`` (a host)."""
        local, _, domain = email.lower().rpartition("@")
        setup = mail_setup(domain, self.seed)
        if domain in DISPOSABLE_DOMAINS:
            status = "disposable"
        elif setup == "servfail":
            status = "unknown"  # the domain's own DNS fails while this server answers: its fact
        else:
            status = "deliverable_domain" if setup in _DELIVERABLE else "no_mail_domain"
        site = (website or "").lower().removeprefix("www.")
        return {
            "email": email,
            "status": status,
            "role": local.replace("-", ".").rsplit(".", 1)[-1] in _ROLE_WORDS,
            "free_mail": domain in FREE_MAIL_DOMAINS,  # a disposable provider is not also free mail
            "matches_website": bool(site) and domain == site,
        }

    # -- the server -----------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application()
        app.router.add_get("/_answers", self._answers)
        app.router.add_get("/_stats", self._stats)
        add_fault_routes(app, self.faults)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        # The kernel picks a free UDP port; the same number over TCP can still be another process's
        # (parallel test workers start many servers), so a free pair is looked for a few times.
        for attempt in range(_PORT_ATTEMPTS):
            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self), local_addr=(host, port))
            self._transport = transport
            self.host, self.port = transport.get_extra_info("sockname")[:2]
            try:
                await web.TCPSite(self._runner, self.host, self.port).start()
            except OSError as exc:
                transport.close()
                self._transport = None
                if port != 0 or exc.errno != errno.EADDRINUSE or attempt == _PORT_ATTEMPTS - 1:
                    raise
                continue
            return self.server
        raise AssertionError("unreachable")

    async def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def answer(self, wire: bytes) -> bytes | None:
        """The reply to one query datagram; None: no reply (a malformed query, or ``down: drop``)."""
        try:
            query = dns.message.from_wire(wire)
        except Exception:
            self.stats["malformed"] += 1
            return None
        down = self.faults.get("down")
        if down is not None and down is not False:
            self.stats["down"] += 1
            if down in ("servfail", "refused"):
                reply = dns.message.make_response(query)
                reply.set_rcode(dns.rcode.SERVFAIL if down == "servfail" else dns.rcode.REFUSED)
                return reply.to_wire()
            return None
        reply = dns.message.make_response(query)
        reply.flags |= dns.flags.AA
        self.stats["answered"] += 1
        if len(query.question) != 1:
            reply.set_rcode(dns.rcode.FORMERR)
            return reply.to_wire()
        question = query.question[0]
        self._fill(reply, question.name, question.rdtype)
        return reply.to_wire()

    def _fill(self, reply: dns.message.Message, name: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> None:
        if name == dns.name.root:  # a recursive server always knows the root's servers
            if rdtype == dns.rdatatype.NS:
                reply.answer.append(
                    dns.rrset.from_text_list(name, _TTL, dns.rdataclass.IN, rdtype, ["a.root.example."])
                )
            return
        domain = name.to_text(omit_final_dot=True).lower()
        owner = domain[4:] if domain.startswith("www.") else domain
        setup = mail_setup(owner, self.seed)
        if setup in ("nxdomain", "servfail"):
            reply.set_rcode(dns.rcode.NXDOMAIN if setup == "nxdomain" else dns.rcode.SERVFAIL)
            return
        records: list[str] = []
        if rdtype == dns.rdatatype.MX and owner == domain:
            records = {"mx": [f"10 mx1.{owner}.", f"20 mx2.{owner}."], "null_mx": ["0 ."]}.get(setup, [])
        elif rdtype == dns.rdatatype.A and setup != "no_records":
            records = ["192.0.2.25"]  # TEST-NET-1: nothing is ever sent to it
        if records:
            reply.answer.append(dns.rrset.from_text_list(name, _TTL, dns.rdataclass.IN, rdtype, records))

    async def _answers(self, request: web.Request) -> web.Response:
        emails = request.query.getall("email", [])
        website = request.query.get("website")
        return web.json_response({"answers": [self.truth(e, website) for e in emails[:1000]]})

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(dict(self.stats))


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, replica: DnsReplica) -> None:
        self.replica = replica
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # a datagram endpoint's

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        reply = self.replica.answer(data[:4096])
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


@asynccontextmanager
async def serve_dns_replica(host: str = "127.0.0.1", port: int = 0, seed: int = 0) -> AsyncIterator[DnsReplica]:
    """Run the replica on ``host:port`` (0: any free port); ``server`` is its ``emails.dns_servers`` entry."""
    replica = DnsReplica(seed)
    try:
        await replica.start(host, port)
        yield replica
    finally:
        await replica.close()


async def run_dns_replica(host: str = "127.0.0.1", port: int = 0, seed: int = 0) -> None:
    """``leadlawk replica dns``: serve until cancelled, printing the server and its control URL."""
    await serve_in_foreground(
        serve_dns_replica(host, port, seed),
        lambda replica: (replica.control_url, f'emails.dns_servers: ["{replica.server}"]'),
    )
