"""The ``webhook`` destination: the digest POSTed as signed JSON, in pages of ``page_size`` leads.

Each page is one POST with the same ``X-LeadLawk-Delivery`` (the idempotency key) and its own
``X-LeadLawk-Page: i/n``; the body says ``page`` and ``pages`` too. A receiver that answered a page
2xx has it; a page that fails makes the whole delivery try again from page 1 later, so a receiver
dedupes on (delivery id, page). The URL is configuration, but it goes through the egress policy
like anything fetched from data (the policy connector, and the host checked before sending), and a
redirect is never followed: it is the delivery's failure, not a new destination.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import orjson
from yarl import URL

from leadlawk_daemon.deliveries.digest import Digest, pages
from leadlawk_daemon.deliveries.errors import DeliveryRejected, DestinationDown
from leadlawk_daemon.deliveries.signing import DELIVERY_HEADER, PAGE_HEADER, SIGNATURE_HEADER, sign
from leadlawk_daemon.settings import WebhookDestination
from leadlawk_daemon.sites.policy import EgressPolicy, EgressRefused
from leadlawk_daemon.sites.policy_connector import PolicyResolver, policy_connector

__all__ = ["WebhookSender", "page_body"]

USER_AGENT = "LeadLawk-Webhook/1"


def page_body(digest: Digest, destination: str, page: int, of: int, leads: Any) -> bytes:
    """One page's JSON body (docs/interfaces.md: the webhook body)."""
    d = digest.delivery
    return orjson.dumps(
        {
            "delivery_id": d.id,
            "destination": destination,
            "job_id": d.job_id,
            "schedule_id": d.schedule_id,
            "page": page,
            "pages": of,
            "summary": digest.summary,
            "leads": list(leads),
        },
        default=str,
    )


class WebhookSender:
    def __init__(
        self,
        name: str,
        config: WebhookDestination,
        *,
        secret: bytes,
        page_size: int,
        timeout: float,
        policy: EgressPolicy,
        wall: Callable[[], float],
    ) -> None:
        self.name = name
        self.url = URL(config.url)
        self.secret = secret
        self.page_size = config.page_size or page_size
        self.timeout = timeout
        self.policy = policy
        self._wall = wall
        self._resolver = PolicyResolver(policy)
        self._session = aiohttp.ClientSession(
            connector=policy_connector(limit=8, resolver=self._resolver),
            headers={"User-Agent": USER_AGENT},
        )

    async def aclose(self) -> None:
        await self._session.close()
        await self._resolver.close()

    async def send(self, digest: Digest) -> None:
        try:
            self.policy.check_host(self.url.raw_host or "", names_resolved_by_proxy=False)
        except EgressRefused as exc:
            raise DeliveryRejected(f"the webhook URL's host is refused: {exc}") from None
        cut = pages(digest.rows, self.page_size)
        for i, leads in enumerate(cut, start=1):
            await self._post(page_body(digest, self.name, i, len(cut), leads), digest.delivery.id, i, len(cut))

    async def _post(self, body: bytes, delivery: str, page: int, of: int) -> None:
        headers: Mapping[str, str] = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self.secret, body, int(self._wall())),
            DELIVERY_HEADER: delivery,
            PAGE_HEADER: f"{page}/{of}",
        }
        try:
            async with asyncio.timeout(self.timeout):
                async with self._session.post(self.url, data=body, headers=headers, allow_redirects=False) as answer:
                    status = answer.status
                    await answer.content.read(65_536)  # drained a little, never held whole
        except EgressRefused as exc:
            raise DeliveryRejected(f"the webhook URL is refused: {exc}") from None
        except TimeoutError:
            raise DestinationDown(f"no answer within {self.timeout:g} s") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise DestinationDown(f"{type(exc).__name__}: {str(exc)[:200]}") from None
        if 200 <= status < 300:
            return
        if status == 429 or status >= 500:
            raise DestinationDown(f"answered {status}")
        if 300 <= status < 400:
            raise DeliveryRejected(f"answered {status} (a redirect, which a delivery never follows)")
        raise DeliveryRejected(f"answered {status}")
