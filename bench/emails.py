"""Email verdicts against the DNS replica: 10,000 addresses over 2,000 domains, with the cache.

The DNS replica runs in its own process (``leadlawk replica dns``), so what is timed is our side:
the checks of each address's domain (validated first), the lookups (MX, then A and AAAA where a
domain has no MX), the cache and the in-flight bound, with the default ``emails`` settings. The
addresses are spread over 2,500 made-up sites of four addresses each (their own domain, another
site's, or a free-mail or disposable provider), so most domains are met more than once, as on a
night's websites. Sites are judged 32 at a time (``sites.max_in_flight``), as the site actor does.

Printed: the cold run (every domain asked once), a warm run (every answer cached), the DNS
queries asked, and precision and recall per status against the replica's truth. The target
(issue 24): the cold run under 30 s. The last line is one JSON object.

Usage: ``python bench/emails.py [--addresses N] [--domains N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actors.clock import MonotonicClock
from leadlawk_daemon.emails import EmailCheck, EmailVerifier, MailDomainResolver, dns_breaker
from leadlawk_daemon.replicas.dns import DnsReplica
from leadlawk_daemon.replicas.sites_content import DISPOSABLE_DOMAINS, FREE_MAIL_DOMAINS
from leadlawk_daemon.settings import load_settings

SEED = 0
PER_SITE = 4
SITES_AT_ONCE = 32  # sites.max_in_flight's default
LOCALS = ("info", "office", "mike", "rosa", "sales", "ana", "contact", "tom")
STATUSES = ("deliverable_domain", "no_mail_domain", "disposable", "unknown")


@contextlib.asynccontextmanager
async def replica_process() -> AsyncIterator[str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "leadlawk_daemon", "replica", "dns", "--seed", str(SEED),
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        await process.stdout.readline()  # the control URL
        line = (await process.stdout.readline()).decode()
        yield line.split('"')[1]  # emails.dns_servers: ["127.0.0.1:PORT"]
    finally:
        process.terminate()
        await process.wait()


def workload(addresses: int, domains: int) -> list[tuple[str, list[str]]]:
    """(site host, its addresses): ``addresses`` in all, over exactly ``domains`` domains."""
    rng = random.Random(SEED)
    providers = [*FREE_MAIL_DOMAINS, *DISPOSABLE_DOMAINS]
    names = [*providers, *(f"bench-{i}.example" for i in range(domains - len(providers)))]
    sites = [n for n in names if n.endswith(".example")]
    pool = list(names)  # every domain once first, then drawn
    while len(pool) < addresses:
        pool.append(rng.choice(names))
    rng.shuffle(pool)
    out: list[tuple[str, list[str]]] = []
    for start in range(0, addresses, PER_SITE):
        host = rng.choice(sites)
        chunk = pool[start : start + PER_SITE]
        emails = [f"{LOCALS[(start + i) % len(LOCALS)]}.{start + i}@{d}" for i, d in enumerate(chunk)]
        out.append((host, emails))
    return out


async def judge_all(verifier: EmailVerifier, work: Sequence[tuple[str, list[str]]]) -> list[EmailCheck]:
    slots = asyncio.Semaphore(SITES_AT_ONCE)

    async def one(host: str, emails: list[str]) -> EmailCheck:
        async with slots:
            return await verifier.check(emails, host)

    return await asyncio.gather(*(one(host, emails) for host, emails in work))


def scores(checks: Sequence[EmailCheck], work: Sequence[tuple[str, list[str]]]) -> dict[str, Any]:
    truth_of = DnsReplica(SEED)
    truth = {e: truth_of.truth(e, host)["status"] for host, emails in work for e in emails}
    got = {v.email: v.status.value for check in checks for v in check.verdicts}
    out: dict[str, Any] = {"precision": {}, "recall": {}, "support": {}}
    for status in STATUSES:
        predicted = {e for e, s in got.items() if s == status}
        actual = {e for e, s in truth.items() if s == status}
        hits = len(predicted & actual)
        out["precision"][status] = round(hits / max(len(predicted), 1), 4)
        out["recall"][status] = round(hits / max(len(actual), 1), 4)
        out["support"][status] = len(actual)
    return out


async def main(addresses: int, domains: int) -> dict[str, Any]:
    work = workload(addresses, domains)
    conf = load_settings().emails
    async with replica_process() as server:
        resolver = MailDomainResolver(
            [server], timeout=conf.timeout, cache_ttl=conf.cache_ttl, cache_size=conf.cache_size,
            max_in_flight=conf.max_in_flight,
        )  # fmt: skip
        breaker = dns_breaker(conf.dns_failures, 30.0, MonotonicClock())
        verifier = EmailVerifier(resolver, breaker)
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        checks = await judge_all(verifier, work)
        cold = time.perf_counter() - started
        queries = resolver.queries
        started = time.perf_counter()
        await judge_all(verifier, work)
        warm = time.perf_counter() - started
    counted = sum(len(emails) for _, emails in work)
    print(f"{counted} addresses over {domains} domains on {len(work)} sites, {SITES_AT_ONCE} sites at once")
    print(f"cold: {cold:.2f} s ({counted / cold:,.0f} addresses/s), {queries} DNS queries")
    print(f"warm (every answer cached): {warm:.2f} s ({counted / warm:,.0f} addresses/s), "
          f"{resolver.queries - queries} more queries")  # fmt: skip
    quality = scores(checks, work)
    print(f"precision {quality['precision']}, recall {quality['recall']}, support {quality['support']}")
    load = os.getloadavg()[0]
    print(f"load average (1 min): {load_before:.1f} before, {load:.1f} after; target: cold under 30 s")
    return {
        "bench": "emails", "addresses": counted, "domains": domains, "sites": len(work),
        "cold_s": round(cold, 2), "warm_s": round(warm, 3), "addresses_per_s": round(counted / cold),
        "queries": queries, "under_30s": cold < 30, **quality, "load_1m": round(load, 1),
    }  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--addresses", type=int, default=10_000)
    parser.add_argument("--domains", type=int, default=2_000)
    args = parser.parse_args()
    print(orjson.dumps(uvloop.run(main(args.addresses, args.domains))).decode())
