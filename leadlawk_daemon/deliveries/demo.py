"""The demo's nightly part: one schedule, fired at once, its digest delivered to the inbox replica.

``leadlawk demo`` runs it after its sample job. A private daemon (as ``collect`` runs one) gets a
``demo-inbox`` webhook destination on the inbox replica (on loopback, so the egress policy is told
to allow 127.0.0.1 for this run only), a schedule at 02:00 America/Chicago that delivers to it is
added and run now, and once the digest arrives, what the receiver got is shown: the delivery id, the
signature check, the summary and the new leads.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from typing import Any, Protocol, TextIO

from leadlawk_daemon.assembly import LeadLawkDaemon
from leadlawk_daemon.deliveries.ledger import delivery_id
from leadlawk_daemon.settings import load_settings

__all__ = ["InboxView", "nightly_demo"]


class InboxView(Protocol):
    """What the demo reads of the inbox replica (``replicas/inbox.py``; only demo surfaces import replicas)."""

    webhooks: list[dict[str, Any]]
    arrived: asyncio.Event

    def delivered(self) -> dict[str, set[int]]: ...


_SECRET_ENV = "LEADLAWK_DEMO_INBOX_SECRET"
SCHEDULE = "demo-nightly"


async def nightly_demo(
    base_env: Mapping[str, str],
    spec: Mapping[str, Any],
    inbox: InboxView,
    url: str,
    secret: str,
    out: TextIO,
    progress: TextIO,
    within: float = 180.0,
) -> int:
    """Schedule ``spec`` nightly, fire it now, and show the digest ``inbox`` (serving ``url``, verifying
    with ``secret``) received; 0 when it did."""
    env = {
        **base_env,
        _SECRET_ENV: secret,
        "LEADLAWK__DESTINATIONS": (
            f'{{"demo-inbox": {{"type": "webhook", "url": "{url}/hooks/demo", "secret_env": "{_SECRET_ENV}"}}}}'
        ),
        "LEADLAWK__SITES__ALLOWED_NETWORKS": '["127.0.0.1/32"]',
    }
    settings = load_settings(environ=env)
    os.environ[_SECRET_ENV] = secret  # the daemon reads a destination's secret from its environment
    daemon = LeadLawkDaemon(settings)
    tree = asyncio.create_task(daemon.run(), name="demo-nightly-daemon")
    try:
        book = None
        began = time.monotonic()
        while book is None or daemon.pipeline_service.deliveries is None:
            if tree.done() or time.monotonic() - began > 30:
                raise RuntimeError("the daemon did not start")
            await asyncio.sleep(0.05)
            book = daemon.schedule_book()
        await book.remove(SCHEDULE)  # a demo run before this one left it; its ledger stays
        await book.add(
            {
                "id": SCHEDULE,
                "name": "Omaha plumbers, nightly",
                "cron": "0 2 * * *",
                "tz": "America/Chicago",
                "spec": dict(spec),
                "deliver": ["demo-inbox"],
            }
        )
        job_id = await book.run_now(SCHEDULE)
        assert job_id is not None
        progress.write(
            f"schedule {SCHEDULE} (0 2 * * * America/Chicago) fired now: job {job_id}; "
            f"its digest goes to the inbox replica at {url}\n"
        )
        one = delivery_id(job_id, "demo-inbox")
        while one not in inbox.delivered():
            if time.monotonic() - began > within:
                out.write("the digest did not arrive in time\n")
                return 1
            inbox.arrived.clear()
            try:
                await asyncio.wait_for(inbox.arrived.wait(), 1.0)
            except TimeoutError:
                continue
        # The receiver has it; the daemon records it delivered just after. Stopping in between would
        # leave it pending, to be sent again (with the same delivery id) by the next start.
        service = daemon.pipeline_service.deliveries
        while (found := await service.ledger.get(one)) is None or found.status != "delivered":
            if time.monotonic() - began > within:
                break
            await asyncio.sleep(0.05)
    finally:
        daemon.request_shutdown("demo finished")
        await tree
    _show(inbox, one, out)
    return 0


def _show(inbox: InboxView, one: str, out: TextIO) -> None:
    pages = [h for h in inbox.webhooks if h["delivery_id"] == one and h["status"] == 200]
    body = pages[0]["body"]
    s = body["summary"]
    out.write(
        f"\nThe digest the receiver got (X-LeadLawk-Delivery {one}, signature "
        f"{'valid' if all(p['signature_valid'] for p in pages) else 'INVALID'}, {len(pages)} page(s)):\n"
    )
    out.write(
        f"  {s['query']} in {s['location']}: found {s['found']}, qualified {s['qualified']}, "
        f"new to the schedule {s['new']}, failed {s['failed']}, Google's view {s['maps_view']}\n"
    )
    for lead in [lead for p in pages for lead in p["body"]["leads"]][:10]:
        out.write(f"  - {lead.get('name')}  {lead.get('phone') or ''}  {lead.get('website') or ''}\n")
    out.write("`leadlawk deliveries list` shows it; the next run delivers only leads this schedule has not had\n")
